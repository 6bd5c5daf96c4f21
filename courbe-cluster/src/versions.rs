//! What `object_store` does not ask an S3 bucket: its versioning (GetBucketVersioning), the
//! versions under a prefix (ListObjectVersions) and the deletion of one version (DeleteObject
//! with `versionId`). Requests are signed by `object_store`'s own SigV4 signer and sent by its
//! HTTP client (docs/SCALE-OUT.md, "Versioned buckets").

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::{AwsAuthorizer, AwsCredential};
use object_store::client::{HttpClient, HttpRequest, HttpRequestBody};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::Method;
use serde::Deserialize;

use crate::objects::S3Config;
use crate::{Error, Result};

/// A bucket's versioning, as GetBucketVersioning answers it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Versioning {
    /// Never enabled (an answer without `Status`): a DELETE removes the bytes.
    #[default]
    Never,
    /// Every overwrite and DELETE keeps the previous bytes as a noncurrent version.
    Enabled,
    /// New writes keep no version, but the versions kept while it was enabled stay.
    Suspended,
    /// The server does not implement GetBucketVersioning (501 `NotImplemented`): it keeps no
    /// versions.
    NotImplemented,
}

impl Versioning {
    /// Whether the bucket may hold bytes in versions other than the current ones.
    pub fn keeps_versions(self) -> bool {
        matches!(self, Versioning::Enabled | Versioning::Suspended)
    }
}

/// One entry of a ListObjectVersions answer: a version of an object, or a delete marker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    pub key: String,
    pub version_id: String,
    pub is_latest: bool,
    pub delete_marker: bool,
}

impl Version {
    /// Whether it is anything but the current bytes of a live object: a noncurrent version
    /// (old bytes) or a delete marker (current or not).
    pub fn is_garbage(&self) -> bool {
        self.delete_marker || !self.is_latest
    }
}

/// What [`S3Api::purge`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    /// Noncurrent versions deleted (each held an object's old bytes).
    pub versions: u64,
    pub delete_markers: u64,
    /// ListObjectVersions requests (pages), the check after the deletions included.
    pub pages: u64,
}

/// Everything but the unreserved characters of RFC 3986, as S3 wants query values and keys.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The same, keeping `/` (an object key in the path).
const ENCODE_PATH: &AsciiSet = &ENCODE.remove(b'/');

/// Versions asked for per ListObjectVersions page (the S3 maximum).
const PAGE: usize = 1000;

/// The bucket-level requests of one S3 bucket.
pub(crate) struct S3Api {
    client: HttpClient,
    /// `scheme://host[:port]`, no trailing slash; requests are path-style.
    endpoint: String,
    bucket: String,
    region: String,
    credential: AwsCredential,
    /// Set once a NotImplemented answer to GetBucketVersioning was logged.
    told_not_implemented: AtomicBool,
}

