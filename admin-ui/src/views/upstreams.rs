//! The upstream identity provider pages: the list and the form that adds one, a provider's
//! page (settings, what to register there) and its actions.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use kizuna_idp::federation::ClientAuth;
use kizuna_idp::federation::ceiling::{AcrMap, TrustCeiling};
use kizuna_idp::federation::claims::ClaimMap;
use kizuna_idp::federation::upstreams::{acr_entries, acr_map_from, claim_entries, claim_map_from};

use super::widgets::{
    Field, cell, hidden, lines, link, post_form, required, section, select, status_forms, table,
    text_field, textarea, words, yes_no,
};
use super::{Posted, View, done, notice_for, t, view};
use crate::Console;
use crate::error::ConsoleError;
use crate::forms::{UpstreamPatch, UpstreamRequest};
use crate::messages::{Message, Msg};
use crate::ops::{self, UpstreamChange, UpstreamView};
use kizuna_core::access::{Action, Caller};

fn level_options() -> Vec<(String, String)> {
    (1..=3).map(|l| (l.to_string(), l.to_string())).collect()
}

fn level(p: &Posted, name: &str, out_of_range: Msg) -> Result<u8, ConsoleError> {
    p.get(name)
        .parse()
        .map_err(|_| ConsoleError::Invalid(out_of_range.into()))
}

pub(super) async fn list(
    State(c): State<Console>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    page_for!(c, headers, "/admin/upstreams", |who| {
        let list = ops::list_upstreams(&c, &who).await?;
        let mut v = view(t("外部IdP", "Identity providers"), "/admin/upstreams");
        v.notice = notice_for(&raw);
        let mut s = section(t("登録済みの外部IdP", "Upstream identity providers"));
        s.id = "upstreams".into();
        s.table = Some(table(
            &[
                ("名前", "Name"),
                ("別名", "Alias"),
                ("組織", "Organization"),
                ("発行者", "Issuer"),
                ("状態", "Status"),
                ("信頼の上限", "Trust ceiling"),
            ],
            list.iter()
                .map(|u| {
                    vec![
                        link(u.name.clone(), format!("/admin/upstreams/{}", u.alias)),
                        cell(u.alias.clone()),
                        cell(u.org_id.clone()),
                        cell(u.issuer.clone()),
                        cell(u.status.clone()),
                        cell(format!(
                            "IAL{} / AAL{}",
                            u.ceiling.max_ial, u.ceiling.max_aal
                        )),
                    ]
                })
                .collect(),
        ));
        v.sections.push(s);
        if who.may(Action::ManageUpstreams) {
            let orgs = ops::list_orgs(&c, &who).await?;
            let options = orgs
                .iter()
                .filter(|o| {
                    o.status == "active" && who.may_in(Action::ManageUpstreams, Some(&o.id))
                })
                .map(|o| (o.id.clone(), o.name.clone()))
                .collect();
            let mut add = section(t("外部IdPを追加", "Add an identity provider"));
            add.text = if who.may_in(Action::ApproveUpstreams, None) {
                t(
                    "発行者のディスカバリ文書を今読み込みます。",
                    "The issuer's discovery document is read now.",
                )
            } else {
                t(
                    "発行者のディスカバリ文書を今読み込みます。追加した外部IdPは、市の管理者が承認するまで保留になります。",
                    "The issuer's discovery document is read now. A provider you add stays pending until a city administrator approves it.",
                )
            };
            add.forms.push(post_form(
                "new-upstream",
                "/admin/upstreams",
                vec![
                    required(text_field(
                        "alias",
                        t("別名（URL用、英小文字・数字・-）", "Alias (for URLs: a-z, 0-9, -)"),
                        "",
                    )),
                    required(text_field(
                        "name",
                        t("ボタンに表示する名前", "Name on the sign-in button"),
                        "",
                    )),
                    select("org_id", t("組織", "Organization"), "", options),
                    text_field(
                        "issuer",
                        t("発行者URL（OpenID Connect）", "Issuer URL (OpenID Connect)"),
                        "",
                    ),
                    text_field(
                        "client_id",
                        t(
                            "Kizunaのクライアントid（OpenID Connect）",
                            "Kizuna's client id there (OpenID Connect)",
                        ),
                        "",
                    ),
                    text_field(
                        "saml_metadata_url",
                        t(
                            "または SAML 2.0 IdP のメタデータURL（発行者とクライアントidは空欄）",
                            "Or a SAML 2.0 IdP's metadata URL (leave the issuer and client id empty)",
                        ),
                        "",
                    ),
                    select(
                        "client_auth",
                        t("クライアント認証", "Client authentication"),
                        "client_secret_basic",
                        vec![
                            ("client_secret_basic".into(), "client_secret_basic".into()),
                            ("private_key_jwt".into(), "private_key_jwt".into()),
                        ],
                    ),
                    select(
                        "key_algorithm",
                        t("鍵の種類（private_key_jwt）", "Key type (private_key_jwt)"),
                        "p256",
                        vec![
                            ("p256".into(), "P-256 (ES256)".into()),
                            ("rsa2048".into(), "RSA 2048 (RS256)".into()),
                        ],
                    ),
                    Field {
                        kind: "password",
                        ..text_field(
                            "client_secret",
                            t(
                                "クライアントシークレット（client_secret_basic）",
                                "Client secret (client_secret_basic)",
                            ),
                            "",
                        )
                    },
                    text_field(
                        "scopes",
                        t("スコープ（空白区切り）", "Scopes (space-separated)"),
                        "openid email profile",
                    ),
                    text_field(
                        "acr_values",
                        t("送る acr_values（空白区切り）", "acr_values to send (space-separated)"),
                        "",
                    ),
                    textarea(
                        "claim_map",
                        t(
                            "属性の対応（1行に 属性=クレーム、空欄は標準）",
                            "Claim mapping (ATTRIBUTE=CLAIM per line; empty for the standard claims)",
                        ),
                        String::new(),
                    ),
                    textarea(
                        "acr_map",
                        t(
                            "acr の意味（1行に 値=AAL:IAL）",
                            "What acr values mean (VALUE=AAL:IAL per line)",
                        ),
                        String::new(),
                    ),
                    select(
                        "max_ial",
                        t("信頼の上限：身元確認レベル", "Trust ceiling: identity assurance"),
                        "1",
                        level_options(),
                    ),
                    select(
                        "max_aal",
                        t("信頼の上限：認証レベル", "Trust ceiling: authentication assurance"),
                        "1",
                        level_options(),
                    ),
                    select(
                        "jit",
                        t("初回サインインでアカウントを作成", "Create accounts at first sign-in"),
                        "true",
                        yes_no(),
                    ),
                    text_field(
                        "email_domains",
                        t(
                            "この IdP を使うメールドメイン（空白区切り）",
                            "Email domains that sign in here (space-separated)",
                        ),
                        "",
                    ),
                    select(
                        "propagate_logout",
                        t("サインアウトを IdP に伝える", "Continue sign-out at the provider"),
                        "true",
                        yes_no(),
                    ),
                ],
                t("追加", "Add"),
            ));
            v.sections.push(add);
        }
        Ok(v)
    })
}

