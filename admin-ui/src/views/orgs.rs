//! The organization pages: the list and the form that adds one, an organization's page
//! (with its clients and identity providers) and its actions.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use kizuna_core::orgs::{OrgKind, Organization};

use super::widgets::{
    Section, cell, danger, hidden, link, post_form, required, section, select, table, text_field,
    time, words,
};
use super::{Posted, View, done, notice_for, t, view};
use crate::Console;
use crate::error::{ConsoleError, Stale};
use crate::forms::{ClientScopesRequest, OrgRequest};
use crate::messages::{Message, Msg};
use crate::ops;
use kizuna_core::access::{Action, Caller};

fn kind_options() -> Vec<(String, String)> {
    OrgKind::ALL
        .iter()
        .map(|k| (k.as_str().to_string(), k.as_str().to_string()))
        .collect()
}

pub(super) async fn list(
    State(c): State<Console>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    page_for!(c, headers, "/admin/orgs", |who| {
        let list = ops::list_orgs(&c, &who).await?;
        let mut v = view(t("組織", "Organizations"), "/admin/orgs");
        v.notice = notice_for(&raw);
        let mut s = section(t("組織一覧", "Organizations"));
        s.id = "orgs".into();
        s.table = Some(table(
            &[
                ("名前", "Name"),
                ("日本語名", "Japanese name"),
                ("種類", "Kind"),
                ("状態", "Status"),
                ("ID", "Id"),
            ],
            list.iter()
                .map(|o| {
                    vec![
                        link(o.name.clone(), format!("/admin/orgs/{}", o.id)),
                        cell(o.name_ja.clone().unwrap_or_default()),
                        cell(o.kind.as_str()),
                        cell(o.status.clone()),
                        cell(o.id.clone()),
                    ]
                })
                .collect(),
        ));
        v.sections.push(s);
        if who.may_in(Action::ManageOrgs, None) {
            let mut add = section(t("組織を追加", "Add an organization"));
            add.forms.push(post_form(
                "new-org",
                "/admin/orgs",
                vec![
                    required(text_field("name", t("名前", "Name"), "")),
                    text_field("name_ja", t("日本語名", "Japanese name"), ""),
                    select("kind", t("種類", "Kind"), "other", kind_options()),
                ],
                t("追加", "Add"),
            ));
            v.sections.push(add);
        }
        Ok(v)
    })
}

fn org_request(p: &Posted, version: Option<i64>) -> OrgRequest {
    OrgRequest {
        name: p.get("name"),
        name_ja: p.opt("name_ja"),
        kind: p.opt("kind"),
        version,
    }
}

pub(super) async fn create(State(c): State<Console>, headers: HeaderMap, body: Bytes) -> Response {
    post_for!(c, headers, body, |p| {
        let org = ops::create_org(&c, &p.who, org_request(&p, None).organization()?).await?;
        done(&format!("/admin/orgs/{}", org.id), "created")
    })
}

/// The relying parties and upstream identity providers of one organization, as far as the
/// viewer may see them.
async fn org_partners(c: &Console, who: &Caller, org_id: &str) -> Result<Section, ConsoleError> {
    let mut s = section(t(
        "この組織のクライアントと外部IdP",
        "This organization's clients and identity providers",
    ));
    s.id = "partners".into();
    let mut rows = Vec::new();
    if who.may(Action::ViewClients) {
        for cl in ops::list_clients(c, who).await? {
            if cl.org_id.as_deref() == Some(org_id) {
                rows.push(vec![
                    cell(t("クライアント", "Client")),
                    link(cl.name.clone(), format!("/admin/clients/{}", cl.client_id)),
                    cell(cl.status.to_string()),
                ]);
            }
        }
    }
    if who.may(Action::ViewUpstreams) {
        for u in ops::list_upstreams(c, who).await? {
            if u.org_id == org_id {
                rows.push(vec![
                    cell(t("外部IdP", "Identity provider")),
                    link(u.name.clone(), format!("/admin/upstreams/{}", u.alias)),
                    cell(u.status.clone()),
                ]);
            }
        }
    }
    s.table = Some(table(
        &[("種類", "Kind"), ("名前", "Name"), ("状態", "Status")],
        rows,
    ));
    Ok(s)
}

