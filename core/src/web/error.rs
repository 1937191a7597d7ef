//! Error responses for people and for programs: a short page in the reader's language (or a
//! JSON object for API clients), always with the request id that appears in the log.

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Json, Response};
use http::{StatusCode, header};
use serde_json::json;

use super::RequestContext;

/// Marks a response whose body is a protocol's own error format (OAuth JSON, OCSP, EST text),
/// so the generic error page never replaces it.
#[derive(Debug, Clone, Copy)]
pub struct ProtocolResponse;

/// An error shown to a person (HTML) or a program (JSON).
#[derive(Debug, Clone)]
pub struct ErrorPage {
    pub status: StatusCode,
    pub title_ja: String,
    pub title_en: String,
    pub detail: Option<String>,
}

impl ErrorPage {
    pub fn new(
        status: StatusCode,
        title_ja: impl Into<String>,
        title_en: impl Into<String>,
    ) -> Self {
        ErrorPage {
            status,
            title_ja: title_ja.into(),
            title_en: title_en.into(),
            detail: None,
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn not_found() -> Self {
        ErrorPage::new(
            StatusCode::NOT_FOUND,
            "ページが見つかりません",
            "Page not found",
        )
    }

    pub fn internal() -> Self {
        ErrorPage::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "サーバーでエラーが発生しました",
            "Something went wrong on our side",
        )
    }

    /// A page for a status with no more specific message.
    pub fn for_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => ErrorPage::not_found(),
            s if s.is_server_error() => ErrorPage::internal(),
            StatusCode::METHOD_NOT_ALLOWED => ErrorPage::new(
                status,
                "この操作はできません",
                "That method is not allowed here",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => ErrorPage::new(
                status,
                "送信データが大きすぎます",
                "The request is too large",
            ),
            _ => ErrorPage::new(
                status,
                "リクエストが正しくありません",
                "The request is not valid",
            ),
        }
    }
}

impl IntoResponse for ErrorPage {
    fn into_response(self) -> Response {
        let ctx = RequestContext::current();
        let request_id = ctx
            .as_ref()
            .map(|c| c.request_id.clone())
            .unwrap_or_default();
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), detail = ?self.detail, "error page");
        }
        if !ctx.as_ref().is_some_and(|c| c.wants_html) {
            let code = self
                .status
                .canonical_reason()
                .unwrap_or("error")
                .to_ascii_lowercase()
                .replace(' ', "_");
            let body = json!({
                "error": code,
                "message": self.detail.as_deref().unwrap_or(&self.title_en),
                "request_id": request_id,
            });
            return (self.status, Json(body)).into_response();
        }
        let lang = ctx.map(|c| c.lang).unwrap_or_default();
        let title = html_escape(lang.pick(&self.title_ja, &self.title_en));
        let detail = self
            .detail
            .as_deref()
            .map(|d| format!("<p>{}</p>", html_escape(d)))
            .unwrap_or_default();
        let reference = lang.pick("お問い合わせ番号", "Reference");
        let home = lang.pick("トップへ戻る", "Back to the start page");
        let page = format!(
            "<!doctype html>\n<html lang=\"{code}\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{title} - Kizuna</title><link rel=\"stylesheet\" href=\"/assets/kizuna.css\"></head>\
             <body><main class=\"card\"><h1>{title}</h1>{detail}\
             <p class=\"reference\">{reference}: <code>{request_id}</code></p>\
             <p><a href=\"/\">{home}</a></p></main></body></html>",
            code = lang.code(),
            request_id = html_escape(&request_id),
        );
        (self.status, Html(page)).into_response()
    }
}

/// Replaces bare error bodies (axum's plain-text rejections, empty 404/405s) with an
/// [`ErrorPage`], so every error a person sees is in their language and carries the request id.
pub async fn error_page_for_plain_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.extensions().get::<ProtocolResponse>().is_some()
    {
        return response;
    }
    let plain = match response.headers().get(header::CONTENT_TYPE) {
        None => true,
        Some(v) => v.to_str().is_ok_and(|v| v.starts_with("text/plain")),
    };
    if !plain {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = to_bytes(body, 4096).await.unwrap_or_default();
    let mut page = ErrorPage::for_status(status);
    if !status.is_server_error() && !text.is_empty() {
        page = page.detail(String::from_utf8_lossy(&text).into_owned());
    }
    let mut rebuilt = page.into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rebuilt.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rebuilt
}

/// Adds `Retry-After` to a 503 answer: the database is unavailable for now (down, restarting,
/// its disk full) and a client should come back after [`crate::db::RETRY_AFTER_SECS`].
pub fn retry_after_if_unavailable(response: &mut Response) {
    if response.status() == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            http::HeaderValue::from(crate::db::RETRY_AFTER_SECS),
        );
    }
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The shared stylesheet, served at `/assets/kizuna.css`.
pub const STYLESHEET: &str = include_str!("../../assets/kizuna.css");

pub(crate) fn stylesheet_response() -> Response {
    let mut response = Body::from(STYLESHEET).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/css; charset=utf-8"),
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("public, max-age=3600"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::super::Lang;
    use super::*;

    #[test]
    fn escaping_neutralises_markup() {
        assert_eq!(
            html_escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }

    #[test]
    fn lang_picks_text() {
        assert_eq!(Lang::En.pick("ja", "en"), "en");
    }
}
