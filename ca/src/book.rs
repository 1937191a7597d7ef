//! The CA's certificates as the OCSP responder and the identity provider read them
//! ([`CertificateBook`]): issuing CAs and their signers, a certificate's standing, the change
//! feed, and certificates presented as client credentials, through the modules that own
//! those tables. Needs only the database, so the standalone responder
//! (`kizuna ocsp serve`) uses it without the rest of the CA.

use x509_cert::Certificate;
use x509_cert::der::Decode;

use kizuna_core::db::Db;
use kizuna_core::pki::{
    Binding, BookFuture, CertStatus, CertificateBook, Change, Credential, IssuingCa, OcspSigner,
    Serial, Standing,
};

use crate::devices::DeviceStatus;
use crate::names::San;

/// A stored status as a [`Standing`] (`None` for a status this build does not know).
fn standing(status: &str, revoked_at: Option<i64>, reason: Option<String>) -> Option<Standing> {
    Some(Standing {
        status: status.parse::<CertStatus>().ok()?,
        revoked_at,
        reason: reason.and_then(|r| r.parse().ok()),
    })
}

/// The CA's certificate records over one database.
#[derive(Clone)]
pub struct Book {
    db: Db,
}

impl Book {
    pub fn new(db: Db) -> Book {
        Book { db }
    }
}

impl CertificateBook for Book {
    fn issuing_cas(&self, now: i64) -> BookFuture<'_, Vec<IssuingCa>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for (ca_id, cert_der) in crate::hierarchy::issuing_certificates(&self.db).await? {
                let signer = crate::ocsp_signer::newest(&self.db, &ca_id, now)
                    .await?
                    .and_then(|(serial, key_id, cert_der)| {
                        Some(OcspSigner {
                            serial: serial.parse().ok()?,
                            key_id,
                            cert_der,
                        })
                    });
                out.push(IssuingCa {
                    ca_id,
                    cert_der,
                    signer,
                });
            }
            Ok(out)
        })
    }

    fn standing<'a>(
        &'a self,
        ca_id: &'a str,
        serial: &'a Serial,
    ) -> BookFuture<'a, Option<Standing>> {
        Box::pin(async move {
            let row = crate::store::standing(&self.db, ca_id, serial.as_str()).await?;
            Ok(row.and_then(|(status, revoked_at, reason)| standing(&status, revoked_at, reason)))
        })
    }

    fn standings<'a>(
        &'a self,
        ca_id: &'a str,
        serials: &'a [Serial],
    ) -> BookFuture<'a, Vec<(Serial, Standing)>> {
        Box::pin(async move {
            let texts: Vec<&str> = serials.iter().map(Serial::as_str).collect();
            Ok(crate::store::standings(&self.db, ca_id, &texts)
                .await?
                .into_iter()
                .filter_map(|(serial, status, revoked_at, reason)| {
                    Some((serial.parse().ok()?, standing(&status, revoked_at, reason)?))
                })
                .collect())
        })
    }

    fn current_serials<'a>(&'a self, ca_id: &'a str, now: i64) -> BookFuture<'a, Vec<Serial>> {
        Box::pin(async move {
            Ok(crate::store::current_serials(&self.db, ca_id, now)
                .await?
                .into_iter()
                .filter_map(|s| s.parse().ok())
                .collect())
        })
    }

    fn changes(&self, after: i64, since: i64, limit: i64) -> BookFuture<'_, Vec<Change>> {
        Box::pin(crate::changes::since(&self.db, after, since, limit))
    }

    fn change_bounds(&self) -> BookFuture<'_, (i64, i64)> {
        Box::pin(crate::changes::bounds(&self.db))
    }

    fn credential<'a>(&'a self, der: &'a [u8]) -> BookFuture<'a, Option<Credential>> {
        Box::pin(async move {
            let Ok(cert) = Certificate::from_der(der) else {
                return Ok(None);
            };
            let serial = crate::enroll::serial_hex(&cert);
            let Some(record) = crate::store::get(&self.db, &serial)
                .await?
                .filter(|r| kizuna_core::secret::constant_time_eq(&r.der, der))
            else {
                return Ok(None);
            };
            let device = match &record.device_id {
                Some(id) => crate::devices::get(&self.db, id).await?,
                None => None,
            };
            let model = device.as_ref().map_or("", |d| d.model.as_str());
            let client_scopes = match &record.org_id {
                Some(org) => {
                    crate::cert_clients::scopes_for(&self.db, org, &record.profile, model).await?
                }
                None => None,
            };
            Ok(Some(Credential {
                serial: record
                    .serial
                    .parse()
                    .map_err(|e: String| sqlx::Error::Decode(e.into()))?,
                status: record.status,
                status_changed_at: record.status_changed_at,
                not_before: record.not_before,
                not_after: record.not_after,
                org_id: record.org_id,
                profile: record.profile,
                subject: record.subject,
                sans: record.sans.0.iter().filter_map(san_pair).collect(),
                device: device.map(|d| (d.id, d.status == DeviceStatus::Active)),
                client_scopes,
            }))
        })
    }

    fn binding<'a>(&'a self, serial: &'a Serial) -> BookFuture<'a, Option<Binding>> {
        Box::pin(async move {
            let row = crate::store::binding(&self.db, serial.as_str()).await?;
            Ok(row.and_then(|(status, status_changed_at)| {
                Some(Binding {
                    status: status.parse().ok()?,
                    status_changed_at,
                })
            }))
        })
    }
}

/// A name as `(kind, value)` for matching a client registration (RFC 8705 §2.1.2).
fn san_pair(san: &San) -> Option<(String, String)> {
    let (kind, value) = match san {
        San::Dns(d) => ("dns", d.clone()),
        San::Ip(ip) => ("ip", ip.to_string()),
        San::Uri(u) => ("uri", u.clone()),
        San::Email(e) => ("email", e.clone()),
        San::HardwareModule { .. } => return None,
    };
    Some((kind.to_string(), value))
}
