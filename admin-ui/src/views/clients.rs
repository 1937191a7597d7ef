//! The relying-party pages: the list and registration, a client's page (registration,
//! identity assurance, request quota) and its actions, and the secret shown once.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use kizuna_idp::assurance::ClientAssurance;
use kizuna_idp::clients::{Client, ClientEdit};

use super::widgets::{
    Field, Section, cell, danger, hidden, lines, link, post_form, required, section, select,
    status_forms, table, text_field, words,
};
use super::{View, done, notice_for, t, view};
use crate::Console;
use crate::error::{ConsoleError, Stale};
use crate::forms::ClientRequest;
use crate::messages::{Message, Msg};
use crate::ops::{self, ClientChange, ClientPage};
use kizuna_core::access::{Action, Caller};

/// The choices of a required level: none, or `AAL1`–`AAL3` / `IAL1`–`IAL3`.
fn required_level_options(kind: &str) -> Vec<(String, String)> {
    (0..=3)
        .map(|l| {
            (
                l.to_string(),
                if l == 0 {
                    t("指定なし", "none")
                } else {
                    format!("{kind}{l}")
                },
            )
        })
        .collect()
}

pub(super) async fn list(
    State(c): State<Console>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    page_for!(c, headers, "/admin/clients", |who| {
        let list = ops::list_clients(&c, &who).await?;
        let mut v = view(t("クライアント", "Clients"), "/admin/clients");
        v.notice = notice_for(&raw);
        let mut s = section(t("登録済みのクライアント", "Registered clients"));
        s.id = "clients".into();
        s.table = Some(table(
            &[
                ("名前", "Name"),
                ("クライアントID", "Client id"),
                ("組織", "Organization"),
                ("状態", "Status"),
                ("必要なAAL", "Required AAL"),
            ],
            list.iter()
                .map(|cl| {
                    vec![
                        link(cl.name.clone(), format!("/admin/clients/{}", cl.client_id)),
                        cell(cl.client_id.clone()),
                        cell(cl.org_id.clone().unwrap_or_default()),
                        cell(cl.status.to_string()),
                        cell(cl.min_aal.to_string()),
                    ]
                })
                .collect(),
        ));
        v.sections.push(s);
        if who.may(Action::ManageClients) {
            let orgs = ops::list_orgs(&c, &who).await?;
            let mut options: Vec<(String, String)> = Vec::new();
            if who.may_in(Action::ManageClients, None) {
                options.push((
                    String::new(),
                    t("市（組織なし）", "the city (no organization)"),
                ));
            }
            options.extend(
                orgs.iter()
                    .filter(|o| who.may_in(Action::ManageClients, Some(&o.id)))
                    .map(|o| (o.id.clone(), o.name.clone())),
            );
            let mut add = section(t("クライアントを登録", "Register a client"));
            if !who.may_in(Action::ApproveClients, None) {
                add.text = t(
                    "登録したクライアントは、市の管理者が承認するまで保留になります。",
                    "A client you register stays pending until a city administrator approves it.",
                );
            }
            add.forms.push(post_form(
                "new-client",
                "/admin/clients",
                vec![
                    required(text_field("client_name", t("名前", "Name"), "")),
                    select("org_id", t("組織", "Organization"), "", options),
                    Field {
                        kind: "textarea",
                        name: "redirect_uris",
                        label: t(
                            "リダイレクトURI（1行に1つ）",
                            "Redirect URIs (one per line)",
                        ),
                        ..Field::default()
                    },
                    select(
                        "min_aal",
                        t("必要な認証レベル", "Required level"),
                        "0",
                        required_level_options("AAL"),
                    ),
                ],
                t("登録", "Register"),
            ));
            v.sections.push(add);
        }
        Ok(v)
    })
}

fn secret_view(title: String, client_id: &str, secret: Option<&str>) -> View {
    let mut v = view(title, "/admin/clients");
    let mut s = section(t(
        "このシークレットは一度だけ表示されます",
        "This secret is shown once",
    ));
    s.id = "secret".into();
    s.facts = vec![(t("クライアントID", "Client id"), client_id.to_string())];
    if let Some(secret) = secret {
        s.facts.push((
            t("クライアントシークレット", "Client secret"),
            secret.to_string(),
        ));
    }
    s.links.push((
        format!("/admin/clients/{client_id}"),
        t("クライアントを表示", "Show the client"),
        false,
    ));
    v.sections.push(s);
    v
}