/// A form's mapping lines (`ATTRIBUTE=CLAIM`, `VALUE=AAL:IAL`) as the API's maps; the API's
/// conversion then checks them as it checks a JSON request.
fn posted_maps(p: &Posted) -> Result<(ClaimMap, AcrMap), ConsoleError> {
    Ok((
        claim_map_from(&lines(&p.get("claim_map")), ClaimMap::new())?,
        acr_map_from(&lines(&p.get("acr_map")))?,
    ))
}

fn posted_ceiling(p: &Posted) -> Result<TrustCeiling, ConsoleError> {
    Ok(TrustCeiling {
        max_ial: level(p, "max_ial", Msg::MaxIalRange)?,
        max_aal: level(p, "max_aal", Msg::MaxAalRange)?,
    })
}

pub(super) async fn create(State(c): State<Console>, headers: HeaderMap, body: Bytes) -> Response {
    post_for!(c, headers, body, |p| {
        let (claim_map, acr_map) = posted_maps(&p)?;
        let saml = p.opt("saml_metadata_url").filter(|u| !u.trim().is_empty());
        let new = UpstreamRequest {
            alias: p.get("alias").trim().to_string(),
            name: p.get("name").trim().to_string(),
            org_id: p.get("org_id"),
            issuer: p.get("issuer").trim().to_string(),
            client_id: p.get("client_id").trim().to_string(),
            saml_metadata_url: saml.clone(),
            client_auth: p.opt("client_auth"),
            client_secret: p.opt("client_secret"),
            key_algorithm: p.opt("key_algorithm"),
            scopes: words(&p.get("scopes")),
            acr_values: words(&p.get("acr_values")),
            claim_map: (!claim_map.is_empty()).then_some(claim_map),
            acr_map,
            ceiling: Some(posted_ceiling(&p)?),
            jit: p.get("jit") != "false",
            email_domains: words(&p.get("email_domains")),
            propagate_logout: p.get("propagate_logout") != "false",
        }
        .into_new()?;
        let created = ops::create_upstream(&c, &p.who, new, saml.as_deref()).await?;
        done(
            &format!("/admin/upstreams/{}", created.upstream.alias),
            "created",
        )
    })
}

