//! EST, Enrollment over Secure Transport (RFC 7030), under `/.well-known/est/` with an
//! optional label naming the profile (`/.well-known/est/<profile>/simpleenroll`): `cacerts`
//! (§4.1), `simpleenroll` and `simplereenroll` (§4.2), `csrattrs` (§4.5). Requests carry a
//! base64 PKCS#10 (`application/pkcs10`), answers a base64 certs-only PKCS#7
//! (`application/pkcs7-mime`). Served only over TLS (the native listener or a trusted
//! proxy); errors are an HTTP status with a plain-text reason (§4.2.3).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use kizuna_core::der;
use kizuna_core::web::ProtocolResponse;
use kizuna_core::web::client_cert::Channel;

use super::{EnrollError, Presented, pkcs7};
use crate::issue::Issued;
use crate::{Ca, hierarchy};

pub fn router(ca: Ca) -> Router {
    Router::new()
        .route("/.well-known/est/cacerts", get(cacerts))
        .route("/.well-known/est/{label}/cacerts", get(cacerts))
        .route("/.well-known/est/csrattrs", get(csrattrs))
        .route("/.well-known/est/{label}/csrattrs", get(csrattrs))
        .route("/.well-known/est/simpleenroll", post(simpleenroll))
        .route("/.well-known/est/{label}/simpleenroll", post(simpleenroll))
        .route("/.well-known/est/simplereenroll", post(simplereenroll))
        .route(
            "/.well-known/est/{label}/simplereenroll",
            post(simplereenroll),
        )
        .with_state(ca)
}

/// The optional label (`/.well-known/est/<label>/…`).
type Label = Option<Path<String>>;

/// An EST answer that is not a certificate: a status and a plain-text reason.
#[derive(Debug)]
struct EstError(StatusCode, String);

impl IntoResponse for EstError {
    fn into_response(self) -> Response {
        let mut response = (
            self.0,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{}\n", self.1),
        )
            .into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"kizuna-est\""),
            );
        }
        response.extensions_mut().insert(ProtocolResponse);
        response
    }
}

impl From<EnrollError> for EstError {
    fn from(e: EnrollError) -> Self {
        let message = e.to_string();
        match e {
            EnrollError::Unauthorized(_) => EstError(StatusCode::UNAUTHORIZED, message),
            EnrollError::Forbidden(_) => EstError(StatusCode::FORBIDDEN, message),
            EnrollError::BadRequest(_) => EstError(StatusCode::BAD_REQUEST, message),
            EnrollError::Conflict(_) => EstError(StatusCode::CONFLICT, message),
            EnrollError::Ca(e) => {
                tracing::error!(error = %e, "EST enrollment failed");
                match e {
                    crate::CaError::NotReady(_) => {
                        EstError(StatusCode::SERVICE_UNAVAILABLE, message)
                    }
                    _ => EstError(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "the CA could not complete the request".into(),
                    ),
                }
            }
        }
    }
}

impl From<sqlx::Error> for EstError {
    fn from(e: sqlx::Error) -> Self {
        EnrollError::from(e).into()
    }
}

/// EST is served over TLS only; elsewhere the answer says where to go.
fn secure_channel(channel: Option<&Channel>, path: &str) -> Result<Channel, EstError> {
    match channel {
        Some(c) if c.secure => Ok(c.clone()),
        other => Err(EstError(
            StatusCode::FORBIDDEN,
            match other.and_then(|c| c.tls_base_url.as_deref()) {
                Some(base) => format!("EST is served over TLS only: use {base}{path}"),
                None => "EST is served over TLS only: configure tls_listen (or a trusted TLS proxy) and use https".into(),
            },
        )),
    }
}

fn check_label(ca: &Ca, label: Option<&str>) -> Result<(), EstError> {
    match label {
        Some(label) if ca.profiles.get(label).is_none_or(|p| p.internal) => Err(EstError(
            StatusCode::NOT_FOUND,
            format!("no EST label {label:?}: labels name certificate profiles"),
        )),
        _ => Ok(()),
    }
}

/// Base64 in lines of 64 characters (LF, which `base64 -d` and `openssl base64 -d` both read).
fn base64_lines(der_bytes: &[u8]) -> String {
    let b64 = STANDARD.encode(der_bytes);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 1);
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out
}

fn est_body(content_type: &'static str, der_bytes: &[u8]) -> Response {
    let mut response = (
        [
            (header::CONTENT_TYPE, content_type),
            (
                header::HeaderName::from_static("content-transfer-encoding"),
                "base64",
            ),
        ],
        base64_lines(der_bytes),
    )
        .into_response();
    response.extensions_mut().insert(ProtocolResponse);
    response
}

