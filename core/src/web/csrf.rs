//! CSRF protection for form posts (double submit): a random token in an `HttpOnly`,
//! `SameSite=Strict` cookie, echoed in a hidden form field, compared in constant time.
//! A cross-site page can neither read the cookie nor make the browser send it.

use axum::response::Response;
use http::{HeaderMap, HeaderValue, header};

use super::cookie;

/// The form field that carries the token.
pub const FIELD: &str = "csrf_token";

fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-kizuna_csrf"
    } else {
        "kizuna_csrf"
    }
}

/// The token to put in a form, and the cookie to set when the browser has none yet.
pub struct CsrfToken {
    pub value: String,
    set_cookie: Option<HeaderValue>,
}

impl CsrfToken {
    /// Reuses the browser's token or makes a new one.
    pub fn issue(headers: &HeaderMap, secure: bool) -> CsrfToken {
        let name = cookie_name(secure);
        if let Some(existing) = cookie(headers, name).filter(|v| v.len() == 43) {
            return CsrfToken {
                value: existing.to_string(),
                set_cookie: None,
            };
        }
        let value = crate::secret::random_token();
        let attrs = if secure { "; Secure" } else { "" };
        let set_cookie = HeaderValue::from_str(&format!(
            "{name}={value}; Path=/; HttpOnly; SameSite=Strict{attrs}"
        ))
        .ok();
        CsrfToken { value, set_cookie }
    }

    /// Adds the cookie to the response that carries the form.
    pub fn apply(&self, response: &mut Response) {
        if let Some(value) = &self.set_cookie {
            response
                .headers_mut()
                .append(header::SET_COOKIE, value.clone());
        }
    }
}

/// True when the submitted field matches the browser's cookie.
pub fn verify(headers: &HeaderMap, submitted: Option<&str>, secure: bool) -> bool {
    match (cookie(headers, cookie_name(secure)), submitted) {
        (Some(expected), Some(got)) if !expected.is_empty() => {
            crate::secret::constant_time_eq(expected.as_bytes(), got.as_bytes())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_matching_field_passes_and_anything_else_fails() {
        let token = CsrfToken::issue(&HeaderMap::new(), true);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            format!("__Host-kizuna_csrf={}", token.value)
                .parse()
                .unwrap(),
        );
        assert!(verify(&headers, Some(&token.value), true));
        assert!(!verify(&headers, Some("forged"), true));
        assert!(!verify(&headers, None, true));
        assert!(!verify(&HeaderMap::new(), Some(&token.value), true));
        // The insecure-name cookie does not satisfy a secure deployment.
        assert!(!verify(&headers, Some(&token.value), false));
    }

    #[test]
    fn an_existing_cookie_is_reused() {
        let first = CsrfToken::issue(&HeaderMap::new(), false);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            format!("kizuna_csrf={}", first.value).parse().unwrap(),
        );
        let second = CsrfToken::issue(&headers, false);
        assert_eq!(first.value, second.value);
        assert!(second.set_cookie.is_none());
    }
}
