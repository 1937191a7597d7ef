//! A certificate's page and its PEM download, and revocation: the confirmation page that
//! names exactly what will change, revoking, holding and releasing.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use kizuna_ca::revoke::Reason;

use super::widgets::{
    Cell, Form, Section, cell, danger, hidden, link, opt_time, post_form, required, section,
    select, table, text_field, time,
};
use super::{done, error_page, lang, notice_for, path_with_query, query_value, staff, t, view};
use crate::Console;
use crate::error::ConsoleError;
use crate::messages::Msg;
use crate::ops::{self, Target};
use kizuna_core::access::Action;
use kizuna_core::pki::CertStatus;

pub(super) fn reason_options() -> Vec<(String, String)> {
    Reason::ALL
        .iter()
        .filter(|r| **r != Reason::CertificateHold)
        .map(|r| (r.as_str().to_string(), r.as_str().to_string()))
        .collect()
}

pub(super) fn cert_rows(certs: &[kizuna_ca::store::CertRecord]) -> Vec<Vec<Cell>> {
    certs
        .iter()
        .map(|r| {
            vec![
                link(
                    r.serial.clone(),
                    format!("/admin/certificates/{}", r.serial),
                ),
                cell(r.subject.clone()),
                cell(r.device_id.clone().unwrap_or_default()),
                cell(r.org_id.clone().unwrap_or_default()),
                cell(r.status.to_string()),
                cell(time(r.not_after)),
            ]
        })
        .collect()
}

pub(super) const CERT_HEADERS: [(&str, &str); 6] = [
    ("シリアル", "Serial"),
    ("サブジェクト", "Subject"),
    ("機器", "Device"),
    ("組織", "Organization"),
    ("状態", "Status"),
    ("有効期限", "Expires"),
];

/// Revoking every certificate of a device or of an organization; the next page confirms.
pub(super) fn bulk_revocation() -> Section {
    let mut bulk = section(t("一括失効", "Bulk revocation"));
    bulk.text = t(
        "次の画面で、失効する証明書を確認してから実行します。",
        "The next page shows exactly what will be revoked before anything happens.",
    );
    bulk.forms.push(Form {
        id: "bulk-device".into(),
        method: "get",
        action: "/admin/revoke".into(),
        fields: vec![
            required(text_field("device", t("機器ID", "Device id"), "")),
            text_field(
                "org",
                t(
                    "組織ID（同じIDが複数の組織にある場合）",
                    "Organization id (when the id exists in several)",
                ),
                "",
            ),
            select(
                "reason",
                t("理由", "Reason"),
                "keyCompromise",
                reason_options(),
            ),
        ],
        submit: t(
            "機器の証明書の失効を確認",
            "Review revoking the device's certificates",
        ),
        danger: true,
    });
    bulk.forms.push(Form {
        id: "bulk-org".into(),
        method: "get",
        action: "/admin/revoke".into(),
        fields: vec![
            required(text_field("org", t("組織ID", "Organization id"), "")),
            select(
                "reason",
                t("理由", "Reason"),
                "cessationOfOperation",
                reason_options(),
            ),
        ],
        submit: t(
            "組織の証明書の失効を確認",
            "Review revoking the organization's certificates",
        ),
        danger: true,
    });
    bulk
}

