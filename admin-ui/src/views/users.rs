//! The accounts pages: search, an account's page (roles, factors, sessions, consents, audit
//! trail) and its actions, and the registrar's in-person identity check.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;

use kizuna_idp::assurance::ATTRIBUTES;
use kizuna_idp::assurance::counter::{CounterCheck, DOCUMENT_TYPES};
use kizuna_idp::users::Role;

use super::audit::audit_table;
use super::widgets::{
    Section, Table, cell, danger, link, opt_time, post_form, required, search_form, section,
    select, table, text_field, time,
};
use super::{done, notice_for, path_with_query, query_value, t, view};
use crate::Console;
use crate::error::ConsoleError;
use crate::messages::Msg;
use crate::ops;
use kizuna_core::access::Action;

pub(super) async fn list(
    State(c): State<Console>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let path = path_with_query("/admin/users", &raw);
    page_for!(c, headers, path, |who| {
        let text = query_value(&raw, "q");
        let found = ops::search_users(&c, &who, text.clone()).await?;
        let mut v = view(t("利用者", "Users"), &path);
        let mut s = section(t("検索", "Search"));
        s.forms.push(search_form(
            "user-search",
            "/admin/users",
            vec![text_field(
                "q",
                t(
                    "ユーザー名・メール・名前・ID",
                    "Username, email, name or id",
                ),
                &text.unwrap_or_default(),
            )],
        ));
        v.sections.push(s);
        let mut list = section(t("アカウント", "Accounts"));
        list.id = "users".into();
        list.table = Some(user_table(&found));
        v.sections.push(list);
        Ok(v)
    })
}

pub(super) fn user_table(found: &[crate::store::UserRow]) -> Table {
    table(
        &[
            ("ユーザー名", "Username"),
            ("名前", "Name"),
            ("メール", "Email"),
            ("組織", "Organization"),
            ("状態", "Status"),
            ("最終サインイン", "Last sign-in"),
        ],
        found
            .iter()
            .map(|u| {
                vec![
                    link(u.username.clone(), format!("/admin/users/{}", u.id)),
                    cell(u.name.clone().unwrap_or_default()),
                    cell(u.email.clone().unwrap_or_default()),
                    cell(u.org_id.clone().unwrap_or_default()),
                    cell(u.status.clone()),
                    cell(opt_time(u.last_login_at)),
                ]
            })
            .collect(),
    )
}

