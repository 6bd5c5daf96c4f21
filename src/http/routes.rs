//! The route table: every route the server answers, declared once with the methods it serves,
//! the question or parameters it reads and what a request of it does for access control.
//!
//! The router serves a path only through [`declared`], which refuses a path missing here; the
//! access guard (`governance::http`) reads the question kind, the parameters and the action of a
//! request from here. A request whose route is not here is 404, never an action of its own. The
//! Data Connect metering routes are declared by [`dataconnect::ROUTES`] and share one entry.

use axum::http::Method;

use super::dataconnect;
use crate::governance::auth::{Action, Level};
use crate::governance::http::{parse_level, summary_of};
use crate::question::{self, QueryKind, Question};

/// What the guard knows of a request when it asks what the request does.
pub struct Asking<'a, 'q> {
    pub method: &'q Method,
    /// The meter of a `/v1/meters/:id/...` path ("" for the others).
    pub meter: &'a str,
    /// The question the guard read, for a route that asks one.
    pub question: Option<&'q Question>,
    /// The query string's parameters.
    pub params: &'q [(String, String)],
}

impl Route {
    /// The parameters a request of `method` may carry ([`Route::parameters`], or
    /// [`Route::put_parameters`] for a PUT); `None`: not checked by the guard.
    pub fn parameters_of(&self, method: &Method) -> Option<&'static [&'static str]> {
        if *method == Method::PUT {
            Some(self.put_parameters)
        } else {
            self.parameters
        }
    }
}

impl Asking<'_, '_> {
    /// GET or HEAD (axum answers HEAD with the GET handler).
    pub fn get(&self) -> bool {
        self.method == Method::GET || self.method == Method::HEAD
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a request does, for access control. `None`: a method the route does not serve (its
/// router answers 405).
pub type ActionOf = for<'a, 'q, 'b> fn(&'b Asking<'a, 'q>) -> Option<Action<'a>>;

/// How the access guard treats a route.
#[derive(Clone, Copy)]
pub enum Guard {
    /// Not guarded: outside `/v1` and the metering paths, or [`PUBLIC`].
    Open,
    /// Guarded: the action of a request.
    Action(ActionOf),
    /// A question about money, read whole by `governance::prices_http::read`, whose answer says
    /// what it does; a request that reader does not read is the operator's only.
    Priced,
}

/// One route.
pub struct Route {
    /// The axum path template.
    pub path: &'static str,
    /// The methods served (GET also answers HEAD).
    pub methods: &'static [Method],
    /// The question a GET or HEAD asks, read (and its parameters checked) by the guard.
    pub question: Option<QueryKind>,
    /// The parameters a request that asks no question may carry; `None`: not checked by the
    /// guard (its handler reads what it reads).
    pub parameters: Option<&'static [&'static str]>,
    /// The parameters a PUT reads (an upload reads none of the GET's `parameters`).
    pub put_parameters: &'static [&'static str],
    pub guard: Guard,
}

const GET: &[Method] = &[Method::GET];

/// A meter's read that asks a question: unread (never the case once the guard has read it) is
/// the operator's only.
fn read_summary<'a>(r: &Asking<'a, '_>) -> Option<Action<'a>> {
    if !r.get() {
        return None;
    }
    Some(match r.question.and_then(summary_of) {
        Some(summary) => Action::ReadMeterSummary {
            meter: r.meter,
            summary,
        },
        None => Action::Other,
    })
}

fn read_fleet<'a>(r: &Asking<'a, '_>) -> Option<Action<'a>> {
    r.get().then_some(Action::ReadFleet)
}

/// The one `/v1` route every caller reads, with or without a token: the API's description.
pub const PUBLIC: &str = "/v1/openapi.json";