pub(super) async fn show(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(serial): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let path = format!("/admin/certificates/{serial}");
    page_for!(c, headers, path, |who| {
        let cert = ops::certificate(&c, &who, &serial).await?;
        let mut v = view(
            format!("{} {}", t("証明書", "Certificate"), cert.serial),
            &path,
        );
        v.notice = notice_for(&raw);
        let mut s = section(t("状態", "Status"));
        s.id = "status".into();
        s.facts = vec![
            (t("状態", "Status"), cert.status.to_string()),
            (t("失効日時", "Revoked at"), opt_time(cert.revoked_at)),
            (
                t("失効理由", "Revocation reason"),
                cert.revocation_reason.clone().unwrap_or_default(),
            ),
            (
                t("組織", "Organization"),
                cert.org_id.clone().unwrap_or_default(),
            ),
            (
                t("機器", "Device"),
                cert.device_id.clone().unwrap_or_default(),
            ),
            (t("プロファイル", "Profile"), cert.profile.clone()),
            (t("要求者", "Requested by"), cert.requested_by.clone()),
        ];
        s.links.push((
            format!("/admin/certificates/{}/pem", cert.serial),
            t("PEMをダウンロード", "Download PEM"),
            true,
        ));
        if let Some(device) = &cert.device_id {
            s.links.push((
                format!("/admin/devices/{device}"),
                t("機器を表示", "Show the device"),
                false,
            ));
        }
        if who.may_in(Action::RevokeCertificates, cert.org_id.as_deref()) {
            if cert.status != CertStatus::Revoked {
                s.forms.push(Form {
                    id: "revoke".into(),
                    method: "get",
                    action: "/admin/revoke".into(),
                    fields: vec![
                        hidden("serial", &cert.serial),
                        select(
                            "reason",
                            t("理由", "Reason"),
                            "keyCompromise",
                            reason_options(),
                        ),
                    ],
                    submit: t("失効…", "Revoke…"),
                    danger: true,
                });
            }
            if cert.status == CertStatus::Valid {
                s.forms.push(Form {
                    id: "hold".into(),
                    method: "get",
                    action: "/admin/revoke".into(),
                    fields: vec![
                        hidden("serial", &cert.serial),
                        hidden("reason", Reason::CertificateHold.as_str()),
                    ],
                    submit: t("一時停止…", "Suspend (hold)…"),
                    danger: false,
                });
            }
            if cert.status == CertStatus::Hold {
                s.forms.push(post_form(
                    "unhold",
                    format!("/admin/certificates/{}/unhold", cert.serial),
                    vec![],
                    t("一時停止を解除", "Release from hold"),
                ));
            }
        }
        v.sections.push(s);
        let mut f = section(t("内容", "Decoded fields"));
        f.id = "fields".into();
        f.facts = crate::decode::fields(&cert.der, lang())
            .into_iter()
            .map(|(name, value)| (lang().pick(name.0, name.1).to_string(), value))
            .collect();
        f.pre = Some(kizuna_ca::issue::pem("CERTIFICATE", &cert.der));
        v.sections.push(f);
        Ok(v)
    })
}

pub(super) async fn pem(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(serial): Path<String>,
) -> Response {
    let path = format!("/admin/certificates/{serial}/pem");
    let who = match staff(&c, &headers, &path).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match ops::certificate(&c, &who, &serial).await {
        Ok(cert) => (
            [
                (
                    header::CONTENT_TYPE,
                    "application/pem-certificate-chain".to_string(),
                ),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{}.pem\"", cert.serial),
                ),
            ],
            kizuna_ca::issue::pem("CERTIFICATE", &cert.der),
        )
            .into_response(),
        Err(e) => error_page(&c, &headers, Some(&who), e),
    }
}

fn target_of(
    serial: Option<String>,
    device: Option<String>,
    org: Option<String>,
) -> Result<Target, ConsoleError> {
    match (serial, device, org) {
        (Some(s), None, None) => Ok(Target::Serial(s)),
        (None, Some(d), org) => Ok(Target::Device {
            device_id: d,
            org_id: org,
        }),
        (None, None, Some(o)) => Ok(Target::Org(o)),
        _ => Err(ConsoleError::Invalid(Msg::NameOneTarget.into())),
    }
}

