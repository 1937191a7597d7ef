//! The CA's certificates as the OCSP responder reads them ([`CertificateBook`]): issuing
//! CAs and their signers, a certificate's standing, and the change feed, through the
//! modules that own those tables. Needs only the database, so the standalone responder
//! (`kizuna ocsp serve`) uses it without the rest of the CA.

use kizuna_core::db::Db;
use kizuna_core::pki::{
    BookFuture, CertStatus, CertificateBook, Change, IssuingCa, OcspSigner, Serial, Standing,
};

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
            Ok(row.and_then(|(status, revoked_at, reason)| {
                Some(Standing {
                    status: status.parse::<CertStatus>().ok()?,
                    revoked_at,
                    reason: reason.and_then(|r| r.parse().ok()),
                })
            }))
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
}
