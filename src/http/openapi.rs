//! The OpenAPI 3.1 description of the API, served at `GET /v1/openapi.json`.
//!
//! Its paths, methods and query parameters are read from the route table ([`routes::ROUTES`],
//! [`dataconnect::ROUTES`]): a route is declared there only, and [`document`] describes every
//! method of every route declared (a route without a description here is a programming error,
//! refused by the tests). The JSON answers' schemas are derived from their types
//! (`utoipa::ToSchema`); the answers built from loose JSON (governance, prices) are described as
//! objects and listed in `docs/API.md`. What each operation may answer besides its success is
//! listed per operation from what the guard, the middleware and its handler return.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::http::Method;
use serde_json::{json, Value};
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItemBuilder,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, ObjectBuilder, OpenApi, OpenApiBuilder,
    PathsBuilder, Ref, RefOr, Required, ResponseBuilder, Schema, Type,
};
use utoipa::ToSchema;

use super::body;
use super::dataconnect;
use super::loading::IngestBody;
use super::routes::{self, Guard, Route};
use crate::question::{self, QueryKind};

/// The media type of an Arrow IPC stream answer.
const ARROW: &str = "application/vnd.apache.arrow.stream";
const CSV: &str = "text/csv";

/// The meter the examples name: the first that `courbe demo` shows (its fleet holds it, with a
/// curve; `tests/schemathesis/run.sh` serves that fleet).
pub const EXAMPLE_METER: &str = "09174474470421";

/// The document, built once.
pub fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        document()
            .to_pretty_json()
            .expect("the OpenAPI document serialises")
    })
}

/// `GET /v1/openapi.json`: public, like `/healthz`.
pub(super) async fn serve() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        json(),
    )
        .into_response()
}

