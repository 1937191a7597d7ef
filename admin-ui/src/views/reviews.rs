//! The periodic access review page: accounts left unused, role changes, and disabling the
//! selected accounts.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::audit::audit_table;
use super::users::user_table;
use super::widgets::{danger, post_form, search_form, section, text_field};
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
    let path = path_with_query("/admin/reviews", &raw);
    page_for!(c, headers, path, |who| {
        let days: i64 = match query_value(&raw, "days") {
            Some(d) => d
                .parse()
                .map_err(|_| ConsoleError::Invalid(Msg::DaysNumber.into()))?,
            None => 90,
        };
        let r = ops::review(&c, &who, days).await?;
        let mut v = view(t("定期棚卸し", "Periodic review"), &path);
        v.notice = notice_for(&raw);
        let mut s = section(t("期間", "Period"));
        s.forms.push(search_form(
            "review-days",
            "/admin/reviews",
            vec![text_field("days", t("日数", "Days"), &days.to_string())],
        ));
        v.sections.push(s);
        let mut unused = section(format!(
            "{} ({days} {})",
            t("使われていないアカウント", "Accounts unused"),
            t("日", "days")
        ));
        unused.id = "unused".into();
        let mut tbl = user_table(&r.unused);
        for (row, u) in tbl.rows.iter_mut().zip(&r.unused) {
            row.select = u.id.clone();
        }
        if who.may(Action::ManageUsers) {
            tbl.select = Some(("bulk-disable".into(), "user_id".into()));
            unused.forms.push(danger(post_form(
                "bulk-disable",
                "/admin/reviews/disable",
                vec![],
                t(
                    "選択したアカウントを無効にする",
                    "Disable the selected accounts",
                ),
            )));
        }
        unused.table = Some(tbl);
        v.sections.push(unused);
        let mut roles = section(t("役割が変わったスタッフ", "Caller whose role changed"));
        roles.id = "role-changes".into();
        roles.table = Some(audit_table(&r.role_changes));
        v.sections.push(roles);
        Ok(v)
    })
}

pub(super) async fn disable(State(c): State<Console>, headers: HeaderMap, body: Bytes) -> Response {
    post_for!(c, headers, body, |p| {
        let ids = p.all("user_id");
        if ids.is_empty() {
            return Err(ConsoleError::Invalid(Msg::NoAccountSelected.into()));
        }
        ops::bulk_disable(&c, &p.who, &ids).await?;
        done("/admin/reviews", "disabled")
    })
}
