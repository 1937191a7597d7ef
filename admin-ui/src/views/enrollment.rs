//! Enrollment tokens that installers give devices: the forms on the devices page that create
//! and list them, the token shown once, and voiding.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::widgets::{
    Section, cell, danger, hidden, post_form, section, select, table, text_field, time,
};
use super::{done, t, view};
use crate::Console;
use crate::error::ConsoleError;
use crate::forms::TokenRequest;
use crate::messages::Msg;
use crate::ops;
use kizuna_core::access::Caller;

/// The form that creates an enrollment token for one of the organizations offered.
pub(super) fn token_form(org_options: Vec<(String, String)>) -> Section {
    let mut tok = section(t("登録トークンを発行", "Create an enrollment token"));
    tok.forms.push(post_form(
        "new-token",
        "/admin/enrollment-tokens",
        vec![
            select("org_id", t("組織", "Organization"), "", org_options),
            text_field(
                "device_id",
                t(
                    "機器ID（登録済みの機器に限定）",
                    "Device id (bind to a registered device)",
                ),
                "",
            ),
            text_field(
                "subject_pattern",
                t("サブジェクトCNのパターン", "Subject CN pattern"),
                "*",
            ),
            text_field("profile", t("プロファイル", "Profile"), "device"),
        ],
        t("発行", "Create"),
    ));
    tok
}

/// An organization's enrollment tokens, with a form that voids the selected ones.
pub(super) async fn tokens(c: &Console, who: &Caller, org: &str) -> Result<Section, ConsoleError> {
    let tokens = ops::enrollment_tokens(c, who, org).await?;
    let now = kizuna_core::time::now_unix();
    let mut ts = section(t("登録トークン", "Enrollment tokens"));
    ts.id = "tokens".into();
    let mut tbl = table(
        &[
            ("ID", "Id"),
            ("機器", "Device"),
            ("プロファイル", "Profile"),
            ("有効期限", "Expires"),
            ("状態", "State"),
        ],
        tokens
            .iter()
            .map(|r| {
                let state = match (r.used_at, r.expires_at > now) {
                    (Some(_), _) => t("使用済み", "used"),
                    (None, true) => t("未使用", "unused"),
                    (None, false) => t("期限切れ・無効", "expired or void"),
                };
                vec![
                    cell(r.id.clone()),
                    cell(r.device_id.clone().unwrap_or_default()),
                    cell(r.profile.clone()),
                    cell(time(r.expires_at)),
                    cell(state),
                ]
            })
            .collect(),
    );
    for (row, r) in tbl.rows.iter_mut().zip(&tokens) {
        row.select = r.id.clone();
    }
    tbl.select = Some(("void-tokens".into(), "token_id".into()));
    ts.table = Some(tbl);
    ts.forms.push(danger(post_form(
        "void-tokens",
        "/admin/enrollment-tokens/void",
        vec![hidden("org", org)],
        t("選択したトークンを無効にする", "Void the selected tokens"),
    )));
    Ok(ts)
}

pub(super) async fn create(State(c): State<Console>, headers: HeaderMap, body: Bytes) -> Response {
    post_for!(c, headers, body, |p| {
        let req = TokenRequest {
            org_id: p.get("org_id"),
            profile: p.opt("profile").unwrap_or_else(|| "device".into()),
            device_id: p.opt("device_id"),
            subject_pattern: p.opt("subject_pattern").unwrap_or_else(|| "*".into()),
            ttl_secs: 86_400,
        };
        let token = ops::create_enrollment_token(&c, &p.who, req.into()).await?;
        let mut v = view(t("登録トークン", "Enrollment token"), "/admin/devices");
        let mut s = section(t(
            "このトークンは一度だけ表示されます",
            "This token is shown once",
        ));
        s.id = "token".into();
        s.facts = vec![
            (t("トークン", "Token"), token.token.clone()),
            (t("組織", "Organization"), token.org_id.clone()),
            (
                t("機器", "Device"),
                token.device_id.clone().unwrap_or_default(),
            ),
            (t("有効期限", "Expires"), time(token.expires_at)),
        ];
        v.sections.push(s);
        v.status = StatusCode::CREATED;
        Ok(v.render(&c, &headers, Some(&p.who)))
    })
}

pub(super) async fn void(State(c): State<Console>, headers: HeaderMap, body: Bytes) -> Response {
    post_for!(c, headers, body, |p| {
        let ids = p.all("token_id");
        if ids.is_empty() {
            return Err(ConsoleError::Invalid(Msg::NoTokenSelected.into()));
        }
        for id in &ids {
            ops::void_enrollment_token(&c, &p.who, id).await?;
        }
        done(
            &kizuna_idp::authorize::flow::with_query("/admin/devices", &[("org", &p.get("org"))]),
            "voided",
        )
    })
}
