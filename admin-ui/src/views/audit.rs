//! The audit log pages: search, export, one entry, and verifying the hash chain.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;

use kizuna_core::audit::AuditEntry;

use super::widgets::{Table, cell, link, post_form, search_form, section, table, text_field};
use super::{error_page, lang, path_with_query, query_value, staff, t, view};
use crate::Console;
use crate::forms::AuditQuery;
use crate::messages::Msg;
use crate::ops;

pub(super) fn audit_table(entries: &[AuditEntry]) -> Table {
    table(
        &[
            ("時刻", "Time"),
            ("実行者", "Actor"),
            ("操作", "Action"),
            ("対象", "Target"),
            ("結果", "Outcome"),
        ],
        entries
            .iter()
            .map(|e| {
                vec![
                    link(e.at.clone(), format!("/admin/audit/{}", e.id)),
                    cell(format!("{}:{}", e.actor_kind, e.actor_id)),
                    cell(e.action.clone()),
                    cell(e.target.clone()),
                    cell(e.outcome.clone()),
                ]
            })
            .collect(),
    )
}

fn audit_query(raw: &Option<String>) -> AuditQuery {
    let q = |n| query_value(raw, n);
    AuditQuery {
        actor: q("actor"),
        action: q("action"),
        target: q("target"),
        since: q("since"),
        until: q("until"),
        format: q("format"),
    }
}

pub(super) async fn list(
    State(c): State<Console>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let path = path_with_query("/admin/audit", &raw);
    page_for!(c, headers, path, |who| {
        let q = audit_query(&raw);
        let entries = ops::search_audit(&c, &who, q.search(0)).await?;
        let mut v = view(t("監査ログ", "Audit log"), &path);
        let mut s = section(t("絞り込み", "Filter"));
        let val = |x: &Option<String>| x.clone().unwrap_or_default();
        s.forms.push(search_form(
            "audit-filter",
            "/admin/audit",
            vec![
                text_field("actor", t("実行者ID", "Actor id"), &val(&q.actor)),
                text_field(
                    "action",
                    t(
                        "操作（例: cert.revoke、接頭辞は cert.）",
                        "Action (e.g. cert.revoke; prefix: cert.)",
                    ),
                    &val(&q.action),
                ),
                text_field(
                    "target",
                    t("対象（例: cert:…）", "Target (e.g. cert:…)"),
                    &val(&q.target),
                ),
                text_field(
                    "since",
                    t("開始（RFC 3339）", "From (RFC 3339)"),
                    &val(&q.since),
                ),
                text_field(
                    "until",
                    t("終了（RFC 3339）", "Until (RFC 3339)"),
                    &val(&q.until),
                ),
            ],
        ));
        let filter = raw.clone().unwrap_or_default();
        let sep = if filter.is_empty() { "" } else { "&" };
        s.links.push((
            format!("/admin/audit/export?{filter}{sep}format=jsonl"),
            t("JSON Lines で書き出す", "Export JSON lines"),
            true,
        ));
        s.links.push((
            format!("/admin/audit/export?{filter}{sep}format=csv"),
            t("CSV で書き出す", "Export CSV"),
            true,
        ));
        s.forms.push(post_form(
            "verify",
            "/admin/audit/verify",
            vec![],
            t("ハッシュチェーンを検証", "Verify chain"),
        ));
        v.sections.push(s);
        let mut list = section(t("記録", "Entries"));
        list.id = "entries".into();
        list.table = Some(audit_table(&entries));
        v.sections.push(list);
        Ok(v)
    })
}

pub(super) async fn export(
    State(c): State<Console>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let path = path_with_query("/admin/audit/export", &raw);
    let who = match staff(&c, &headers, &path).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = audit_query(&raw);
    let format = q.format.clone().unwrap_or_else(|| "jsonl".into());
    match crate::export::audit_log(&c, &who, &q, &format).await {
        Ok(r) => r,
        Err(e) => error_page(&c, &headers, Some(&who), e),
    }
}

pub(super) async fn verify(State(c): State<Console>, headers: HeaderMap, body: Bytes) -> Response {
    post_for!(c, headers, body, |p| {
        let report = ops::verify_audit(&c, &p.who).await?;
        let mut v = view(
            t("ハッシュチェーンの検証", "Chain verification"),
            "/admin/audit",
        );
        let mut s = section(t("結果", "Result"));
        s.id = "verify".into();
        match &report.broken {
            None => {
                s.text = Msg::ChainVerified {
                    count: report.entries.to_string(),
                }
                .render(lang());
            }
            Some(b) => {
                v.error = Some(Msg::ChainBroken.with_detail(b.reason.clone()));
                s.text = Msg::ChainBrokenAt {
                    seq: b.seq.to_string(),
                    id: b.id.clone(),
                }
                .render(lang());
            }
        }
        v.sections.push(s);
        Ok(v.render(&c, &headers, Some(&p.who)))
    })
}

pub(super) async fn show(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let path = format!("/admin/audit/{id}");
    page_for!(c, headers, path, |who| {
        let e = ops::audit_entry(&c, &who, &id).await?;
        let mut v = view(
            format!("{} #{}", t("監査記録", "Audit entry"), e.seq),
            &path,
        );
        let mut s = section(e.action.clone());
        s.id = "entry".into();
        s.facts = vec![
            (t("番号", "Sequence"), e.seq.to_string()),
            ("ID".into(), e.id.clone()),
            (t("時刻", "Time"), e.at.clone()),
            (
                t("実行者", "Actor"),
                format!("{}:{}", e.actor_kind, e.actor_id),
            ),
            (t("操作", "Action"), e.action.clone()),
            (t("対象", "Target"), e.target.clone()),
            (t("結果", "Outcome"), e.outcome.clone()),
            (
                t("送信元", "Source address"),
                e.source_ip.clone().unwrap_or_default(),
            ),
            (
                t("リクエストID", "Request id"),
                e.request_id.clone().unwrap_or_default(),
            ),
            (t("直前のハッシュ", "Previous hash"), e.prev_hash.clone()),
            (t("ハッシュ", "Hash"), e.hash.clone()),
        ];
        s.pre = Some(
            serde_json::from_str::<serde_json::Value>(&e.details)
                .and_then(|d| serde_json::to_string_pretty(&d))
                .unwrap_or_else(|_| e.details.clone()),
        );
        v.sections.push(s);
        Ok(v)
    })
}