pub(super) async fn show(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let path = format!("/admin/users/{id}");
    page_for!(c, headers, path, |who| {
        let u = ops::user(&c, &who, &id).await?;
        let org = u.user.org_id.clone();
        let mut v = view(
            format!("{} {}", t("利用者", "User"), u.user.username),
            &path,
        );
        v.notice = notice_for(&raw);
        let mut s = section(t("アカウント", "Account"));
        s.id = "account".into();
        s.facts = vec![
            ("ID".into(), u.user.id.clone()),
            (t("ユーザー名", "Username"), u.user.username.clone()),
            (t("名前", "Name"), u.user.name.clone().unwrap_or_default()),
            (
                t("メール", "Email"),
                u.user.email.clone().unwrap_or_default(),
            ),
            (t("組織", "Organization"), org.clone().unwrap_or_default()),
            (t("状態", "Status"), u.user.status.clone()),
            (
                t("役割", "Roles"),
                u.roles
                    .iter()
                    .map(|(r, s)| format!("{}@{s}", r.as_str()))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            (
                t("必要な認証レベル", "Required level"),
                format!("AAL{}", u.min_aal),
            ),
            (t("パスキー", "Passkeys"), u.passkeys.to_string()),
            (
                t("認証アプリ", "Authenticator app"),
                if u.totp {
                    t("あり", "yes")
                } else {
                    t("なし", "no")
                },
            ),
            (
                t("回復コード残り", "Recovery codes left"),
                u.recovery_codes_left.to_string(),
            ),
            (
                t("身元確認レベル", "Identity assurance"),
                match &u.proofing {
                    Some(r) => format!("IAL{} ({})", r.level, r.provider),
                    None => format!("IAL{}", u.ial),
                },
            ),
            (
                t("身元確認記録", "Proofing record"),
                u.proofing
                    .as_ref()
                    .map(|r| format!("{} ({})", r.id, time(r.verified_at)))
                    .unwrap_or_default(),
            ),
            (
                t("連携アカウント", "Linked identity providers"),
                u.linked
                    .iter()
                    .map(|l| l.name.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        ];
        let base = format!("/admin/users/{}", u.user.id);
        if who.may_in(Action::ManageUsers, org.as_deref()) {
            if u.user.status == "active" {
                s.forms.push(danger(post_form(
                    "disable",
                    format!("{base}/disable"),
                    vec![],
                    t("無効にする", "Disable"),
                )));
            } else {
                s.forms.push(post_form(
                    "enable",
                    format!("{base}/enable"),
                    vec![],
                    t("有効にする", "Enable"),
                ));
            }
            s.forms.push(post_form(
                "role",
                format!("{base}/roles"),
                vec![
                    select(
                        "role",
                        t("役割", "Role"),
                        "",
                        Role::ALL
                            .iter()
                            .map(|r| (r.as_str().to_string(), r.as_str().to_string()))
                            .collect(),
                    ),
                    required(text_field(
                        "scope",
                        t("範囲（組織IDまたは *）", "Scope (organization id or *)"),
                        org.as_deref().unwrap_or("*"),
                    )),
                    select(
                        "granted",
                        t("操作", "Change"),
                        "true",
                        vec![
                            ("true".into(), t("付与", "grant")),
                            ("false".into(), t("取り消し", "withdraw")),
                        ],
                    ),
                ],
                t("役割を変更", "Change role"),
            ));
        }
        if who.may_in(Action::EndSessions, org.as_deref()) {
            s.forms.push(danger(post_form(
                "end-sessions",
                format!("{base}/end-sessions"),
                vec![],
                t("すべてのセッションを終了", "End all sessions"),
            )));
        }
        if who.may_in(Action::ResetFactors, org.as_deref()) {
            s.forms.push(danger(post_form(
                "reset-factors",
                format!("{base}/reset-factors"),
                vec![
                    required(text_field(
                        "reproofing_reference",
                        t(
                            "本人確認の記録（IAL2以上は身元確認記録のID）",
                            "Re-proofing reference (the proofing record id for IAL2 and above)",
                        ),
                        "",
                    )),
                    text_field("reason", t("理由", "Reason"), ""),
                ],
                t("認証要素をリセット", "Reset factors"),
            )));
        }
        v.sections.push(s);
        if who.may_in(Action::RecordProofing, org.as_deref()) && who.user_id.is_some() {
            v.sections.push(counter_check_section(&base));
        }
        let mut sess = section(t("セッション", "Sessions"));
        sess.table = Some(table(
            &[
                ("開始", "Started"),
                ("方法", "Methods"),
                ("送信元", "Address"),
                ("ブラウザ", "Browser"),
            ],
            u.sessions
                .iter()
                .map(|x| {
                    vec![
                        cell(time(x.created_at)),
                        cell(x.amr.clone()),
                        cell(x.ip.clone().unwrap_or_default()),
                        cell(x.user_agent.clone().unwrap_or_default()),
                    ]
                })
                .collect(),
        ));
        v.sections.push(sess);
        let mut cons = section(t("同意", "Consents"));
        cons.table = Some(table(
            &[
                ("クライアント", "Client"),
                ("スコープ", "Scopes"),
                ("更新", "Updated"),
            ],
            u.consents
                .iter()
                .map(|x| {
                    vec![
                        cell(x.client_id.clone()),
                        cell(x.scopes.clone()),
                        cell(time(x.updated_at)),
                    ]
                })
                .collect(),
        ));
        v.sections.push(cons);
        if who.may_in(Action::ViewAudit, None) {
            let mut trail = section(t("監査記録", "Audit trail"));
            trail.table = Some(audit_table(&u.trail));
            v.sections.push(trail);
        }
        Ok(v)
    })
}

pub(super) async fn action(
    State(c): State<Console>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    post_for!(c, headers, body, |p| {
        let back = format!("/admin/users/{id}");
        match action.as_str() {
            "disable" => {
                ops::set_user_status(&c, &p.who, &id, false).await?;
                done(&back, "disabled")
            }
            "enable" => {
                ops::set_user_status(&c, &p.who, &id, true).await?;
                done(&back, "enabled")
            }
            "end-sessions" => {
                ops::end_sessions(&c, &p.who, &id).await?;
                done(&back, "sessions")
            }
            "reset-factors" => {
                ops::reset_factors(
                    &c,
                    &p.who,
                    &id,
                    &p.get("reproofing_reference"),
                    p.opt("reason").as_deref(),
                )
                .await?;
                done(&back, "reset")
            }
            "proofing" => {
                let check = CounterCheck {
                    document_type: p.get("document_type"),
                    document_number: p.get("document_number"),
                    issuer: p.opt("issuer"),
                    level: p
                        .get("level")
                        .parse()
                        .map_err(|_| ConsoleError::Invalid(Msg::ProofingLevel.into()))?,
                    attributes: ATTRIBUTES
                        .iter()
                        .filter_map(|a| p.opt(a).map(|v| (a.to_string(), v)))
                        .collect(),
                };
                ops::record_proofing(&c, &p.who, &id, check).await?;
                done(&back, "proofed")
            }
            "roles" => {
                let role = crate::forms::role(&p.get("role"))?;
                ops::change_role(
                    &c,
                    &p.who,
                    &id,
                    role,
                    p.get("scope").trim(),
                    p.get("granted") != "false",
                )
                .await?;
                done(&back, "role")
            }
            other => Err(ConsoleError::NotFound(
                Msg::NoAction {
                    action: other.into(),
                }
                .into(),
            )),
        }
    })
}

/// The registrar's form for an in-person check of a document at the counter.
fn counter_check_section(base: &str) -> Section {
    let mut s = section(t("窓口での本人確認", "In-person identity check"));
    s.id = "counter-check".into();
    s.text = t(
        "本人確認書類を目の前の本人と照合してから記録してください。書類番号はハッシュとしてのみ保存されます。",
        "Record this only after checking the document against the person in front of you. The document number is stored only as a hash.",
    );
    let mut fields = vec![
        select(
            "document_type",
            t("書類の種類", "Document type"),
            DOCUMENT_TYPES[0],
            DOCUMENT_TYPES
                .iter()
                .map(|d| (d.to_string(), d.to_string()))
                .collect(),
        ),
        required(text_field(
            "document_number",
            t("書類番号", "Document number"),
            "",
        )),
        text_field("issuer", t("発行者", "Issuer"), ""),
        select(
            "level",
            t("確認のレベル", "Level the check supports"),
            "2",
            vec![
                (
                    "2".into(),
                    t("IAL2（書類の確認）", "IAL2 (document checked)"),
                ),
                (
                    "3".into(),
                    t(
                        "IAL3（写真付き書類を本人と照合）",
                        "IAL3 (photo ID matched to the person)",
                    ),
                ),
            ],
        ),
    ];
    fields.extend(
        ATTRIBUTES
            .iter()
            .map(|a| text_field(a, attribute_label(a), "")),
    );
    s.forms.push(post_form(
        "record-proofing",
        format!("{base}/proofing"),
        fields,
        t("確認を記録", "Record the check"),
    ));
    s
}

fn attribute_label(attribute: &str) -> String {
    match attribute {
        "family_name" => t("姓", "Family name"),
        "given_name" => t("名", "Given name"),
        "name" => t("氏名", "Full name"),
        "family_name#ja-Kana-JP" => t("姓（カナ）", "Family name (kana)"),
        "given_name#ja-Kana-JP" => t("名（カナ）", "Given name (kana)"),
        "birthdate" => t("生年月日（YYYY-MM-DD）", "Birthdate (YYYY-MM-DD)"),
        "gender" => t(
            "性別（male / female / other）",
            "Gender (male / female / other)",
        ),
        "address" => t("住所", "Address"),
        other => other.to_string(),
    }
}
