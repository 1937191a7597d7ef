//! The devices page (search devices and certificates, register a device) and a device's
//! page (its registration, suspend, resume, retire, its certificates).

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::certificates::{CERT_HEADERS, cert_rows, reason_options};
use super::widgets::{
    Form, cell, danger, hidden, link, opt_time, post_form, required, search_form, section, select,
    table, text_field,
};
use super::{certificates, done, enrollment, notice_for, path_with_query, query_value, t, view};
use crate::Console;
use crate::error::ConsoleError;
use crate::forms::{CertQuery, DeviceQuery, DeviceRequest};
use crate::messages::Msg;
use crate::ops::{self, DeviceChange};
use kizuna_core::access::Action;

fn status_options(values: &[&str]) -> Vec<(String, String)> {
    std::iter::once((String::new(), t("すべて", "any")))
        .chain(values.iter().map(|s| (s.to_string(), s.to_string())))
        .collect()
}

pub(super) async fn list(
    State(c): State<Console>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let path = path_with_query("/admin/devices", &raw);
    page_for!(c, headers, path, |who| {
        let q = |n| query_value(&raw, n);
        let dq = DeviceQuery {
            q: q("q"),
            org: q("org"),
            status: q("status"),
        };
        let cq = CertQuery {
            q: q("q"),
            org: q("org"),
            device: None,
            status: q("cert_status"),
        };
        let devices = ops::search_devices(&c, &who, dq.search()?).await?;
        let certs = ops::search_certificates(&c, &who, cq.search()?).await?;
        let mut v = view(t("機器と証明書", "Devices and certificates"), &path);
        v.notice = notice_for(&raw);
        let mut search = section(t("検索", "Search"));
        search.forms.push(search_form(
            "search",
            "/admin/devices",
            vec![
                text_field(
                    "q",
                    t(
                        "機器ID・シリアル・SAN・サブジェクト",
                        "Device id, serial, SAN or subject",
                    ),
                    &q("q").unwrap_or_default(),
                ),
                text_field(
                    "org",
                    t("組織ID", "Organization id"),
                    &q("org").unwrap_or_default(),
                ),
                select(
                    "status",
                    t("機器の状態", "Device status"),
                    &q("status").unwrap_or_default(),
                    status_options(&["pending", "active", "suspended", "retired"]),
                ),
                select(
                    "cert_status",
                    t("証明書の状態", "Certificate status"),
                    &q("cert_status").unwrap_or_default(),
                    status_options(&["valid", "hold", "revoked"]),
                ),
            ],
        ));
        v.sections.push(search);
        let mut ds = section(t("機器", "Devices"));
        ds.id = "devices".into();
        ds.table = Some(table(
            &[
                ("機器ID", "Device id"),
                ("組織", "Organization"),
                ("型式", "Model"),
                ("シリアル", "Hardware serial"),
                ("設置場所", "Location"),
                ("状態", "Status"),
            ],
            devices
                .iter()
                .map(|d| {
                    vec![
                        link(d.id.clone(), format!("/admin/devices/{}", d.id)),
                        cell(d.org_id.clone()),
                        cell(d.model.clone()),
                        cell(d.hardware_serial.clone().unwrap_or_default()),
                        cell(d.location.clone()),
                        cell(d.status.as_str()),
                    ]
                })
                .collect(),
        ));
        v.sections.push(ds);
        let mut cs = section(t("証明書", "Certificates"));
        cs.id = "certificates".into();
        cs.table = Some(table(&CERT_HEADERS, cert_rows(&certs)));
        v.sections.push(cs);
        if who.may(Action::ManageDevices) {
            let orgs = ops::list_orgs(&c, &who).await?;
            let org_options: Vec<(String, String)> = orgs
                .iter()
                .filter(|o| who.may_in(Action::ManageDevices, Some(&o.id)))
                .map(|o| (o.id.clone(), o.name.clone()))
                .collect();
            let mut add = section(t("機器を登録", "Register a device"));
            add.forms.push(post_form(
                "new-device",
                "/admin/devices",
                vec![
                    select("org_id", t("組織", "Organization"), "", org_options.clone()),
                    text_field(
                        "id",
                        t("機器ID（空欄で自動）", "Device id (blank: generated)"),
                        "",
                    ),
                    required(text_field("model", t("型式", "Model"), "")),
                    text_field(
                        "hardware_serial",
                        t("ハードウェアシリアル", "Hardware serial"),
                        "",
                    ),
                    text_field("location", t("設置場所", "Location"), ""),
                    text_field("installer", t("設置業者", "Installer"), ""),
                ],
                t("登録", "Register"),
            ));
            v.sections.push(add);
            v.sections.push(enrollment::token_form(org_options));
        }
        if let Some(org) = q("org").filter(|o| who.may_in(Action::ManageDevices, Some(o))) {
            v.sections.push(enrollment::tokens(&c, &who, &org).await?);
        }
        if who.may(Action::RevokeCertificates) {
            v.sections.push(certificates::bulk_revocation());
        }
        Ok(v)
    })
}