fn certs_only_response(certs: &[&[u8]]) -> Response {
    est_body(
        "application/pkcs7-mime; smime-type=certs-only",
        &pkcs7::certs_only(certs.iter().copied()),
    )
}

/// The CA certificates for a profile: its issuing CA (active generation) up to the root, and
/// during a root rollover's overlap the old root and both cross-certificates (RFC 7030
/// §4.1.3: OldWithOld, OldWithNew, NewWithOld besides NewWithNew).
async fn cacerts_for(ca: &Ca, label: Option<&str>) -> Result<Response, EstError> {
    let profile = ca
        .profiles
        .get(label.unwrap_or(&ca.config.enrollment.idevid_profile))
        .ok_or_else(|| EstError(StatusCode::NOT_FOUND, "no such profile".into()))?;
    let issuer = ca
        .active_issuer(&profile.issuer)
        .await
        .map_err(EnrollError::from)?;
    let chain = hierarchy::published_chain(ca, &issuer.record.id).await?;
    let refs: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
    Ok(certs_only_response(&refs))
}

async fn cacerts(
    State(ca): State<Ca>,
    label: Label,
    uri: Uri,
    channel: Option<axum::Extension<Channel>>,
) -> Result<Response, EstError> {
    secure_channel(channel.as_deref(), uri.path())?;
    let label = label.map(|Path(l)| l);
    check_label(&ca, label.as_deref())?;
    cacerts_for(&ca, label.as_deref()).await
}

/// `csrattrs`: the signature algorithm to use, and for profiles that copy it, the subject
/// serialNumber (the hardware serial).
fn csrattrs_for(ca: &Ca, label: Option<&str>) -> Response {
    let copies_serial = ca
        .profiles
        .get(label.unwrap_or(&ca.config.enrollment.idevid_profile))
        .is_some_and(|p| p.subject_serial_number);
    let ecdsa_with_sha256 = der::oid(&der::oid_content(&[1, 2, 840, 10045, 4, 3, 2]));
    let serial_number = der::oid(&der::oid_content(&[2, 5, 4, 5]));
    let attrs = if copies_serial {
        der::sequence(&[&ecdsa_with_sha256, &serial_number])
    } else {
        der::sequence(&[&ecdsa_with_sha256])
    };
    est_body("application/csrattrs", &attrs)
}

async fn csrattrs(
    State(ca): State<Ca>,
    label: Label,
    uri: Uri,
    channel: Option<axum::Extension<Channel>>,
) -> Result<Response, EstError> {
    secure_channel(channel.as_deref(), uri.path())?;
    let label = label.map(|Path(l)| l);
    check_label(&ca, label.as_deref())?;
    Ok(csrattrs_for(&ca, label.as_deref()))
}

/// The PKCS#10 request of an enrollment body: `application/pkcs10`, base64 DER.
fn csr_body(headers: &HeaderMap, body: &[u8]) -> Result<Vec<u8>, EstError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/pkcs10") {
        return Err(EstError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "send the certificate request as application/pkcs10 (base64 DER), not {:?}",
                if media.is_empty() { "nothing" } else { media }
            ),
        ));
    }
    if body.len() > crate::csr::MAX_CSR_BYTES * 4 / 3 + 4096 {
        return Err(EstError(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the certificate request is too large".into(),
        ));
    }
    let text: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let der_bytes = STANDARD.decode(&text).map_err(|_| {
        EstError(
            StatusCode::BAD_REQUEST,
            "the body is not base64 (EST sends the DER request base64-encoded)".into(),
        )
    })?;
    if der_bytes.first() != Some(&0x30) {
        return Err(EstError(
            StatusCode::BAD_REQUEST,
            "the body is not a PKCS#10 certification request (base64 of its DER)".into(),
        ));
    }
    Ok(der_bytes)
}

/// `csr_body` for an `application/pkcs10` request, its refusal as text (for the fuzz targets).
#[cfg(feature = "fuzzing")]
pub(crate) fn pkcs10_body(body: &[u8]) -> Result<Vec<u8>, String> {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pkcs10"),
    );
    csr_body(&headers, body).map_err(|e| e.1)
}

/// The password of an HTTP Basic `Authorization` header: the enrollment token.
fn basic_password(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credentials) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(credentials.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':')
        .map(|(_, password)| password.to_string())
}

fn issued_response(issued: &Issued) -> Response {
    certs_only_response(&[&issued.record.der])
}