impl S3Api {
    pub(crate) fn new(config: &S3Config) -> Result<S3Api> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::S3 {
                what: format!("an HTTP client for {}", config.endpoint),
                detail: e.to_string(),
            })?;
        Ok(S3Api {
            client: HttpClient::new(client),
            endpoint: config.endpoint.trim_end_matches('/').to_owned(),
            bucket: config.bucket.clone(),
            region: config.region.clone(),
            credential: AwsCredential {
                key_id: config.access_key.clone(),
                secret_key: config.secret_key.clone(),
                token: None,
            },
            told_not_implemented: AtomicBool::new(false),
        })
    }

    /// One signed request without a body: the answer's status and bytes. `path_and_query`
    /// follows the bucket (`/key?...` or `?...`).
    async fn send(&self, method: Method, path_and_query: &str, what: &str) -> Result<Answer> {
        let fail = |detail: String| Error::S3 {
            what: what.to_owned(),
            detail,
        };
        let url = format!(
            "{}/{}{path_and_query}",
            self.endpoint,
            utf8_percent_encode(&self.bucket, ENCODE)
        );
        let mut request = HttpRequest::new(HttpRequestBody::empty());
        *request.method_mut() = method;
        *request.uri_mut() = url
            .parse()
            .map_err(|e| fail(format!("bad URL {url}: {e}")))?;
        AwsAuthorizer::new(&self.credential, "s3", &self.region).authorize(&mut request, None);
        let response = self
            .client
            .execute(request)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .bytes()
            .await
            .map_err(|e| fail(e.to_string()))?;
        Ok(Answer { status, body })
    }

    /// GetBucketVersioning. A NotImplemented answer is logged once per handle.
    pub(crate) async fn versioning(&self) -> Result<Versioning> {
        let what = format!("GetBucketVersioning on bucket {}", self.bucket);
        let answer = self.send(Method::GET, "?versioning", &what).await?;
        if answer.status == 501 || answer.code().as_deref() == Some("NotImplemented") {
            if !self.told_not_implemented.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    bucket = %self.bucket,
                    "the object store does not implement GetBucketVersioning: taken as a \
                     bucket that keeps no versions"
                );
            }
            return Ok(Versioning::NotImplemented);
        }
        if answer.status != 200 {
            return Err(answer.error(&what));
        }
        parse_versioning(&answer.body).map_err(|detail| Error::S3 { what, detail })
    }

    /// Every version and delete marker whose key starts with `prefix`, all pages; and the
    /// number of pages asked.
    pub(crate) async fn list_versions(&self, prefix: &str) -> Result<(Vec<Version>, u64)> {
        let what = format!("ListObjectVersions of {prefix} in bucket {}", self.bucket);
        let mut all = Vec::new();
        let mut pages = 0;
        let mut marker: Option<(String, String)> = None;
        loop {
            let mut query = format!(
                "?versions&max-keys={PAGE}&prefix={}",
                utf8_percent_encode(prefix, ENCODE)
            );
            if let Some((key, version)) = &marker {
                query.push_str(&format!(
                    "&key-marker={}&version-id-marker={}",
                    utf8_percent_encode(key, ENCODE),
                    utf8_percent_encode(version, ENCODE)
                ));
            }
            let answer = self.send(Method::GET, &query, &what).await?;
            pages += 1;
            if answer.status != 200 {
                return Err(answer.error(&what));
            }
            let page = parse_versions(&answer.body).map_err(|detail| Error::S3 {
                what: what.clone(),
                detail,
            })?;
            all.extend(page.versions);
            if !page.truncated {
                return Ok((all, pages));
            }
            let next = page.next.ok_or_else(|| Error::S3 {
                what: what.clone(),
                detail: "a truncated page without NextKeyMarker".into(),
            })?;
            if marker.as_ref() == Some(&next) {
                return Err(Error::S3 {
                    what,
                    detail: format!("the page after {next:?} starts at the same place again"),
                });
            }
            marker = Some(next);
        }
    }

    /// DeleteObject of one version (or delete marker) by its `versionId`. A version already
    /// gone (404) is not an error: the listing after the deletions is the check.
    pub(crate) async fn delete_version(&self, v: &Version) -> Result<()> {
        let what = format!(
            "DeleteObject {} versionId {} in bucket {}",
            v.key, v.version_id, self.bucket
        );
        let path = format!(
            "/{}?versionId={}",
            utf8_percent_encode(&v.key, ENCODE_PATH),
            utf8_percent_encode(&v.version_id, ENCODE)
        );
        let answer = self.send(Method::DELETE, &path, &what).await?;
        match answer.status {
            200 | 204 | 404 => Ok(()),
            _ => Err(answer.error(&what)),
        }
    }
}

/// A server's answer.
struct Answer {
    status: u16,
    body: Bytes,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorBody {
    code: Option<String>,
    message: Option<String>,
}

impl Answer {
    fn error_body(&self) -> Option<ErrorBody> {
        let text = std::str::from_utf8(&self.body).ok()?;
        quick_xml::de::from_str(text).ok()
    }

    /// The S3 error code of an error answer.
    fn code(&self) -> Option<String> {
        self.error_body().and_then(|e| e.code)
    }