/// The confirmation: names exactly what will be revoked before anything changes.
pub(super) async fn revoke_confirm(
    State(c): State<Console>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let path = path_with_query("/admin/revoke", &raw);
    page_for!(c, headers, path, |who| {
        let q = |n| query_value(&raw, n);
        let reason = crate::forms::reason(&q("reason").unwrap_or_else(|| "unspecified".into()))?;
        let target = target_of(q("serial"), q("device"), q("org"))?;
        let plan = ops::plan_revocation(&c, &who, target).await?;
        let hold = reason == Reason::CertificateHold;
        let mut v = view(
            if hold {
                t("一時停止の確認", "Confirm the suspension")
            } else {
                t("失効の確認", "Confirm the revocation")
            },
            &path,
        );
        let mut s = section(t("対象", "What will change"));
        s.id = "confirm".into();
        let kind = match plan.kind {
            "certificate" => t("証明書", "certificate"),
            "device" => t("機器", "device"),
            _ => t("組織", "organization"),
        };
        s.text = format!(
            "{} {} {} ({}: {}) — {} {} — {}: {} — {} {}",
            if hold {
                t("一時停止:", "Suspend:")
            } else {
                t("失効:", "Revoke:")
            },
            kind,
            plan.id,
            t("組織", "organization"),
            plan.org_id.clone().unwrap_or_default(),
            plan.count,
            t("件の証明書", "certificate(s)"),
            t("理由", "reason"),
            reason.as_str(),
            plan.tokens,
            t(
                "件の有効なアクセストークン（証明書に結び付いたもの）も失効します",
                "live access token(s) bound to them will end too",
            ),
        );
        s.table = Some(table(
            &[("シリアル", "Serial")],
            plan.serials
                .iter()
                .map(|x| vec![link(x.clone(), format!("/admin/certificates/{x}"))])
                .collect(),
        ));
        if plan.count == 0 {
            v.error = Some(Msg::NothingToRevoke.into());
        } else {
            let mut fields = vec![hidden("reason", reason.as_str())];
            match plan.kind {
                "certificate" => fields.push(hidden("serial", &plan.id)),
                "device" => {
                    fields.push(hidden("device", &plan.id));
                    fields.push(hidden("org", plan.org_id.as_deref().unwrap_or_default()));
                }
                _ => fields.push(hidden("org", &plan.id)),
            }
            fields.push(hidden("expected", &plan.count.to_string()));
            s.forms.push(danger(post_form(
                "confirm-revoke",
                "/admin/revoke",
                fields,
                format!(
                    "{} {} {}",
                    if hold {
                        t("一時停止する", "Suspend")
                    } else {
                        t("失効する", "Revoke")
                    },
                    plan.count,
                    t("件", "certificate(s)")
                ),
            )));
        }
        v.sections.push(s);
        Ok(v)
    })
}

pub(super) async fn revoke(State(c): State<Console>, headers: HeaderMap, body: Bytes) -> Response {
    post_for!(c, headers, body, |p| {
        let reason = crate::forms::reason(&p.get("reason"))?;
        let target = target_of(p.opt("serial"), p.opt("device"), p.opt("org"))?;
        let back = match &target {
            Target::Serial(s) => format!("/admin/certificates/{s}"),
            Target::Device { device_id, .. } => format!("/admin/devices/{device_id}"),
            Target::Org(_) => "/admin/devices".to_string(),
        };
        let plan = ops::plan_revocation(&c, &p.who, target.clone()).await?;
        if p.opt("expected")
            .is_some_and(|e| e != plan.count.to_string())
        {
            return Err(ConsoleError::Conflict(Msg::TargetsChanged.into()));
        }
        ops::revoke(&c, &p.who, target, reason).await?;
        done(
            &back,
            if reason == Reason::CertificateHold {
                "held"
            } else {
                "revoked"
            },
        )
    })
}

pub(super) async fn unhold(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(serial): Path<String>,
    body: Bytes,
) -> Response {
    post_for!(c, headers, body, |p| {
        ops::unhold(&c, &p.who, &serial).await?;
        done(&format!("/admin/certificates/{serial}"), "released")
    })
}