/// The OpenAPI path of an axum template (`/v1/meters/:id` is `/v1/meters/{id}`).
pub fn openapi_path(template: &str) -> String {
    template
        .split('/')
        .map(|part| match part.strip_prefix(':') {
            Some(name) => format!("{{{name}}}"),
            None => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Every (template, method) the route table serves, metering routes included.
pub fn served() -> Vec<(&'static str, Method, &'static Route)> {
    let mut out = Vec::new();
    for route in routes::ROUTES {
        for method in route.methods {
            out.push((route.path, method.clone(), route));
        }
    }
    for (path, _) in dataconnect::ROUTES {
        out.push((*path, Method::GET, &routes::METERING));
    }
    out
}

/// The description of every route of the table.
pub fn document() -> OpenApi {
    let mut paths: BTreeMap<String, PathItemBuilder> = BTreeMap::new();
    for (template, method, route) in served() {
        let op = describe(template, &method).unwrap_or_else(|| {
            panic!("{method} {template} is served but has no description in http::openapi")
        });
        let operation = operation(template, &method, route, &op);
        let item = paths.remove(template).unwrap_or_default();
        paths.insert(
            template.to_string(),
            item.operation(http_method(&method), operation),
        );
    }
    let mut builder = PathsBuilder::new();
    for (template, item) in paths {
        builder = builder.path(openapi_path(&template), item.build());
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Courbe")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Load curves of electricity meters: ingest, queries, consent and access \
                     control, prices. The human reference is docs/API.md.",
                ))
                .build(),
        )
        .paths(builder.build())
        .components(Some(components()))
        .security(Some(vec![SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]))
        .build()
}

fn http_method(method: &Method) -> HttpMethod {
    match *method {
        Method::GET => HttpMethod::Get,
        Method::POST => HttpMethod::Post,
        Method::PUT => HttpMethod::Put,
        Method::DELETE => HttpMethod::Delete,
        _ => unreachable!("the route table serves GET, POST, PUT and DELETE"),
    }
}

/// How an operation answers with success.
enum Answer {
    /// JSON of a derived schema, with the other encodings the request may ask for.
    Json(u16, &'static str, &'static [&'static str]),
    /// A JSON object built by its handler (its fields are in docs/API.md), and other encodings.
    Object(u16, &'static [&'static str]),
    /// Text of a media type.
    Text(&'static str),
    /// A body-less 200.
    Empty,
}

/// What a request carries.
enum Body {
    None,
    /// JSON of a schema of the components.
    Schema(&'static str),
    /// CSV text.
    Csv,
    /// The ingest formats.
    Ingest,
    /// An HTML form (OAuth).
    Form,
}

/// One operation.
struct Op {
    id: &'static str,
    tag: &'static str,
    summary: &'static str,
    /// Who may call it (roles), for the description.
    who: &'static str,
    answer: Answer,
    body: Body,
    /// Statuses of its handler beside those every request of its kind may get.
    statuses: &'static [u16],
}

/// What an operation reads and writes, for the statuses every request of the kind may get.
fn describe(template: &str, method: &Method) -> Option<Op> {
    use Answer::*;
    let get = *method == Method::GET;
    let op = |id, tag, summary, who, answer, body, statuses| Op {
        id,
        tag,
        summary,
        who,
        answer,
        body,
        statuses,
    };
    const FORMATS: &[&str] = &[CSV, ARROW];
    Some(match template {
        "/healthz" => op("healthz", "service", "Liveness: `ok`, or `degraded` with a reason (503).", "no token", Json(200, "Health", &[]), Body::None, &[503]),
        "/metrics" => op("metrics", "service", "Prometheus metrics (text format).", "no token", Text("text/plain"), Body::None, &[]),
        "/v1/openapi.json" => op("openapi", "service", "This document.", "no token", Object(200, &[]), Body::None, &[]),
        "/oauth2/v3/token" => op("oauth_token", "data connect", "A one-hour access token for the metering routes (client credentials: the token's subject and the Courbe token).", "a client of the tokens file", Object(200, &[]), Body::Form, &[400, 401, 408, 413, 500]),
        "/oauth2/v3/revoke" => op("oauth_revoke", "data connect", "Ends an access token (RFC 7009): 200 whether or not it was live.", "a client of the tokens file", Empty, Body::Form, &[400, 401, 408, 413]),
        "/v1/ingest" => op("ingest", "ingest", "Ingests native CSV, the SGE export, R50, R151 or Data Connect JSON; accepted points are durable when the answer is sent.", "operator", Json(200, "IngestBody", &[]), Body::Ingest, &[408, 413, 503, 507]),
        "/v1/meters/:id/curve" if get => op("curve", "meters", "The load curve: points, compact runs (`format=columns`), CSV or Arrow.", "operator, consumer of the meter, supplier with a `curve` grant", Json(200, "Curve", FORMATS), Body::None, &[]),
        "/v1/meters/:id/curve" => op("erase_curve", "meters", "Erases the meter's curve (or a range of it): physically gone when the answer is sent.", "operator", Json(200, "EraseBody", &[]), Body::None, &[503, 507]),
        "/v1/meters/:id/energy" => op("energy", "meters", "Wh per local period from the best source (`source`), with points present and expected.", "operator, consumer, supplier with `daily` (whole Paris days) or `curve`", Json(200, "EnergyBody", FORMATS), Body::None, &[]),
        "/v1/meters/:id/peak" => op("peak", "meters", "The highest power per period and when: from `max_power` (VA) where ingested, else the curve (W).", "operator, consumer, supplier with `max_power` or `curve`", Json(200, "PeakBody", &[CSV]), Body::None, &[]),
        "/v1/meters/:id/index" => op("index", "meters", "Each register's index at each period boundary (Europe/Paris).", "operator, consumer, supplier with `daily`", Json(200, "IndexBody", &[CSV]), Body::None, &[]),
        "/v1/meters/:id/summary" => op("summary", "meters", "A civil year's twelve Paris months: indexes, energy, energy per register, maximum power.", "operator, consumer, supplier with `daily` and `max_power`", Json(200, "SummaryBody", &[CSV]), Body::None, &[]),
        "/v1/meters/:id/live" => op("live", "meters", "Server-sent events: each newly ingested consumption reading, with its cost.", "operator, consumer, supplier with a `curve` grant", Text("text/event-stream"), Body::None, &[]),
        "/v1/fleet/curve" => op("fleet_curve", "fleet", "The total of all (or the listed) meters per interval and how many contributed; streamed.", "operator", Json(200, "FleetCurveBody", FORMATS), Body::None, &[]),
        "/v1/fleet/energy" => op("fleet_energy", "fleet", "Every meter's energy per period; streamed, 1,024 meters at a time.", "operator", Json(200, "FleetEnergyBody", FORMATS), Body::None, &[]),
        "/v1/prices/spot/:area" if get => op("spot_get", "prices", "The spot prices of an area (EUR/MWh).", "every token", Object(200, &[]), Body::None, &[]),
        "/v1/prices/spot/:area" => op("spot_put", "prices", "Stores spot prices (CSV `ts,price[,step_min]`).", "operator", Json(200, "IngestBody", &[]), Body::Csv, &[408, 413, 503, 507]),
        "/v1/meters/:id/consent" if get => op("consent_get", "governance", "The meter's collection consent and its history.", "operator, consumer, supplier with a grant in force", Json(200, "ConsentBody", &[]), Body::None, &[]),
        "/v1/meters/:id/consent" => op("consent_post", "governance", "Records a consent decision; `erase` erases the whole curve.", "operator, consumer", Json(201, "ConsentBody", &[]), Body::Schema("ConsentRequest"), &[408, 413, 503, 507]),
        "/v1/meters/:id/grants" if get => op("grants_get", "governance", "The meter's grants to suppliers.", "operator, consumer", Json(200, "GrantsBody", &[]), Body::None, &[]),
        "/v1/meters/:id/grants" => op("grants_post", "governance", "Grants a supplier the kinds of data it may read over a range.", "operator", Json(201, "GrantJson", &[]), Body::Schema("GrantRequest"), &[408, 413, 507]),
        "/v1/meters/:id/grants/:grant" => op("grant_delete", "governance", "Revokes a grant.", "operator", Json(200, "GrantJson", &[]), Body::None, &[507]),
        "/v1/meters/:id/export" => op("export", "governance", "Everything held about the meter (JSON), or one channel's native CSV.", "operator, consumer", Object(200, &[CSV]), Body::None, &[]),
        "/v1/meters/:id/compare" => op("compare", "governance", "The meter's monthly energy next to the quartiles of its IRIS, commune and all meters.", "operator, consumer", Object(200, &[]), Body::None, &[]),
        "/v1/aggregates" => op("aggregates", "aggregates", "Anonymised aggregates per group and period (released months only, but for operators).", "every token; `building` for operator and public_body; `meters` for operator", Object(200, &[]), Body::None, &[404]),
        "/v1/aggregates/releases" if get => op("releases_get", "aggregates", "The releases of anonymised aggregates.", "every token", Object(200, &[]), Body::None, &[]),
        "/v1/aggregates/releases" => op("releases_post", "aggregates", "Freezes the anonymised aggregates of whole Paris months, once.", "operator", Object(201, &[]), Body::Schema("ReleaseBody"), &[408, 409, 413, 507]),
        "/v1/audit" => op("audit", "governance", "The audit trail of supplier reads.", "operator", Json(200, "Audit", &[]), Body::None, &[]),
        "/v1/groups" if get => op("groups_get", "aggregates", "Group sizes per level.", "operator", Object(200, &[]), Body::None, &[]),
        "/v1/groups" => op("groups_put", "aggregates", "Loads group memberships (CSV `meter_id,commune,iris[,building]`).", "operator", Object(200, &[]), Body::Csv, &[408, 413, 507]),
        "/v1/calendars/:name/colours" if get => op("colours_get", "prices", "The day colours of a calendar (`tempo`, `ejp`).", "every token", Object(200, &[]), Body::None, &[]),
        "/v1/calendars/:name/colours" => op("colours_put", "prices", "Stores day colours (CSV `date,colour`).", "operator", Object(200, &[]), Body::Csv, &[408, 413, 507]),
        "/v1/meters/:id/contracts" if get => op("contracts_get", "prices", "The meter's tariff contracts.", "operator, consumer, supplier with a grant", Object(200, &[]), Body::None, &[]),
        "/v1/meters/:id/contracts" => op("contracts_put", "prices", "Replaces the meter's tariff contracts.", "operator", Object(200, &[]), Body::Schema("Contracts"), &[408, 413, 507]),
        "/v1/prices/grids" if get => op("grids_get", "prices", "The offers' price grids.", "every token", Object(200, &[CSV]), Body::None, &[]),
        "/v1/prices/grids" => op("grids_put", "prices", "Stores price grids (CSV `grid,option,kva,from,to,item,eur`).", "operator", Object(200, &[]), Body::Csv, &[408, 413, 507]),
        "/v1/prices/taxes" if get => op("taxes_get", "prices", "The taxes.", "every token", Object(200, &[CSV]), Body::None, &[]),
        "/v1/prices/taxes" => op("taxes_put", "prices", "Stores taxes (CSV `tax,kind,from,to,value`).", "operator", Object(200, &[]), Body::Csv, &[408, 413, 507]),
        "/v1/meters/:id/cost" => op("cost", "prices", "The meter's cost per period under an offer or its contracts.", "as energy over the same days", Object(200, &[CSV]), Body::None, &[]),
        "/v1/meters/:id/estimate" => op("estimate", "prices", "The D.224-29 estimate of unbilled cost.", "as energy over the same days", Object(200, &[]), Body::None, &[]),
        "/v1/meters/:id/offers" => op("offers", "prices", "Twelve months under each offer, side by side.", "as energy over the same days", Object(200, &[CSV]), Body::None, &[]),
        "/v1/fleet/offers" => op("fleet_offers", "prices", "Quartiles and mean of each meter's saving of one offer over another.", "operator; public_body from 10 meters", Object(200, &[]), Body::None, &[]),
        t if dataconnect::endpoint(t).is_some() => op("", "data connect", "Data Connect v5 metering data (Data Connect's JSON shapes).", "as the native question it asks", Object(200, &[]), Body::None, &[]),
        _ => return None,
    })
}

/// The operation of one method of one route.
fn operation(
    template: &str,
    method: &Method,
    route: &Route,
    op: &Op,
) -> utoipa::openapi::path::Operation {
    let metering = dataconnect::endpoint(template).is_some();
    let oauth = template.starts_with("/oauth2/");
    let guarded = !matches!(route.guard, Guard::Open);
    let id = if metering {
        template.trim_start_matches('/').replace(['/', '.'], "_")
    } else {
        op.id.to_string()
    };
    let mut b = OperationBuilder::new()
        .operation_id(Some(id))
        .tag(op.tag)
        .summary(Some(op.summary))
        .description(Some(format!("Who: {}.", op.who)));
    if !guarded {
        b = b.securities(Some(Vec::<SecurityRequirement>::new()));
    }
    for name in template.split('/').filter_map(|p| p.strip_prefix(':')) {
        b = b.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some(path_description(name)))
                .schema(Some(path_schema(name)))
                .example(path_example(name))
                .build(),
        );
    }
    let asks = *method == Method::GET && route.question.is_some();
    let names: &[&str] = match (route.question, route.parameters_of(method)) {
        (Some(kind), _) if asks => kind.parameters(),
        (_, Some(names)) => names,
        _ => &[],
    };
    for name in names {
        let (schema, required) = query_schema(template, route.question, name);
        b = b.parameter(
            ParameterBuilder::new()
                .name(*name)
                .parameter_in(ParameterIn::Query)
                .required(if required {
                    Required::True
                } else {
                    Required::False
                })
                .description(Some(query_description(name)))
                .schema(Some(schema))
                .example(query_example(template, route.question, name))
                .build(),
        );
    }
    b = match op.body {
        Body::None => b,
        Body::Schema(name) => b.request_body(Some(body(&[(
            "application/json",
            RefOr::Ref(Ref::from_schema_name(name)),
        )]))),
        Body::Csv => b.request_body(Some(body(&[(CSV, text())]))),
        Body::Form => b.request_body(Some(body(&[(
            "application/x-www-form-urlencoded",
            object(),
        )]))),
        Body::Ingest => b.request_body(Some(body(&[
            (CSV, text()),
            ("application/xml", text()),
            ("application/json", object()),
        ]))),
    };
    let (status, ok) = success(&op.answer);
    b = b.response(status.to_string(), ok);
    let error = if metering || oauth {
        "OAuthError"
    } else {
        "Error"
    };
    let mut statuses: Vec<u16> = vec![414, 431];
    if guarded {
        // The guard: no valid token, not allowed, a parameter the route does not read.
        statuses.extend([400, 401, 403]);
    }
    if template.contains("/:") || metering || asks {
        // An unreadable meter id or argument; a meter (or grant) Courbe holds nothing about.
        statuses.extend([400, 404]);
    }
    if guarded || *method != Method::GET {
        // A failure of the store or of a registry under it.
        statuses.push(500);
    }
    statuses.extend(op.statuses);
    statuses.sort_unstable();
    statuses.dedup();
    for s in statuses {
        b = b.response(
            s.to_string(),
            RefOr::Ref(Ref::from_response_name(response_name(error, s))),
        );
    }
    b.build()
}

fn body(media: &[(&str, RefOr<Schema>)]) -> utoipa::openapi::request_body::RequestBody {
    let mut b = RequestBodyBuilder::new().required(Some(Required::True));
    for (m, schema) in media {
        b = b.content(
            *m,
            ContentBuilder::new().schema(Some(schema.clone())).build(),
        );
    }
    b.build()
}

fn object() -> RefOr<Schema> {
    RefOr::T(Schema::Object(
        ObjectBuilder::new().schema_type(Type::Object).build(),
    ))
}

fn text() -> RefOr<Schema> {
    RefOr::T(Schema::Object(
        ObjectBuilder::new().schema_type(Type::String).build(),
    ))
}

fn binary() -> RefOr<Schema> {
    RefOr::T(Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .content_media_type(ARROW)
            .build(),
    ))
}

fn string_schema(pattern: Option<&str>, values: Option<&[&str]>) -> RefOr<Schema> {
    let mut b = ObjectBuilder::new().schema_type(Type::String);
    if let Some(p) = pattern {
        b = b.pattern(Some(p));
    }
    if let Some(v) = values {
        b = b.enum_values(Some(v.iter().copied()));
    }
    RefOr::T(Schema::Object(b.build()))
}

/// The success answer of an operation.
fn success(answer: &Answer) -> (u16, utoipa::openapi::Response) {
    match answer {
        Answer::Json(status, schema, others) => {
            let mut b = ResponseBuilder::new().description("The answer.").content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(RefOr::Ref(Ref::from_schema_name(*schema))))
                    .build(),
            );
            for m in *others {
                b = b.content(*m, ContentBuilder::new().schema(Some(other(m))).build());
            }
            (*status, b.build())
        }
        Answer::Object(status, others) => {
            let mut b = ResponseBuilder::new()
                .description("The answer (its fields: docs/API.md).")
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(object())).build(),
                );
            for m in *others {
                b = b.content(*m, ContentBuilder::new().schema(Some(other(m))).build());
            }
            (*status, b.build())
        }
        Answer::Text(media) => (
            200,
            ResponseBuilder::new()
                .description("The answer.")
                .content(*media, ContentBuilder::new().schema(Some(text())).build())
                .build(),
        ),
        Answer::Empty => (200, ResponseBuilder::new().description("Done.").build()),
    }
}