/// Every route but the Data Connect metering ones ([`METERING`]).
pub static ROUTES: &[Route] = &[
    Route {
        path: "/healthz",
        methods: GET,
        question: None,
        parameters: None,
        put_parameters: &[],
        guard: Guard::Open,
    },
    Route {
        path: "/metrics",
        methods: GET,
        question: None,
        parameters: None,
        put_parameters: &[],
        guard: Guard::Open,
    },
    Route {
        path: "/v1/openapi.json",
        methods: GET,
        question: None,
        parameters: None,
        put_parameters: &[],
        // The API's description is public, like `/healthz`: it says nothing about any meter.
        guard: Guard::Open,
    },
    Route {
        path: "/oauth2/v3/token",
        methods: &[Method::POST],
        question: None,
        parameters: None,
        put_parameters: &[],
        guard: Guard::Open,
    },
    Route {
        path: "/oauth2/v3/revoke",
        methods: &[Method::POST],
        question: None,
        parameters: None,
        put_parameters: &[],
        guard: Guard::Open,
    },
    Route {
        path: "/v1/ingest",
        methods: &[Method::POST],
        question: None,
        parameters: Some(&["channel", "series"]),
        put_parameters: &[],
        guard: Guard::Action(|_| Some(Action::Ingest)),
    },
    Route {
        path: "/v1/meters/:id/curve",
        methods: &[Method::GET, Method::DELETE],
        question: Some(QueryKind::Curve),
        parameters: Some(question::ERASE_PARAMETERS),
        put_parameters: &[],
        guard: Guard::Action(|r| {
            if r.method == Method::DELETE {
                return Some(Action::EraseCurve { meter: r.meter });
            }
            if !r.get() {
                return None;
            }
            Some(match r.question {
                Some(q @ Question::Curve { channel, .. }) => Action::ReadCurve {
                    meter: r.meter,
                    channel: *channel,
                    range_utc: q.range_utc(),
                },
                _ => Action::Other,
            })
        }),
    },
    Route {
        path: "/v1/meters/:id/energy",
        methods: GET,
        question: Some(QueryKind::Energy),
        parameters: None,
        put_parameters: &[],
        guard: Guard::Action(read_summary),
    },
    Route {
        path: "/v1/meters/:id/peak",
        methods: GET,
        question: Some(QueryKind::Peak),
        parameters: None,
        put_parameters: &[],
        guard: Guard::Action(read_summary),
    },
    Route {
        path: "/v1/meters/:id/index",
        methods: GET,
        question: Some(QueryKind::Index),
        parameters: None,
        put_parameters: &[],
        guard: Guard::Action(|r| {
            r.get().then(|| match r.question {
                Some(q @ Question::Index { .. }) => Action::ReadIndex {
                    meter: r.meter,
                    range_utc: q.range_utc(),
                },
                _ => Action::Other,
            })
        }),
    },
    Route {
        path: "/v1/meters/:id/summary",
        methods: GET,
        question: Some(QueryKind::Summary),
        parameters: None,
        put_parameters: &[],
        guard: Guard::Action(|r| {
            r.get().then(|| match r.question {
                Some(q @ Question::Summary { .. }) => Action::ReadYearSummary {
                    meter: r.meter,
                    range_utc: q.range_utc(),
                },
                _ => Action::Other,
            })
        }),
    },
    Route {
        path: "/v1/meters/:id/live",
        methods: GET,
        question: None,
        parameters: Some(&["series"]),
        put_parameters: &[],
        // The live view is the curve from now on: a curve read now at subscription (the stream
        // re-asks while it runs, `http::live`).
        guard: Guard::Action(|r| {
            if !r.get() {
                return Some(Action::Other);
            }
            let now = crate::governance::now_utc();
            Some(Action::ReadCurve {
                meter: r.meter,
                channel: crate::Channel::CONSUMPTION,
                range_utc: (now, now + 1),
            })
        }),
    },
    Route {
        path: "/v1/fleet/curve",
        methods: GET,
        question: Some(QueryKind::FleetCurve),
        parameters: None,
        put_parameters: &[],
        guard: Guard::Action(read_fleet),
    },
    Route {
        path: "/v1/fleet/energy",
        methods: GET,
        question: Some(QueryKind::FleetEnergy),
        parameters: None,
        put_parameters: &[],
        guard: Guard::Action(read_fleet),
    },
    Route {
        path: "/v1/prices/spot/:area",
        methods: &[Method::GET, Method::PUT],
        question: None,
        parameters: Some(&["from", "to"]),
        put_parameters: &[],
        // Spot prices are public reference data, like the colour calendars: every token.
        guard: Guard::Action(|r| {
            Some(if r.get() {
                Action::ReadColours
            } else {
                Action::Other
            })
        }),
    },
    Route {
        path: "/v1/meters/:id/consent",
        methods: &[Method::GET, Method::POST],
        question: None,
        parameters: Some(&[]),
        put_parameters: &[],
        guard: Guard::Action(|r| match r.method {
            _ if r.get() => Some(Action::ReadConsent { meter: r.meter }),
            &Method::POST => Some(Action::SetConsent { meter: r.meter }),
            _ => None,
        }),
    },
    Route {
        path: "/v1/meters/:id/grants",
        methods: &[Method::GET, Method::POST],
        question: None,
        parameters: Some(&[]),
        put_parameters: &[],
        guard: Guard::Action(|r| {
            Some(if r.get() {
                Action::ReadGrants { meter: r.meter }
            } else {
                Action::ManageGrants
            })
        }),
    },
    Route {
        path: "/v1/meters/:id/grants/:grant",
        methods: &[Method::DELETE],
        question: None,
        parameters: Some(&[]),
        put_parameters: &[],
        guard: Guard::Action(|_| Some(Action::ManageGrants)),
    },
    Route {
        path: "/v1/meters/:id/export",
        methods: GET,
        question: None,
        parameters: Some(question::EXPORT_PARAMETERS),
        put_parameters: &[],
        guard: Guard::Action(|r| r.get().then_some(Action::Export { meter: r.meter })),
    },
    Route {
        path: "/v1/meters/:id/compare",
        methods: GET,
        question: None,
        parameters: Some(&["from", "to", "tz", "channel"]),
        put_parameters: &[],
        guard: Guard::Action(|r| r.get().then_some(Action::Compare { meter: r.meter })),
    },
    Route {
        path: "/v1/aggregates",
        methods: GET,
        question: None,
        parameters: Some(&[
            "level", "code", "meters", "kind", "channel", "from", "to", "period", "tz", "source",
        ]),
        put_parameters: &[],
        guard: Guard::Action(|r| {
            r.get().then(|| Action::ReadAggregates {
                // An unknown level is the handler's 400; for access it is the strictest level.
                level: parse_level(r.param("level")).unwrap_or(Level::Building),
                predefined: r.param("meters").is_none(),
            })
        }),
    },
    Route {
        path: "/v1/aggregates/releases",
        methods: &[Method::GET, Method::POST],
        question: None,
        parameters: Some(&[]),
        put_parameters: &[],
        guard: Guard::Action(|r| match r.method {
            _ if r.get() => Some(Action::ListReleases),
            &Method::POST => Some(Action::Release),
            _ => None,
        }),
    },
    Route {
        path: "/v1/audit",
        methods: GET,
        question: None,
        parameters: Some(&["meter", "who", "from", "to"]),
        put_parameters: &[],
        guard: Guard::Action(|r| r.get().then_some(Action::ReadAudit)),
    },
    Route {
        path: "/v1/groups",
        methods: &[Method::GET, Method::PUT],
        question: None,
        parameters: Some(&[]),
        put_parameters: &[],
        guard: Guard::Action(|_| Some(Action::LoadGroups)),
    },
    Route {
        path: "/v1/calendars/:name/colours",
        methods: &[Method::GET, Method::PUT],
        question: None,
        parameters: Some(&["from", "to"]),
        put_parameters: &[],
        guard: Guard::Action(|r| {
            Some(if r.get() {
                Action::ReadColours
            } else {
                Action::ManageCalendars
            })
        }),
    },
    Route {
        path: "/v1/meters/:id/contracts",
        methods: &[Method::GET, Method::PUT],
        question: None,
        parameters: Some(&[]),
        put_parameters: &[],
        guard: Guard::Action(|r| {
            Some(if r.get() {
                Action::ReadContracts { meter: r.meter }
            } else {
                Action::ManageCalendars
            })
        }),
    },
    Route {
        path: "/v1/prices/grids",
        methods: &[Method::GET, Method::PUT],
        question: None,
        parameters: Some(&["format"]),
        put_parameters: &[],
        guard: Guard::Priced,
    },
    Route {
        path: "/v1/prices/taxes",
        methods: &[Method::GET, Method::PUT],
        question: None,
        parameters: Some(&["format"]),
        put_parameters: &[],
        guard: Guard::Priced,
    },
    Route {
        path: "/v1/meters/:id/cost",
        methods: GET,
        question: None,
        parameters: Some(&["from", "to", "period", "offer", "format"]),
        put_parameters: &[],
        guard: Guard::Priced,
    },
    Route {
        path: "/v1/meters/:id/estimate",
        methods: GET,
        question: None,
        parameters: Some(&["since", "offer"]),
        put_parameters: &[],
        guard: Guard::Priced,
    },
    Route {
        path: "/v1/meters/:id/offers",
        methods: GET,
        question: None,
        parameters: Some(&["offers", "to", "format"]),
        put_parameters: &[],
        guard: Guard::Priced,
    },
    Route {
        path: "/v1/fleet/offers",
        methods: GET,
        question: None,
        parameters: Some(&["offers", "from", "to"]),
        put_parameters: &[],
        guard: Guard::Priced,
    },
];

