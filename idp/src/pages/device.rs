//! `/device`: where a person types (or follows a link with) the code a device shows, and
//! approves or denies it (RFC 8628 §3.3).

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use kizuna_core::web::Lang;

use super::{check_csrf, form_page, internal_error, message, page_lang, scope_label, see_other};
use crate::Idp;
use crate::clients;
use crate::device::{self, PendingDevice};
use crate::sessions::{self, Session};
use crate::throttle;

#[derive(Template)]
#[template(path = "device.html")]
struct DevicePage {
    lang: Lang,
    back_path: String,
    csrf: String,
    user_code: String,
    client_name: Option<String>,
    scopes: Vec<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct DeviceQuery {
    user_code: Option<String>,
}

#[derive(Deserialize)]
pub struct DeviceForm {
    csrf_token: Option<String>,
    user_code: Option<String>,
    decision: Option<String>,
}

/// The signed-in person, or a redirect to sign in and come back.
async fn signed_in(idp: &Idp, headers: &HeaderMap, back: &str) -> Result<Session, Response> {
    match sessions::current(idp, headers).await {
        Ok(Some(session)) => Ok(session),
        Ok(None) => {
            let next: String = url::form_urlencoded::byte_serialize(back.as_bytes()).collect();
            Err(see_other(&format!("/login?next={next}"), None))
        }
        Err(_) => Err(internal_error()),
    }
}

async fn render(
    idp: &Idp,
    headers: &HeaderMap,
    status: StatusCode,
    user_code: String,
    pending: Option<PendingDevice>,
    error: Option<String>,
) -> Response {
    let lang = page_lang(None);
    let client_name = match &pending {
        Some(p) => clients::get(&idp.core.db, &p.client_id)
            .await
            .ok()
            .flatten()
            .map(|c| c.name),
        None => None,
    };
    let scopes = pending
        .as_ref()
        .map(|p| p.scope.iter().map(|s| scope_label(s, lang)).collect())
        .unwrap_or_default();
    let user_code = pending.map(|p| p.user_code).unwrap_or(user_code);
    form_page(idp, headers, status, |csrf| DevicePage {
        lang,
        back_path: "/device".into(),
        csrf,
        user_code,
        client_name,
        scopes,
        error,
    })
}

pub async fn show(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Query(q): Query<DeviceQuery>,
) -> Response {
    let code = q.user_code.unwrap_or_default();
    let back = if code.is_empty() {
        "/device".to_string()
    } else {
        format!("/device?user_code={code}")
    };
    if let Err(redirect) = signed_in(&idp, &headers, &back).await {
        return redirect;
    }
    let pending = if code.is_empty() {
        None
    } else {
        device::find_pending(&idp, &code).await.ok().flatten()
    };
    render(&idp, &headers, StatusCode::OK, code, pending, None).await
}

fn not_valid(lang: Lang) -> String {
    lang.pick(
        "このコードは正しくないか、期限切れです。端末に表示されているコードを確認してください。",
        "That code is not valid or has expired. Check the code on the device.",
    )
    .to_string()
}

pub async fn enter(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Form(form): Form<DeviceForm>,
) -> Response {
    if let Err(refused) = check_csrf(&idp, &headers, form.csrf_token.as_deref()) {
        return refused;
    }
    if let Err(redirect) = signed_in(&idp, &headers, "/device").await {
        return redirect;
    }
    let lang = page_lang(None);
    let code = form.user_code.unwrap_or_default();
    match pending_code(&idp, &headers, &code, lang).await {
        Ok(pending) => render(&idp, &headers, StatusCode::OK, code, Some(pending), None).await,
        Err(refused) => refused,
    }
}

/// The pending request behind a user code, with the guess throttle on every form that
/// takes a code (RFC 8628 §5.1): 20 wrong codes per address in 5 minutes, then 429.
async fn pending_code(
    idp: &Idp,
    headers: &HeaderMap,
    code: &str,
    lang: Lang,
) -> Result<device::PendingDevice, Response> {
    let ip = kizuna_core::web::RequestContext::current()
        .and_then(|c| c.peer_ip)
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    let key = format!("device-code:{ip}");
    if throttle::count(idp, &key, 300).await.unwrap_or(0) >= 20 {
        let text = lang.pick(
            "試行回数が多すぎます。しばらくしてからやり直してください。",
            "Too many attempts. Try again later.",
        );
        return Err(render(
            idp,
            headers,
            StatusCode::TOO_MANY_REQUESTS,
            code.to_string(),
            None,
            Some(text.to_string()),
        )
        .await);
    }
    match device::find_pending(idp, code).await {
        Ok(Some(pending)) => Ok(pending),
        Ok(None) => {
            let _ = throttle::hit(idp, &key, 300).await;
            Err(render(
                idp,
                headers,
                StatusCode::BAD_REQUEST,
                code.to_string(),
                None,
                Some(not_valid(lang)),
            )
            .await)
        }
        Err(_) => Err(internal_error()),
    }
}

pub async fn decide(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Form(form): Form<DeviceForm>,
) -> Response {
    if let Err(refused) = check_csrf(&idp, &headers, form.csrf_token.as_deref()) {
        return refused;
    }
    let session = match signed_in(&idp, &headers, "/device").await {
        Ok(s) => s,
        Err(redirect) => return redirect,
    };
    let lang = page_lang(None);
    let code = form.user_code.unwrap_or_default();
    let pending = match pending_code(&idp, &headers, &code, lang).await {
        Ok(p) => p,
        Err(refused) => return refused,
    };
    let approve = form.decision.as_deref() == Some("approve");
    if approve {
        let back = format!(
            "/device?user_code={}",
            url::form_urlencoded::byte_serialize(code.as_bytes()).collect::<String>()
        );
        if let Some(step_up) =
            super::mfa::require_level(&idp, &session, &pending.client_id, &back).await
        {
            return step_up;
        }
    }
    match device::decide(&idp, &session, &pending, approve).await {
        Ok(true) if approve => message(
            StatusCode::OK,
            lang,
            ("端末を接続しました", "Device connected"),
            (
                "端末の画面に戻ってください。",
                "You can return to the device now.",
            ),
        ),
        Ok(true) => message(
            StatusCode::OK,
            lang,
            ("接続を拒否しました", "Request denied"),
            (
                "この端末はあなたのアカウントを利用できません。",
                "The device will not get access to your account.",
            ),
        ),
        Ok(false) => {
            render(
                &idp,
                &headers,
                StatusCode::BAD_REQUEST,
                code,
                None,
                Some(not_valid(lang)),
            )
            .await
        }
        Err(_) => internal_error(),
    }
}