fn other(media: &str) -> RefOr<Schema> {
    if media == ARROW {
        binary()
    } else {
        text()
    }
}

/// What each error status means, for every operation that may answer it.
const STATUSES: &[(u16, &str)] = &[
    (400, "An invalid argument, named: an unreadable date, `from` not before `to`, an unknown zone, period, tariff or parameter, a parameter given twice, a document that is not well-formed."),
    (401, "No valid bearer token (or two `Authorization` headers)."),
    (403, "Not allowed: the same whether or not the meter exists."),
    (404, "An unknown meter (or grant, or release), or months not released."),
    (408, "The body did not arrive within the server's body read timeout."),
    (409, "A release overlapping a release of the same channel."),
    (413, "A body over the limit, refused before it is read."),
    (414, "A request target over 8 KiB."),
    (431, "Over 100 header lines or 64 KiB of headers."),
    (500, "A failure of the server or of the data under it; the detail is in the server log."),
    (503, "The store refuses writes after an I/O failure, or too many bodies are in memory."),
    (507, "The server's disk is full: nothing was stored."),
];

fn response_name(error: &str, status: u16) -> String {
    format!("{error}{status}")
}

fn components() -> utoipa::openapi::Components {
    let mut schemas: Vec<(String, RefOr<Schema>)> = Vec::new();
    fn add<T: ToSchema>(out: &mut Vec<(String, RefOr<Schema>)>) {
        out.push((T::name().to_string(), T::schema()));
        T::schemas(out);
    }
    add::<body::CurveBody>(&mut schemas);
    add::<body::RunsBody>(&mut schemas);
    add::<body::EnergyBody>(&mut schemas);
    add::<body::PeakBody>(&mut schemas);
    add::<body::IndexBody>(&mut schemas);
    add::<body::SummaryBody>(&mut schemas);
    add::<body::FleetCurveBody>(&mut schemas);
    add::<body::FleetEnergyBody>(&mut schemas);
    add::<body::EraseBody>(&mut schemas);
    add::<body::IndexReadingJson>(&mut schemas);
    add::<IngestBody>(&mut schemas);
    add::<crate::governance::http::ConsentRequest>(&mut schemas);
    add::<crate::governance::http::GrantRequest>(&mut schemas);
    add::<crate::governance::http::ReleaseBody>(&mut schemas);
    add::<crate::governance::http::ConsentBody>(&mut schemas);
    add::<crate::governance::http::GrantsBody>(&mut schemas);
    add::<crate::governance::http::AuditJson>(&mut schemas);
    let mut b = ComponentsBuilder::new()
        .schemas_from_iter(schemas)
        .schema("Error", from_json(error_schema()))
        .schema("OAuthError", from_json(oauth_error_schema()))
        .schema("Health", from_json(health_schema()))
        .schema("Contracts", from_json(contracts_schema()))
        .schema(
            "Curve",
            from_json(json!({
                "description": "Points, or with `format=columns` runs of consecutive intervals.",
                "oneOf": [
                    {"$ref": "#/components/schemas/CurveBody"},
                    {"$ref": "#/components/schemas/RunsBody"}
                ]
            })),
        )
        .schema(
            "Audit",
            from_json(json!({
                "type": "object",
                "required": ["records"],
                "properties": {"records": {"type": "array", "items": {"$ref": "#/components/schemas/AuditJson"}}}
            })),
        )
        .security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token of the tokens file (`courbe token add`), or on the Data Connect \
                         routes an access token of `POST /oauth2/v3/token`.",
                    ))
                    .build(),
            ),
        );
    for (error, media) in [
        ("Error", "application/json"),
        ("OAuthError", "application/json"),
    ] {
        for (status, description) in STATUSES {
            let mut r = ResponseBuilder::new().description(*description).content(
                media,
                ContentBuilder::new()
                    .schema(Some(RefOr::Ref(Ref::from_schema_name(error))))
                    .build(),
            );
            if *status == 401 {
                r = r.header(
                    "WWW-Authenticate",
                    utoipa::openapi::HeaderBuilder::new()
                        .schema(text())
                        .description(Some("`Bearer`"))
                        .build(),
                );
            }
            b = b.response(response_name(error, *status), r.build());
        }
    }
    b.build()
}