/// The upstream page; after a refused stale edit it shows the newer version with the error.
fn upstream_view(
    who: &Caller,
    uv: &UpstreamView,
    notice: Option<String>,
    error: Option<Message>,
) -> View {
    let u = &uv.upstream;
    let path = format!("/admin/upstreams/{}", u.alias);
    let mut v = view(
        format!("{} {}", t("外部IdP", "Identity provider"), u.name),
        &path,
    );
    v.notice = notice;
    v.error = error;
    let mut s = section(t("設定", "Settings"));
    s.id = "upstream".into();
    s.facts = vec![
        ("ID".into(), u.id.clone()),
        (t("別名", "Alias"), u.alias.clone()),
        (t("名前", "Name"), u.name.clone()),
        (t("組織", "Organization"), u.org_id.clone()),
        (t("発行者", "Issuer"), u.issuer.clone()),
        (t("クライアントid", "Client id"), u.client_id.clone()),
        (
            t("クライアント認証", "Client authentication"),
            u.client_auth.as_str().to_string(),
        ),
        (t("状態", "Status"), u.status.clone()),
        (t("スコープ", "Scopes"), u.scopes.join(" ")),
        (
            t("送る acr_values", "acr_values sent"),
            u.acr_values.join(" "),
        ),
        (
            t("属性の対応", "Claim mapping"),
            claim_entries(&u.claim_map).join(", "),
        ),
        (
            t("acr の意味", "What acr values mean"),
            acr_entries(&u.acr_map).join(", "),
        ),
        (
            t("信頼の上限", "Trust ceiling"),
            format!("IAL{} / AAL{}", u.ceiling.max_ial, u.ceiling.max_aal),
        ),
        (
            t(
                "初回サインインでアカウントを作成",
                "Accounts created at first sign-in",
            ),
            if u.jit {
                t("はい", "yes")
            } else {
                t("いいえ", "no")
            },
        ),
        (
            t("メールドメイン", "Email domains"),
            u.email_domains.join(" "),
        ),
        (
            t("サインアウトを伝える", "Sign-out continues upstream"),
            if u.propagate_logout {
                t("はい", "yes")
            } else {
                t("いいえ", "no")
            },
        ),
        (t("版", "Version"), u.version.to_string()),
    ];
    let manage = who.may_in(Action::ManageUpstreams, Some(&u.org_id));
    let trust = who.may_in(Action::ApproveUpstreams, None);
    if manage {
        let mut fields = vec![
            hidden("version", &u.version.to_string()),
            required(text_field("name", t("名前", "Name"), &u.name)),
            text_field("scopes", t("スコープ", "Scopes"), &u.scopes.join(" ")),
            text_field(
                "acr_values",
                t("送る acr_values", "acr_values to send"),
                &u.acr_values.join(" "),
            ),
            textarea(
                "claim_map",
                t(
                    "属性の対応（1行に 属性=クレーム）",
                    "Claim mapping (ATTRIBUTE=CLAIM per line)",
                ),
                claim_entries(&u.claim_map).join("\n"),
            ),
            textarea(
                "acr_map",
                t(
                    "acr の意味（1行に 値=AAL:IAL）",
                    "What acr values mean (VALUE=AAL:IAL per line)",
                ),
                acr_entries(&u.acr_map).join("\n"),
            ),
            select(
                "jit",
                t(
                    "初回サインインでアカウントを作成",
                    "Create accounts at first sign-in",
                ),
                &u.jit.to_string(),
                yes_no(),
            ),
            select(
                "propagate_logout",
                t(
                    "サインアウトを IdP に伝える",
                    "Continue sign-out at the provider",
                ),
                &u.propagate_logout.to_string(),
                yes_no(),
            ),
        ];
        if u.client_auth == ClientAuth::ClientSecretBasic {
            fields.push(Field {
                kind: "password",
                ..text_field(
                    "client_secret",
                    t(
                        "新しいクライアントシークレット（変更する場合のみ）",
                        "New client secret (only to replace it)",
                    ),
                    "",
                )
            });
        }
        if trust {
            fields.extend([
                select(
                    "max_ial",
                    t(
                        "信頼の上限：身元確認レベル",
                        "Trust ceiling: identity assurance",
                    ),
                    &u.ceiling.max_ial.to_string(),
                    level_options(),
                ),
                select(
                    "max_aal",
                    t(
                        "信頼の上限：認証レベル",
                        "Trust ceiling: authentication assurance",
                    ),
                    &u.ceiling.max_aal.to_string(),
                    level_options(),
                ),
                text_field(
                    "email_domains",
                    t(
                        "メールドメイン（空白区切り）",
                        "Email domains (space-separated)",
                    ),
                    &u.email_domains.join(" "),
                ),
            ]);
        }
        s.forms.push(post_form(
            "edit-upstream",
            path.clone(),
            fields,
            t("保存", "Save"),
        ));
        s.forms.extend(status_forms(&path, &u.status, trust));
    }
    v.sections.push(s);
    let mut reg = section(t("外部IdPに登録する値", "What to register at the provider"));
    reg.id = "registration".into();
    if let Some(sp) = &uv.registration.saml {
        reg.facts = vec![
            (
                t("SPメタデータURL", "SP metadata URL"),
                sp.metadata_url.clone(),
            ),
            (t("エンティティID", "Entity ID"), sp.entity_id.clone()),
            (
                t(
                    "アサーション受信URL (POST)",
                    "Assertion consumer service (POST)",
                ),
                sp.acs_url.clone(),
            ),
            (
                t(
                    "シングルログアウトURL (Redirect)",
                    "Single logout service (Redirect)",
                ),
                sp.slo_url.clone(),
            ),
        ];
        reg.pre = uv.sp_metadata.clone();
        v.sections.push(reg);
        return v;
    }
    reg.facts = vec![
        (
            t("リダイレクトURI", "Redirect URI"),
            uv.registration.redirect_uri.clone(),
        ),
        (
            t("バックチャネルログアウトURI", "Back-channel logout URI"),
            uv.registration.backchannel_logout_uri.clone(),
        ),
        (
            t("ログアウト後のリダイレクトURI", "Post-logout redirect URI"),
            uv.registration.post_logout_redirect_uri.clone(),
        ),
    ];
    if let Some(jwks_uri) = &uv.registration.jwks_uri {
        reg.facts.push(("jwks_uri".into(), jwks_uri.clone()));
    }
    reg.pre = uv
        .jwks
        .as_ref()
        .map(|j| serde_json::to_string_pretty(j).unwrap_or_default());
    v.sections.push(reg);
    v
}

