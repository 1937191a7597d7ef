//! HTTP plumbing every feature crate shares: the request context (request id, peer address,
//! language), error pages that carry the request id, security headers, and the TLS listener.

pub mod client_cert;
pub mod csrf;
pub mod csv;
pub(crate) mod error;
mod lang;
pub mod rate;
pub mod tls;

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderName, HeaderValue, header};
use tracing::Instrument;

pub use error::{
    ErrorPage, ProtocolResponse, error_page_for_plain_errors, html_escape,
    retry_after_if_unavailable,
};
pub use lang::{LANG_COOKIE, Lang};

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static CONTEXT: RequestContext;
}

/// What is known about the request being served, available anywhere below the handler
/// (audit events and error pages read it).
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub peer_ip: Option<IpAddr>,
    pub lang: Lang,
    pub wants_html: bool,
}

impl RequestContext {
    /// The context of the request this task is serving, if any.
    pub fn current() -> Option<RequestContext> {
        CONTEXT.try_with(|c| c.clone()).ok()
    }
}

/// The connection a request arrived on, inserted by the listener's layer.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    pub tls: Option<tls::TlsConnectInfo>,
}

/// Records the peer of a plain-HTTP connection.
pub async fn plain_peer(
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    req.extensions_mut().insert(Peer { addr, tls: None });
    next.run(req).await
}

/// Records the peer of a TLS connection, with its client certificate chain if it sent one.
pub async fn tls_peer(
    ConnectInfo(info): ConnectInfo<tls::TlsConnectInfo>,
    mut req: Request,
    next: Next,
) -> Response {
    req.extensions_mut().insert(Peer {
        addr: info.remote_addr,
        tls: Some(info),
    });
    next.run(req).await
}

fn valid_request_id(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let ok = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    ok.then(|| text.to_string())
}

/// The trace id of a W3C Trace Context `traceparent` header (version 00: 32 lowercase hex
/// digits, not all zero, after the version; a parent id that is not all zero; two hex flag
/// digits), or `None` for anything else.
fn trace_id(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let mut parts = text.split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let ok = parts.next().is_none()
        && version == "00"
        && hex(trace, 32)
        && hex(parent, 16)
        && hex(flags, 2)
        && trace.bytes().any(|b| b != b'0')
        && parent.bytes().any(|b| b != b'0');
    ok.then(|| trace.to_string())
}

/// Gives every request an id (a well-formed incoming `X-Request-Id` is kept, so logs match
/// across a proxy; without one, the trace id of a W3C `traceparent` header, so Kizuna's logs
/// and audit entries match the caller's trace), a tracing span carrying it, the task-local
/// context, and a log line when it finishes (refusals and failures at `info`/`error`, the
/// rest at `debug`). The id is returned in `X-Request-Id`.
pub async fn request_context(mut req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(valid_request_id)
        .or_else(|| req.headers().get("traceparent").and_then(trace_id))
        .unwrap_or_else(crate::secret::new_id);
    let ctx = RequestContext {
        request_id: request_id.clone(),
        peer_ip: req
            .extensions()
            .get::<client_cert::ClientAddress>()
            .map(|c| c.0)
            .or_else(|| req.extensions().get::<Peer>().map(|p| p.addr.ip())),
        lang: Lang::negotiate(req.headers()),
        wants_html: req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html")),
    };
    req.extensions_mut().insert(ctx.clone());
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        path = %req.uri().path(),
    );
    let started = Instant::now();

    let mut response = CONTEXT
        .scope(ctx, next.run(req))
        .instrument(span.clone())
        .await;
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        // Security events go to the audit stream; the access log records refusals and
        // failures at `info`, and every request at `debug` (`kizuna_core::web=debug`).
        if status >= 500 {
            tracing::error!(status, latency_ms, "request failed");
        } else if status >= 400 {
            tracing::info!(status, latency_ms, "request refused");
        } else {
            tracing::debug!(status, latency_ms, "request finished");
        }
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
    response
}

/// Headers every response carries; HTML pages also get a strict CSP, TLS responses HSTS.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let on_tls = req
        .extensions()
        .get::<Peer>()
        .is_some_and(|p| p.tls.is_some());
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    let is_html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_html {
        headers
            .entry(header::CONTENT_SECURITY_POLICY)
            .or_insert(HeaderValue::from_static(
                "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
            ));
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers
            .entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
    }
    if on_tls {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}

/// The value of a cookie in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value)
}

/// Renders a page template into an HTML response (an error page if rendering fails).
pub fn page(template: &impl askama::Template) -> Response {
    use axum::response::IntoResponse;
    match template.render() {
        Ok(html) => axum::response::Html(html).into_response(),
        Err(e) => ErrorPage::internal()
            .detail(format!("template: {e}"))
            .into_response(),
    }
}

/// A same-site path to return to, or `/` for anything else (an open-redirect guard). Control
/// characters, whitespace and backslashes are refused anywhere: browsers drop tabs and
/// newlines from a URL and read a backslash as a slash, so `/<TAB>/evil.example` would leave
/// the site.
pub fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && p.len() <= 2048
                && !p
                    .chars()
                    .any(|c| c.is_control() || c.is_whitespace() || c == '\\') =>
        {
            p.to_string()
        }
        _ => "/".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_same_site_path_is_a_place_to_return_to() {
        for ok in ["/", "/account", "/admin/clients?x=1&y=%2F", "/a/b#c"] {
            assert_eq!(local_path(Some(ok)), ok);
        }
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/ /evil.example",
            "/x\u{7f}",
            "/\u{2028}/evil.example",
            "https://evil.example",
            "evil",
            "",
        ] {
            assert_eq!(local_path(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(local_path(Some(&format!("/{}", "a".repeat(2048)))), "/");
        assert_eq!(local_path(None), "/");
    }

    fn parse(text: &str) -> Option<String> {
        trace_id(&HeaderValue::from_str(text).unwrap())
    }

    #[test]
    fn a_traceparent_gives_its_trace_id_and_anything_malformed_gives_none() {
        assert_eq!(
            parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "garbage",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