fn from_json(value: Value) -> RefOr<Schema> {
    serde_json::from_value(value).expect("a schema written here reads")
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "enum": [
                        "invalid_argument", "unknown_meter", "unknown_zone", "unknown_period",
                        "bad_tariff", "malformed_document", "payload_too_large",
                        "method_not_allowed", "unauthorized", "forbidden", "not_found",
                        "request_timeout", "uri_too_long", "headers_too_large", "unavailable",
                        "insufficient_storage", "internal", "conflict", "not_released"
                    ]},
                    "message": {"type": "string"}
                }
            }
        }
    })
}

fn oauth_error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["error", "error_description"],
        "properties": {
            "error": {"type": "string", "description": "`invalid_token` (401), `ADAM-DC-0008` (403), `invalid_request`, `invalid_client`, `unsupported_grant_type`, or a Courbe error code."},
            "error_description": {"type": "string"}
        }
    })
}

/// The body of `PUT /v1/meters/{id}/contracts` (`governance::calendars::Contract`).
fn contracts_schema() -> Value {
    json!({
        "type": "array",
        "items": {
            "type": "object",
            "required": ["option", "from"],
            "properties": {
                "option": {"type": "string", "description": "`BASE`, `HPHC`, `TEMPO`, `EJP`, `SEASONAL`..."},
                "from": {"type": "string", "description": "`YYYY-MM-DD`, a Paris midnight."},
                "to": {"type": ["string", "null"], "description": "`YYYY-MM-DD`, excluded; null: open."},
                "hc": {"type": "string", "description": "Off-peak windows, for `HPHC` and `SEASONAL`."}
            },
            "additionalProperties": false
        }
    })
}

