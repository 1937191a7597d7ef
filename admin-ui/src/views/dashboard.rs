//! The dashboard page: counts, what waits for approval, recent security events.

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{Redirect, Response};

use super::audit::audit_table;
use super::widgets::{cell, link, section, table};
use super::{t, view};
use crate::Console;
use crate::ops;
use kizuna_core::access::Action;

/// `/admin/` is the console too. It answers a permanent redirect (308) to `/admin`, query
/// kept, so the console has one canonical URL (bookmarks, `next=` after sign-in).
pub(super) async fn to_canonical(RawQuery(query): RawQuery) -> Redirect {
    match query {
        Some(query) => Redirect::permanent(&format!("/admin?{query}")),
        None => Redirect::permanent("/admin"),
    }
}

pub(super) async fn show(State(c): State<Console>, headers: HeaderMap) -> Response {
    page_for!(c, headers, "/admin", |who| {
        let d = ops::dashboard(&c, &who).await?;
        let mut v = view(t("ダッシュボード", "Dashboard"), "/admin");
        let mut counts = section(t("件数", "Counts"));
        counts.id = "counts".into();
        counts.facts = vec![
            (t("利用者", "Users"), d.counts.users.to_string()),
            (
                t("有効なセッション", "Active sessions"),
                d.counts.active_sessions.to_string(),
            ),
            (
                t(
                    "30日以内に期限切れの証明書",
                    "Certificates expiring within 30 days",
                ),
                d.counts.certificates_expiring_30d.to_string(),
            ),
            (
                t("本日の失効", "Revocations today"),
                d.counts.revocations_today.to_string(),
            ),
        ];
        for (status, n) in &d.counts.devices_by_status {
            counts.facts.push((
                format!("{} ({status})", t("機器", "Devices")),
                n.to_string(),
            ));
        }
        v.sections.push(counts);
        if !d.pending.is_empty() {
            let mut pending = section(t("承認待ち", "Waiting for approval"));
            pending.id = "pending".into();
            pending.table = Some(table(
                &[("種類", "Kind"), ("名前", "Name"), ("組織", "Organization")],
                d.pending
                    .iter()
                    .map(|p| {
                        let (kind, href) = match p.kind {
                            "upstream" => (
                                t("外部IdP", "Identity provider"),
                                format!("/admin/upstreams/{}", p.id),
                            ),
                            _ => (
                                t("クライアント", "Client"),
                                format!("/admin/clients/{}", p.id),
                            ),
                        };
                        vec![
                            cell(kind),
                            link(p.name.clone(), href),
                            cell(p.org_id.clone().unwrap_or_default()),
                        ]
                    })
                    .collect(),
            ));
            v.sections.push(pending);
        }
        if who.may_in(Action::ViewAudit, None) {
            let mut events = section(t("最近のセキュリティイベント", "Recent security events"));
            events.table = Some(audit_table(&d.security_events));
            v.sections.push(events);
        }
        Ok(v)
    })
}