/// The rules letting the organization's certificates act as OAuth clients of their own
/// (RFC 8705), and, for those who may set them, the form.
async fn certificate_clients(
    c: &Console,
    who: &Caller,
    org_id: &str,
) -> Result<Section, ConsoleError> {
    let mut s = section(t(
        "証明書によるクライアント（RFC 8705）",
        "Certificates as clients (RFC 8705)",
    ));
    s.id = "certificate-clients".into();
    s.text = t(
        "この組織の証明書（機器など）が、クライアント登録なしに相互TLSのトークンエンドポイントで得られるスコープです。管理用スコープ（kizuna:*）は指定できません。",
        "The scopes this organization's certificates (devices and the like) may get at the mutual-TLS token endpoint, with no client registration. Management scopes (kizuna:*) cannot be given.",
    );
    let rows = ops::client_scopes(c, who, org_id)
        .await?
        .into_iter()
        .map(|r| {
            vec![
                cell(r.profile),
                cell(if r.model.is_empty() {
                    t("すべての型式", "every model")
                } else {
                    r.model
                }),
                cell(r.scopes.join(" ")),
                cell(time(r.updated_at)),
            ]
        })
        .collect();
    s.table = Some(table(
        &[
            ("プロファイル", "Profile"),
            ("型式", "Model"),
            ("スコープ", "Scopes"),
            ("更新", "Updated"),
        ],
        rows,
    ));
    if who.may_in(Action::ManageClients, Some(org_id)) {
        s.forms.push(post_form(
            "client-scopes",
            format!("/admin/orgs/{org_id}/client-scopes"),
            vec![
                required(text_field(
                    "profile",
                    t("プロファイル", "Profile"),
                    "device",
                )),
                text_field(
                    "model",
                    t("型式（空欄はすべての型式）", "Model (empty: every model)"),
                    "",
                ),
                text_field(
                    "scopes",
                    t(
                        "スコープ（空白区切り。空欄で規則を削除）",
                        "Scopes (separated by spaces; empty removes the rule)",
                    ),
                    "",
                ),
            ],
            t("規則を保存", "Save the rule"),
        ));
    }
    Ok(s)
}

/// Sets one rule from the organization page's form.
pub(super) async fn client_scopes(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    post_for!(c, headers, body, |p| {
        let profile = p.get("profile");
        let rule = ClientScopesRequest {
            profile: match profile.trim() {
                "" => "device".into(),
                named => named.into(),
            },
            model: p.get("model").trim().into(),
            scopes: words(&p.get("scopes")),
        };
        ops::set_client_scopes(&c, &p.who, &id, rule).await?;
        done(&format!("/admin/orgs/{id}"), "saved")
    })
}

fn org_view(
    who: &Caller,
    o: &Organization,
    notice: Option<String>,
    error: Option<Message>,
) -> View {
    let path = format!("/admin/orgs/{}", o.id);
    let mut v = view(format!("{} {}", t("組織", "Organization"), o.name), &path);
    v.notice = notice;
    v.error = error;
    let mut s = section(t("組織", "Organization"));
    s.id = "org".into();
    s.facts = vec![
        ("ID".into(), o.id.clone()),
        (t("名前", "Name"), o.name.clone()),
        (
            t("日本語名", "Japanese name"),
            o.name_ja.clone().unwrap_or_default(),
        ),
        (t("種類", "Kind"), o.kind.as_str().to_string()),
        (t("状態", "Status"), o.status.clone()),
        (t("版", "Version"), o.version.to_string()),
    ];
    s.links.push((
        format!("/admin/devices?org={}", o.id),
        t(
            "この組織の機器と証明書",
            "This organization's devices and certificates",
        ),
        false,
    ));
    if who.may_in(Action::ManageOrgs, None) {
        s.forms.push(post_form(
            "edit-org",
            path.clone(),
            vec![
                hidden("version", &o.version.to_string()),
                required(text_field("name", t("名前", "Name"), &o.name)),
                text_field(
                    "name_ja",
                    t("日本語名", "Japanese name"),
                    o.name_ja.as_deref().unwrap_or_default(),
                ),
                select("kind", t("種類", "Kind"), o.kind.as_str(), kind_options()),
            ],
            t("保存", "Save"),
        ));
        if o.status == "active" {
            s.forms.push(danger(post_form(
                "disable-org",
                format!("{path}/disable"),
                vec![],
                t("無効にする", "Disable"),
            )));
        } else {
            s.forms.push(post_form(
                "enable-org",
                format!("{path}/enable"),
                vec![],
                t("有効にする", "Enable"),
            ));
        }
    }
    v.sections.push(s);
    v
}

pub(super) async fn show(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let path = format!("/admin/orgs/{id}");
    page_for!(c, headers, path, |who| {
        let o = ops::org(&c, &who, &id).await?;
        let mut v = org_view(&who, &o, notice_for(&raw), None);
        v.sections.push(org_partners(&c, &who, &o.id).await?);
        if who.may_in(Action::ViewClients, Some(&o.id)) {
            v.sections.push(certificate_clients(&c, &who, &o.id).await?);
        }
        Ok(v)
    })
}

pub(super) async fn edit(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    post_for!(c, headers, body, |p| {
        let version: i64 = p
            .get("version")
            .parse()
            .map_err(|_| ConsoleError::Invalid(Msg::FormHasNoVersion.into()))?;
        let new = org_request(&p, Some(version)).organization()?;
        match ops::update_org(&c, &p.who, &id, version, new).await {
            Ok(_) => done(&format!("/admin/orgs/{id}"), "saved"),
            Err(e @ ConsoleError::Stale(_)) => {
                let message = e.public();
                let ConsoleError::Stale(Stale::Org(current)) = e else {
                    return Err(e);
                };
                let mut v = org_view(&p.who, &current, None, Some(message));
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
        let active = match action.as_str() {
            "disable" => false,
            "enable" => true,
            other => {
                return Err(ConsoleError::NotFound(
                    Msg::NoAction {
                        action: other.into(),
                    }
                    .into(),
                ));
            }
        };
        ops::set_org_status(&c, &p.who, &id, active).await?;
        done(
            &format!("/admin/orgs/{id}"),
            if active { "enabled" } else { "disabled" },
        )
    })
}