fn health_schema() -> Value {
    json!({
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "degraded"]},
            "reason": {"type": "string"}
        }
    })
}

fn path_description(name: &str) -> &'static str {
    match name {
        "id" => "A meter id: 1 to 64 characters of `[0-9A-Za-z_.-]`, not only dots.",
        "grant" => "A grant's id.",
        "area" => "A spot price area (`FR`).",
        "name" => "A calendar: `tempo` or `ejp`.",
        _ => "",
    }
}

fn path_schema(name: &str) -> RefOr<Schema> {
    match name {
        "id" => string_schema(Some("^[0-9A-Za-z_.-]{1,64}$"), None),
        _ => text(),
    }
}

fn path_example(name: &str) -> Option<Value> {
    Some(match name {
        "id" => json!(EXAMPLE_METER),
        "grant" => json!("1"),
        "area" => json!("FR"),
        "name" => json!("tempo"),
        _ => return None,
    })
}

const DATE_OR_INSTANT: &str =
    "An RFC 3339 instant with any offset, or a local date `YYYY-MM-DD` (midnight in `tz`).";

fn query_description(name: &str) -> String {
    match name {
        "from" => format!("Start, inclusive. {DATE_OR_INSTANT}"),
        "to" => format!("End, exclusive. {DATE_OR_INSTANT}"),
        "tz" => "A time zone of the tz database (default `Europe/Paris`).".into(),
        "period" => "The calendar period of each row.".into(),
        "tariff" => "`HC:22:00-06:00[,..]` (HP/HC split), `option:NAME[:WINDOWS]` or `contract` (energy per register).".into(),
        "channel" => "`consumption` (default), `production`, `max_power`, `daily_energy`, `price`...".into(),
        "format" => "The encoding of the answer (an explicit `format` wins over `Accept`).".into(),
        "meters" => "Comma-separated meter ids (default: all).".into(),
        "year" => "A civil year.".into(),
        "series" => "A price series `spot-AREA` (with `channel=price`; on the live view, the prices of the costs).".into(),
        "since" => "The first day of the estimate, `YYYY-MM-DD`.".into(),
        "offer" => "A grid name, or `contract` (the meter's contracts).".into(),
        "offers" => "Comma-separated grid names.".into(),
        "level" => "`all`, `commune` (default), `iris` or `building`.".into(),
        "code" => "The group's code at its level.".into(),
        "kind" => "`energy` (default) or `curve`.".into(),
        "source" => "`release` to read an operator's aggregates from releases.".into(),
        "meter" => "A meter id.".into(),
        "who" => "A token's role or subject.".into(),
        "usage_point_id" => "The 14-digit delivery point (PRM).".into(),
        "start" => "First day, `YYYY-MM-DD` (Europe/Paris).".into(),
        "end" => "Last day, excluded, `YYYY-MM-DD` (Europe/Paris).".into(),
        _ => String::new(),
    }
}