/// The entry of every Data Connect metering route ([`dataconnect::ROUTES`]): a GET asks the
/// native question of its endpoint, whose action it is.
pub static METERING: Route = Route {
    path: "/metering_data_*",
    methods: GET,
    question: None,
    parameters: Some(dataconnect::PARAMETERS),
    put_parameters: &[],
    guard: Guard::Action(|r| {
        if !r.get() {
            return None;
        }
        let Some(question) = r.question else {
            return Some(Action::Other);
        };
        match question {
            Question::Curve { channel, .. } => Some(Action::ReadCurve {
                meter: r.meter,
                channel: *channel,
                range_utc: question.range_utc(),
            }),
            _ => read_summary(r),
        }
    }),
};

/// The entry of a route template; `None` for a template that is not declared.
pub fn find(path: &str) -> Option<&'static Route> {
    ROUTES
        .iter()
        .find(|r| r.path == path)
        .or_else(|| dataconnect::endpoint(path).map(|_| &METERING))
}

/// `path`, for the router, once checked to be declared: a route missing from the table is a
/// programming error, refused when the router is built.
pub fn declared(path: &'static str) -> &'static str {
    assert!(
        find(path).is_some(),
        "route {path} is served but not declared in http::routes::ROUTES"
    );
    path
}

/// What a request of `route` does (`None`: a method it does not serve, or a route that is not
/// declared, which the guard answers 404).
pub fn action_of<'a>(route: &str, asking: &Asking<'a, '_>) -> Option<Action<'a>> {
    match find(route)?.guard {
        Guard::Open => None,
        Guard::Action(action) => action(asking),
        Guard::Priced => Some(Action::Other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_declared_once() {
        let mut paths: Vec<&str> = ROUTES.iter().map(|r| r.path).collect();
        paths.extend(dataconnect::ROUTES.iter().map(|(p, _)| *p));
        let all = paths.len();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), all, "a path declared twice");
    }

    #[test]
    fn a_question_route_asks_it_on_get_only_and_every_guarded_route_is_under_v1_or_metering() {
        for r in ROUTES {
            if r.question.is_some() {
                assert!(r.methods.contains(&Method::GET), "{}", r.path);
            }
            let guarded = !matches!(r.guard, Guard::Open);
            let covered = (r.path.starts_with("/v1/") && r.path != PUBLIC)
                || dataconnect::is_metering_path(r.path);
            assert_eq!(guarded, covered, "{}", r.path);
        }
    }

    #[test]
    fn an_undeclared_route_has_no_action() {
        let asking = Asking {
            method: &Method::GET,
            meter: "",
            question: None,
            params: &[],
        };
        assert!(find("/v1/something/new").is_none());
        assert_eq!(action_of("/v1/something/new", &asking), None);
    }
}