pub(super) async fn create(State(c): State<Console>, headers: HeaderMap, body: Bytes) -> Response {
    post_for!(c, headers, body, |p| {
        let req = DeviceRequest {
            id: p.opt("id"),
            org_id: p.get("org_id"),
            model: p.get("model"),
            hardware_serial: p.opt("hardware_serial"),
            location: p.get("location"),
            installer: p.get("installer"),
        };
        let device = ops::create_device(&c, &p.who, req.into()).await?;
        done(&format!("/admin/devices/{}", device.id), "created")
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
            "suspend" => DeviceChange::Suspend,
            "resume" => DeviceChange::Resume,
            "retire" => DeviceChange::Retire,
            other => {
                return Err(ConsoleError::NotFound(
                    Msg::NoAction {
                        action: other.into(),
                    }
                    .into(),
                ));
            }
        };
        ops::change_device(&c, &p.who, &id, change).await?;
        done(&format!("/admin/devices/{id}"), "saved")
    })
}

pub(super) async fn show(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let path = format!("/admin/devices/{id}");
    page_for!(c, headers, path, |who| {
        let d = ops::device(&c, &who, &id).await?;
        let mut v = view(format!("{} {}", t("機器", "Device"), d.device.id), &path);
        v.notice = notice_for(&raw);
        let mut s = section(t("登録情報", "Registration"));
        s.facts = vec![
            (t("機器ID", "Device id"), d.device.id.clone()),
            (t("組織", "Organization"), d.device.org_id.clone()),
            (t("型式", "Model"), d.device.model.clone()),
            (
                t("ハードウェアシリアル", "Hardware serial"),
                d.device.hardware_serial.clone().unwrap_or_default(),
            ),
            (t("設置場所", "Location"), d.device.location.clone()),
            (t("状態", "Status"), d.device.status.as_str().to_string()),
            (t("登録", "Enrolled"), opt_time(d.device.enrolled_at)),
            (
                t("有効なアクセストークン", "Live access tokens"),
                d.tokens.recent.to_string(),
            ),
            (
                t("最後のトークン発行", "Last token issued"),
                d.tokens
                    .newest
                    .clone()
                    .unwrap_or_else(|| t("なし", "never")),
            ),
        ];
        if who.may_in(Action::RevokeCertificates, Some(&d.device.org_id)) {
            let base = format!("/admin/devices/{}", d.device.id);
            match d.device.status.as_str() {
                "active" | "pending" => s.forms.push(post_form(
                    "suspend",
                    format!("{base}/suspend"),
                    vec![],
                    t(
                        "一時停止（証明書を保留）",
                        "Suspend (hold its certificates)",
                    ),
                )),
                "suspended" => s.forms.push(post_form(
                    "resume",
                    format!("{base}/resume"),
                    vec![],
                    t("再開", "Resume"),
                )),
                _ => {}
            }
            if d.device.status.as_str() != "retired" {
                s.forms.push(danger(post_form(
                    "retire",
                    format!("{base}/retire"),
                    vec![],
                    t(
                        "廃止（証明書をすべて失効）",
                        "Retire (revoke all its certificates)",
                    ),
                )));
            }
        }
        v.sections.push(s);
        let mut cs = section(t("証明書", "Certificates"));
        cs.table = Some(table(&CERT_HEADERS, cert_rows(&d.certificates)));
        if who.may_in(Action::RevokeCertificates, Some(&d.device.org_id)) {
            cs.forms.push(Form {
                id: "revoke-device".into(),
                method: "get",
                action: "/admin/revoke".into(),
                fields: vec![
                    hidden("device", &d.device.id),
                    hidden("org", &d.device.org_id),
                    select(
                        "reason",
                        t("理由", "Reason"),
                        "keyCompromise",
                        reason_options(),
                    ),
                ],
                submit: t(
                    "この機器の証明書をすべて失効…",
                    "Revoke all of this device's certificates…",
                ),
                danger: true,
            });
        }
        v.sections.push(cs);
        Ok(v)
    })
}