/// The schema of a query parameter and whether it is required.
fn query_schema(template: &str, kind: Option<QueryKind>, name: &str) -> (RefOr<Schema>, bool) {
    let question = kind.is_some();
    let required = match name {
        "from" | "to" => question && kind != Some(QueryKind::Summary),
        "period" => matches!(
            kind,
            Some(QueryKind::Energy | QueryKind::FleetEnergy | QueryKind::Peak | QueryKind::Index)
        ),
        "year" => true,
        "usage_point_id" | "start" | "end" => true,
        "since" | "offer" | "offers" => true,
        _ => false,
    };
    let schema = match name {
        "period" => string_schema(
            None,
            Some(match kind {
                Some(QueryKind::Index) => &["day", "month"],
                Some(QueryKind::Peak) => &["day", "month", "year"],
                _ if template == "/v1/meters/:id/cost" => &["day", "month", "year"],
                _ => &["day", "week", "month", "year"],
            }),
        ),
        "format" => string_schema(
            None,
            Some(match kind {
                Some(QueryKind::Curve) => &["points", "columns", "json", "csv", "arrow"],
                Some(k) if k.answers_arrow() => &["json", "csv", "arrow"],
                _ => &["json", "csv"],
            }),
        ),
        "year" => string_schema(Some("^[0-9]{4}$"), None),
        "usage_point_id" => string_schema(Some("^[0-9]{14}$"), None),
        "from" | "to" if template == "/v1/calendars/:name/colours" => {
            from_json(json!({"type": "string", "format": "date"}))
        }
        "from" | "to" => from_json(json!({"anyOf": [
            {"type": "string", "format": "date"},
            {"type": "string", "format": "date-time"}
        ]})),
        "since" | "start" | "end" => from_json(json!({"type": "string", "format": "date"})),
        "level" => string_schema(None, Some(&["all", "commune", "iris", "building"])),
        "kind" => string_schema(None, Some(&["energy", "curve"])),
        _ => text(),
    };
    (
        with_examples(schema, query_examples(template, kind, name)),
        required,
    )
}