pub(super) async fn show(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let path = format!("/admin/upstreams/{id}");
    page_for!(c, headers, path, |who| {
        let uv = ops::upstream(&c, &who, &id).await?;
        Ok(upstream_view(&who, &uv, notice_for(&raw), None))
    })
}

pub(super) async fn edit(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    post_for!(c, headers, body, |p| {
        let trust = p.who.may_in(Action::ApproveUpstreams, None);
        let (claim_map, acr_map) = posted_maps(&p)?;
        let edit = UpstreamPatch {
            version: p
                .get("version")
                .parse()
                .map_err(|_| ConsoleError::Invalid(Msg::FormHasNoVersion.into()))?,
            name: Some(p.get("name").trim().to_string()),
            client_secret: p.opt("client_secret"),
            scopes: Some(words(&p.get("scopes"))),
            acr_values: Some(words(&p.get("acr_values"))),
            claim_map: Some(claim_map),
            acr_map: Some(acr_map),
            ceiling: if trust {
                Some(posted_ceiling(&p)?)
            } else {
                None
            },
            jit: Some(p.get("jit") != "false"),
            email_domains: trust.then(|| words(&p.get("email_domains"))),
            propagate_logout: Some(p.get("propagate_logout") != "false"),
        }
        .into_edit()?;
        match ops::edit_upstream(&c, &p.who, &id, edit).await {
            Ok(uv) => done(&format!("/admin/upstreams/{}", uv.upstream.alias), "saved"),
            Err(e @ ConsoleError::Stale(_)) => {
                let message = e.public();
                let current = ops::upstream(&c, &p.who, &id).await?;
                let mut v = upstream_view(&p.who, &current, None, Some(message));
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
        let change = match action.as_str() {
            "approve" => UpstreamChange::Approve,
            "disable" => UpstreamChange::Disable,
            "enable" => UpstreamChange::Enable,
            other => {
                return Err(ConsoleError::NotFound(
                    Msg::NoAction {
                        action: other.into(),
                    }
                    .into(),
                ));
            }
        };
        let uv = ops::change_upstream(&c, &p.who, &id, change).await?;
        done(
            &format!("/admin/upstreams/{}", uv.upstream.alias),
            match change {
                UpstreamChange::Approve => "approved",
                UpstreamChange::Disable => "disabled",
                UpstreamChange::Enable => "enabled",
            },
        )
    })
}