    /// The error naming the request, the status and the server's code and message.
    fn error(&self, what: &str) -> Error {
        let detail = match self.error_body() {
            Some(ErrorBody { code, message }) => format!(
                "HTTP {} {}{}",
                self.status,
                code.as_deref().unwrap_or("(no code)"),
                message.map(|m| format!(": {m}")).unwrap_or_default()
            ),
            None => format!("HTTP {}", self.status),
        };
        Error::S3 {
            what: what.to_owned(),
            detail,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VersioningConfiguration {
    status: Option<String>,
}

/// A GetBucketVersioning answer's body.
fn parse_versioning(body: &[u8]) -> std::result::Result<Versioning, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("the answer is not UTF-8: {e}"))?;
    let config: VersioningConfiguration = quick_xml::de::from_str(text)
        .map_err(|e| format!("the answer is not a VersioningConfiguration: {e}"))?;
    match config.status.as_deref().map(str::trim) {
        None | Some("") => Ok(Versioning::Never),
        Some("Enabled") => Ok(Versioning::Enabled),
        Some("Suspended") => Ok(Versioning::Suspended),
        Some(other) => Err(format!("unknown versioning status {other:?}")),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListVersionsResult {
    #[serde(default)]
    is_truncated: bool,
    next_key_marker: Option<String>,
    next_version_id_marker: Option<String>,
    #[serde(rename = "Version", default)]
    versions: Vec<Entry>,
    #[serde(rename = "DeleteMarker", default)]
    delete_markers: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    key: String,
    version_id: String,
    #[serde(default)]
    is_latest: bool,
}

/// One page of a ListObjectVersions answer.
struct Page {
    versions: Vec<Version>,
    truncated: bool,
    /// Where the next page starts: the key and version id markers.
    next: Option<(String, String)>,
}

fn parse_versions(body: &[u8]) -> std::result::Result<Page, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("the answer is not UTF-8: {e}"))?;
    let result: ListVersionsResult = quick_xml::de::from_str(text)
        .map_err(|e| format!("the answer is not a ListVersionsResult: {e}"))?;
    let entry = |e: Entry, delete_marker: bool| Version {
        key: e.key,
        version_id: e.version_id,
        is_latest: e.is_latest,
        delete_marker,
    };
    let mut versions: Vec<Version> = result
        .versions
        .into_iter()
        .map(|e| entry(e, false))
        .collect();
    versions.extend(result.delete_markers.into_iter().map(|e| entry(e, true)));
    Ok(Page {
        versions,
        truncated: result.is_truncated,
        next: result
            .next_key_marker
            .map(|k| (k, result.next_version_id_marker.unwrap_or_default())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_versioning_answer_reads_as_never_enabled_or_suspended_and_anything_else_is_an_error() {
        let ns = r#"xmlns="http://s3.amazonaws.com/doc/2006-03-01/""#;
        let of = |s: &str| parse_versioning(s.as_bytes());
        assert_eq!(
            of(&format!("<VersioningConfiguration {ns}/>")),
            Ok(Versioning::Never)
        );
        assert_eq!(
            of(&format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<VersioningConfiguration {ns}>\
                 <Status>Enabled</Status><MfaDelete>Disabled</MfaDelete></VersioningConfiguration>"
            )),
            Ok(Versioning::Enabled)
        );
        assert_eq!(
            of("<VersioningConfiguration><Status>Suspended</Status></VersioningConfiguration>"),
            Ok(Versioning::Suspended)
        );
        assert!(
            of("<VersioningConfiguration><Status>Maybe</Status></VersioningConfiguration>")
                .is_err()
        );
        for bad in ["", "<Versioning", "\u{0}\u{ff}", "<a><b></a>"] {
            assert!(of(bad).is_err(), "{bad:?}");
        }
        assert!(parse_versioning(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn a_versions_page_reads_versions_and_delete_markers_interleaved_with_its_next_markers() {
        let page = parse_versions(
            br#"<?xml version="1.0" encoding="UTF-8"?>
<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>courbe</Name><Prefix>p/</Prefix><KeyMarker></KeyMarker><VersionIdMarker></VersionIdMarker>
  <NextKeyMarker>p/b</NextKeyMarker><NextVersionIdMarker>v.3</NextVersionIdMarker>
  <MaxKeys>3</MaxKeys><IsTruncated>true</IsTruncated>
  <Version><Key>p/a</Key><VersionId>v1</VersionId><IsLatest>true</IsLatest>
    <LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>"x"</ETag><Size>3</Size>
    <Owner><ID>o</ID></Owner><StorageClass>STANDARD</StorageClass></Version>
  <DeleteMarker><Key>p/b</Key><VersionId>v2</VersionId><IsLatest>true</IsLatest>
    <LastModified>2026-01-01T00:00:00.000Z</LastModified></DeleteMarker>
  <Version><Key>p/b</Key><VersionId>v.3</VersionId><IsLatest>false</IsLatest><Size>9</Size></Version>
</ListVersionsResult>"#,
        )
        .expect("a page");
        assert!(page.truncated);
        assert_eq!(page.next, Some(("p/b".into(), "v.3".into())));
        let mut got: Vec<_> = page
            .versions
            .iter()
            .map(|v| (v.key.as_str(), v.version_id.as_str(), v.is_garbage()))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("p/a", "v1", false),
                ("p/b", "v.3", true),
                ("p/b", "v2", true)
            ]
        );
        let empty = parse_versions(
            b"<ListVersionsResult><IsTruncated>false</IsTruncated></ListVersionsResult>",
        )
        .expect("an empty page");
        assert!(empty.versions.is_empty() && !empty.truncated && empty.next.is_none());
        for bad in [
            &b""[..],
            b"<ListVersionsResult><Version><Key>k</Key></Version></ListVersionsResult>",
            b"<ListVersionsResult><IsTruncated>yes</IsTruncated></ListVersionsResult>",
            &[0xff, 0x00],
        ] {
            assert!(parse_versions(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_error_answer_names_the_request_status_code_and_message() {
        let answer = Answer {
            status: 403,
            body: Bytes::from_static(
                b"<Error><Code>AccessDenied</Code><Message>no s3:DeleteObjectVersion</Message></Error>",
            ),
        };
        assert_eq!(answer.code().as_deref(), Some("AccessDenied"));
        let text = answer.error("DeleteObject k versionId v").to_string();
        assert!(
            text.contains("DeleteObject k versionId v")
                && text.contains("403 AccessDenied: no s3:DeleteObjectVersion"),
            "{text}"
        );
        let bare = Answer {
            status: 500,
            body: Bytes::new(),
        };
        assert_eq!(bare.code(), None);
        assert!(bare.error("x").to_string().ends_with("HTTP 500"));
    }
}