/// `schema` with `examples` (JSON Schema's keyword): values the demo fleet answers, which a
/// fuzzer starts from.
fn with_examples(schema: RefOr<Schema>, examples: Vec<Value>) -> RefOr<Schema> {
    if examples.is_empty() {
        return schema;
    }
    let mut value = serde_json::to_value(&schema).expect("a schema serialises");
    value["examples"] = Value::Array(examples);
    from_json(value)
}

/// Values of a query parameter that the demo fleet answers, the parameter's example first.
fn query_examples(template: &str, kind: Option<QueryKind>, name: &str) -> Vec<Value> {
    let mut out: Vec<Value> = query_example(template, kind, name).into_iter().collect();
    let more: &[&str] = match name {
        "from" | "to" if template == "/v1/calendars/:name/colours" => &[],
        "from" => &["2024-01-01T00:00:00+01:00", "2024-01-15"],
        "to" => &["2024-01-03T12:00:00Z", "2024-03-01"],
        "tz" => &["UTC", "America/New_York"],
        "channel" => &["consumption", "production", "max_power"],
        "tariff" => &["HC:22:00-06:00", "option:TEMPO", "contract"],
        "meters" => &[EXAMPLE_METER],
        "format" => match kind {
            Some(QueryKind::Curve) => &["points", "columns", "csv", "arrow"],
            Some(k) if k.answers_arrow() => &["json", "csv", "arrow"],
            _ => &["json", "csv"],
        },
        "period" if kind == Some(QueryKind::Index) => &["day", "month"],
        "period" => &["day", "month"],
        "offer" => &["bleu-base-6", "contract"],
        "offers" => &["bleu-base-6,bleu-hphc-6"],
        "since" => &["2024-02-01"],
        "level" => &["all", "commune"],
        _ => &[],
    };
    for v in more {
        let v = json!(v);
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// An example of a parameter that the demo fleet answers.
fn query_example(template: &str, kind: Option<QueryKind>, name: &str) -> Option<Value> {
    let day = matches!(kind, Some(QueryKind::Curve | QueryKind::FleetCurve));
    Some(match name {
        "from" if day => json!("2024-01-02"),
        "to" if day => json!("2024-01-03"),
        "from" => json!("2024-01-01"),
        "to" => json!("2024-02-01"),
        "period" if kind == Some(QueryKind::Index) => json!("day"),
        "period" if template.contains("aggregates") => json!("month"),
        "period" => json!("day"),
        "tz" => json!(question::DEFAULT_TZ),
        "year" => json!("2024"),
        "usage_point_id" => json!(EXAMPLE_METER),
        "start" => json!("2024-01-01"),
        "end" => json!("2024-01-08"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_of_every_declared_route_is_described_and_nothing_else_is() {
        let doc: Value = serde_json::from_str(json()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        let mut served: Vec<(String, String)> = served()
            .iter()
            .map(|(t, m, _)| (openapi_path(t), m.as_str().to_ascii_lowercase()))
            .collect();
        served.sort();
        let mut described: Vec<(String, String)> = paths
            .iter()
            .flat_map(|(p, item)| {
                item.as_object()
                    .unwrap()
                    .keys()
                    .map(move |m| (p.clone(), m.clone()))
            })
            .collect();
        described.sort();
        assert_eq!(served, described);
    }

    #[test]
    fn the_openapi_path_of_a_template_names_its_parameters_in_braces() {
        assert_eq!(
            openapi_path("/v1/meters/:id/grants/:grant"),
            "/v1/meters/{id}/grants/{grant}"
        );
        assert_eq!(openapi_path("/healthz"), "/healthz");
    }
}