pub(super) async fn create(State(c): State<Console>, headers: HeaderMap, body: Bytes) -> Response {
    post_for!(c, headers, body, |p| {
        let req = ClientRequest {
            client_name: p.get("client_name"),
            description: None,
            org_id: p.opt("org_id"),
            redirect_uris: lines(&p.get("redirect_uris")),
            min_aal: p.get("min_aal").parse().unwrap_or(0),
            ..ClientRequest::default()
        };
        let created = ops::create_client(&c, &p.who, req.into_new()?).await?;
        let mut v = secret_view(
            t("クライアントを登録しました", "Client registered"),
            &created.client.client_id,
            created.client_secret.as_deref(),
        );
        v.status = StatusCode::CREATED;
        Ok(v.render(&c, &headers, Some(&p.who)))
    })
}

/// The client page; after a refused stale edit it shows the newer version with the error.
fn client_view(
    who: &Caller,
    page: &ClientPage,
    notice: Option<String>,
    error: Option<Message>,
) -> View {
    let (cl, ia, quota) = (
        &page.client,
        &page.assurance,
        page.quota.requests_per_minute,
    );
    let path = format!("/admin/clients/{}", cl.client_id);
    let mut v = view(
        format!("{} {}", t("クライアント", "Client"), cl.name),
        &path,
    );
    v.notice = notice;
    v.error = error;
    let mut s = section(t("登録情報", "Registration"));
    s.id = "client".into();
    s.facts = vec![
        (t("クライアントID", "Client id"), cl.client_id.clone()),
        (t("名前", "Name"), cl.name.clone()),
        (
            t("組織", "Organization"),
            cl.org_id.clone().unwrap_or_default(),
        ),
        (t("状態", "Status"), cl.status.to_string()),
        (
            t("認証方式", "Authentication"),
            cl.auth_method.as_str().to_string(),
        ),
        (
            t("リダイレクトURI", "Redirect URIs"),
            cl.redirect_uris.join(" "),
        ),
        (
            t("必要な認証レベル", "Required level"),
            cl.min_aal.to_string(),
        ),
        (t("版", "Version"), cl.version.to_string()),
    ];
    let base = path.clone();
    if who.may_in(Action::ManageClients, cl.org_id.as_deref()) {
        s.forms.push(post_form(
            "edit-client",
            base.clone(),
            vec![
                hidden("version", &cl.version.to_string()),
                Field {
                    kind: "textarea",
                    name: "redirect_uris",
                    label: t(
                        "リダイレクトURI（1行に1つ）",
                        "Redirect URIs (one per line)",
                    ),
                    value: cl.redirect_uris.join("\n"),
                    ..Field::default()
                },
                select(
                    "min_aal",
                    t("必要な認証レベル", "Required level"),
                    &cl.min_aal.to_string(),
                    required_level_options("AAL"),
                ),
            ],
            t("保存", "Save"),
        ));
        if cl.auth_method.uses_secret() {
            s.forms.push(danger(post_form(
                "rotate",
                format!("{base}/rotate"),
                vec![],
                t("シークレットを再発行", "Rotate secret"),
            )));
        }
        s.forms.extend(status_forms(
            &base,
            cl.status.as_str(),
            who.may_in(Action::ApproveClients, None),
        ));
    }
    v.sections.push(s);
    v.sections.push(client_assurance_section(who, cl, ia));
    v.sections.push(client_quota_section(who, cl, quota));
    v
}

/// The client's request quota at the endpoints it calls; city administrators change it.
fn client_quota_section(who: &Caller, cl: &Client, quota: Option<i64>) -> Section {
    let mut s = section(t("リクエスト上限", "Request quota"));
    s.id = "client-quota".into();
    s.facts = vec![(
        t("1分あたりのリクエスト", "Requests per minute"),
        quota.map_or_else(|| t("上限なし", "not limited"), |n| n.to_string()),
    )];
    if who.may_in(Action::ApproveClients, None) {
        s.forms.push(post_form(
            "edit-quota",
            format!("/admin/clients/{}/quota", cl.client_id),
            vec![text_field(
                "requests_per_minute",
                t(
                    "1分あたりのリクエスト（空欄で上限なし）",
                    "Requests per minute (empty: not limited)",
                ),
                &quota.map(|n| n.to_string()).unwrap_or_default(),
            )],
            t("保存", "Save"),
        ));
    }
    s
}