async fn enroll(
    ca: &Ca,
    label: Option<&str>,
    channel: Option<&Channel>,
    headers: &HeaderMap,
    body: &[u8],
    path: &str,
) -> Result<Response, EstError> {
    let channel = secure_channel(channel, path)?;
    check_label(ca, label)?;
    enum Credential<'a> {
        Token(String),
        Chain(&'a [Vec<u8>]),
    }
    let credential = match (basic_password(headers), &channel.client_chain) {
        (Some(token), _) => Credential::Token(token),
        (None, Some(chain)) => Credential::Chain(chain),
        (None, None) => {
            return Err(EstError(
                StatusCode::UNAUTHORIZED,
                "authenticate with an enrollment token (HTTP Basic, the token as password) or a manufacturer certificate in TLS".into(),
            ));
        }
    };
    let csr = csr_body(headers, body)?;
    let issued = match credential {
        Credential::Token(token) => super::with_token(ca, &token, label, &csr).await?,
        Credential::Chain(chain) => match super::identify(ca, chain).await? {
            // A device that already holds a Kizuna certificate renews with it.
            Presented::Kizuna(current) => super::reenroll(ca, &current, label, &csr).await?,
            Presented::Vendor(idevid) => super::with_idevid(ca, &idevid, label, &csr).await?,
        },
    };
    Ok(issued_response(&issued))
}

async fn reenroll(
    ca: &Ca,
    label: Option<&str>,
    channel: Option<&Channel>,
    headers: &HeaderMap,
    body: &[u8],
    path: &str,
) -> Result<Response, EstError> {
    let channel = secure_channel(channel, path)?;
    check_label(ca, label)?;
    let Some(chain) = &channel.client_chain else {
        return Err(EstError(
            StatusCode::UNAUTHORIZED,
            "re-enrollment authenticates with the current certificate, presented in TLS".into(),
        ));
    };
    let csr = csr_body(headers, body)?;
    match super::identify(ca, chain).await? {
        Presented::Kizuna(current) => Ok(issued_response(
            &super::reenroll(ca, &current, label, &csr).await?,
        )),
        Presented::Vendor(_) => Err(EstError(
            StatusCode::FORBIDDEN,
            "a manufacturer certificate enrolls with simpleenroll; simplereenroll needs a Kizuna certificate".into(),
        )),
    }
}

async fn simpleenroll(
    State(ca): State<Ca>,
    label: Label,
    uri: Uri,
    channel: Option<axum::Extension<Channel>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, EstError> {
    let label = label.map(|Path(l)| l);
    enroll(
        &ca,
        label.as_deref(),
        channel.as_deref(),
        &headers,
        &body,
        uri.path(),
    )
    .await
}

async fn simplereenroll(
    State(ca): State<Ca>,
    label: Label,
    uri: Uri,
    channel: Option<axum::Extension<Channel>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, EstError> {
    let label = label.map(|Path(l)| l);
    reenroll(
        &ca,
        label.as_deref(),
        channel.as_deref(),
        &headers,
        &body,
        uri.path(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_password_is_the_token() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {}", STANDARD.encode("any:kzet_abc:def")))
                .unwrap(),
        );
        assert_eq!(basic_password(&headers).as_deref(), Some("kzet_abc:def"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert!(basic_password(&headers).is_none());
    }

    #[test]
    fn bodies_must_be_base64_pkcs10() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            csr_body(&headers, b"MAMCAQE=").unwrap_err().0,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/pkcs10"),
        );
        assert_eq!(
            csr_body(&headers, b"not base64!").unwrap_err().0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            csr_body(&headers, b"MAMC\r\nAQE=\r\n").unwrap(),
            vec![0x30, 3, 2, 1, 1]
        );
    }

    /// The committed `est_body` fuzz seeds (`fuzz/corpus/est_body/`): base64 requests with
    /// CRLF, 76-column, indented and single lines, decoded and parsed as `simpleenroll` does.
    #[test]
    fn est_body_fuzz_seeds_are_valid_requests() {
        use crate::keys::KeyType;
        let expected = [
            (
                "ed25519_oneline.b64",
                Ok((KeyType::Ed25519, "ed".into(), 0)),
            ),
            ("p256_crlf.b64", Ok((KeyType::P256, "x".into(), 0))),
            (
                "p384_indented.b64",
                Ok((KeyType::P384, "device-1".into(), 0)),
            ),
            (
                "sans_76.b64",
                Ok((KeyType::P256, "sensor.example.org".into(), 5)),
            ),
        ];
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/pkcs10"),
        );
        kizuna_core::testing::check_fuzz_seeds(
            concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/est_body"),
            &expected,
            |body| -> Result<(KeyType, String, usize), String> {
                let der = csr_body(&headers, body).map_err(|e| e.1)?;
                let request = crate::csr::parse(&der, |_| Ok(())).map_err(|e| e.to_string())?;
                let cn =
                    crate::csr::attribute(&request.subject, crate::csr::CN).unwrap_or_default();
                Ok((request.key.key_type, cn, request.requested_sans.len()))
            },
        );
    }
}