/// The identity level a client requires, the verified claims it may receive and the
/// proofing providers its residents are offered; city administrators change them.
fn client_assurance_section(who: &Caller, cl: &Client, ia: &ClientAssurance) -> Section {
    let mut s = section(t("身元確認", "Identity assurance"));
    s.id = "client-assurance".into();
    s.facts = vec![
        (
            t("必要な身元確認レベル", "Required identity level"),
            if ia.min_ial == 0 {
                t("指定なし", "none")
            } else {
                format!("IAL{}", ia.min_ial)
            },
        ),
        (
            t("受け取れる確認済み属性", "Verified claims it may receive"),
            ia.verified_claims.join(" "),
        ),
        (
            t("案内する身元確認の方法", "Proofing providers offered"),
            ia.proofing_providers.join(" "),
        ),
    ];
    if who.may_in(Action::ApproveClients, None) {
        s.forms.push(post_form(
            "edit-assurance",
            format!("/admin/clients/{}/assurance", cl.client_id),
            vec![
                select(
                    "min_ial",
                    t("必要な身元確認レベル", "Required identity level"),
                    &ia.min_ial.to_string(),
                    required_level_options("IAL"),
                ),
                text_field(
                    "verified_claims",
                    t(
                        "受け取れる確認済み属性（空白区切り）",
                        "Verified claims it may receive (space-separated)",
                    ),
                    &ia.verified_claims.join(" "),
                ),
                text_field(
                    "proofing_providers",
                    t(
                        "案内する身元確認の方法（空白区切り）",
                        "Proofing providers offered (space-separated)",
                    ),
                    &ia.proofing_providers.join(" "),
                ),
            ],
            t("保存", "Save"),
        ));
    }
    s
}

pub(super) async fn show(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let path = format!("/admin/clients/{id}");
    page_for!(c, headers, path, |who| {
        let page = ops::client_page(&c, &who, &id).await?;
        Ok(client_view(&who, &page, notice_for(&raw), None))
    })
}

pub(super) async fn edit(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    post_for!(c, headers, body, |p| {
        let edit = ClientEdit {
            redirect_uris: lines(&p.get("redirect_uris")),
            min_aal: p
                .get("min_aal")
                .parse()
                .map_err(|_| ConsoleError::Invalid(Msg::MinAalRange.into()))?,
            expected_version: p
                .get("version")
                .parse()
                .map_err(|_| ConsoleError::Invalid(Msg::FormHasNoVersion.into()))?,
        };
        match ops::edit_client(&c, &p.who, &id, edit).await {
            Ok(_) => done(&format!("/admin/clients/{id}"), "saved"),
            Err(e @ ConsoleError::Stale(Stale::Client(_))) => {
                let page = ops::client_page(&c, &p.who, &id).await?;
                let mut v = client_view(&p.who, &page, None, Some(e.public()));
                v.status = StatusCode::CONFLICT;
                Ok(v.render(&c, &headers, Some(&p.who)))
            }
            Err(e) => Err(e),
        }
    })
}

pub(super) async fn action(
    State(c): State<Console>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    post_for!(c, headers, body, |p| {
        let back = format!("/admin/clients/{id}");
        let change = match action.as_str() {
            "rotate" => {
                let secret = ops::rotate_client_secret(&c, &p.who, &id).await?;
                return Ok(secret_view(
                    t("シークレットを再発行しました", "Secret rotated"),
                    &id,
                    Some(&secret),
                )
                .render(&c, &headers, Some(&p.who)));
            }
            "assurance" => {
                let settings = ClientAssurance {
                    min_ial: p
                        .get("min_ial")
                        .parse()
                        .map_err(|_| ConsoleError::Invalid(Msg::MinIalRange.into()))?,
                    verified_claims: words(&p.get("verified_claims")),
                    proofing_providers: words(&p.get("proofing_providers")),
                };
                ops::set_client_assurance(&c, &p.who, &id, settings).await?;
                return done(&back, "saved");
            }
            "quota" => {
                let limit = match p.opt("requests_per_minute") {
                    None => None,
                    Some(n) => Some(
                        n.trim()
                            .parse()
                            .map_err(|_| ConsoleError::Invalid(Msg::QuotaWholeNumber.into()))?,
                    ),
                };
                ops::set_client_quota(&c, &p.who, &id, limit).await?;
                return done(&back, "saved");
            }
            "approve" => ClientChange::Approve,
            "disable" => ClientChange::Disable,
            "enable" => ClientChange::Enable,
            other => {
                return Err(ConsoleError::NotFound(
                    Msg::NoAction {
                        action: other.into(),
                    }
                    .into(),
                ));
            }
        };
        ops::change_client(&c, &p.who, &id, change).await?;
        done(
            &back,
            match change {
                ClientChange::Approve => "approved",
                ClientChange::Disable => "disabled",
                ClientChange::Enable => "enabled",
            },
        )
    })
}
