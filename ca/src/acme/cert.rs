//! Certificates (RFC 8555 §7.4.2, §7.6): download of an issued certificate with its chain,
//! and `revokeCert`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use kizuna_core::audit::Actor;
use kizuna_core::jose::PublicJwk;

use super::jws::Signer;
use super::problem::{Kind, Problem};
use super::store;
use super::{ByAccount, signed};
use crate::issue::pem;
use crate::revoke::{Reason, Selector};
use crate::{Ca, hierarchy};

/// Certificate download (§7.4.2): the certificate and its issuing CAs, PEM.
pub(super) async fn certificate(
    State(ca): State<Ca>,
    Path(serial): Path<String>,
    ByAccount(req): ByAccount,
) -> Result<Response, Problem> {
    let account = req.account()?;
    store::order_of_certificate(&ca.core.db, &serial)
        .await?
        .filter(|o| o.account_id == account.id)
        .ok_or_else(|| Problem::not_found("certificate"))?;
    let record = crate::store::get(&ca.core.db, &serial)
        .await?
        .ok_or_else(|| Problem::not_found("certificate"))?;
    let mut chain = hierarchy::chain(&ca, &record.ca_id).await?;
    // The root is the relying party's trust anchor, not part of what the server sends; during
    // a root rollover the cross-certificate to the other root takes its place, so relying
    // parties that trust only the other root find a path too.
    if chain.len() > 1
        && let Some(root) = chain.pop()
    {
        chain.extend(hierarchy::bridges(&ca, &root).await?);
    }
    let mut text = pem("CERTIFICATE", &record.der);
    for der in &chain {
        text.push_str(&pem("CERTIFICATE", der));
    }
    Ok((
        [(header::CONTENT_TYPE, "application/pem-certificate-chain")],
        text,
    )
        .into_response())
}

#[derive(Deserialize)]
struct RevokeCert {
    certificate: String,
    #[serde(default)]
    reason: Option<u8>,
}

/// `revokeCert` (§7.6): by the account that ordered it (or its organization's), or by the
/// certificate's own key.
pub(super) async fn revoke_cert(
    State(ca): State<Ca>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let req = signed(&ca, &headers, &body, "/acme/revoke-cert", Signer::Either).await?;
    let payload: RevokeCert = req.json()?;
    let der = URL_SAFE_NO_PAD
        .decode(payload.certificate.trim_end_matches('='))
        .map_err(|_| Problem::malformed("the certificate is not base64url DER"))?;
    let cert = <x509_cert::Certificate as x509_cert::der::Decode>::from_der(&der)
        .map_err(|_| Problem::malformed("the certificate is not a DER X.509 certificate"))?;
    let serial = crate::enroll::serial_hex(&cert);
    let record = crate::store::get(&ca.core.db, &serial)
        .await?
        .filter(|r| kizuna_core::secret::constant_time_eq(&r.der, &der))
        .ok_or_else(|| Problem::not_found("certificate issued by this CA"))?;
    let reason = match payload.reason {
        None => Reason::Unspecified,
        Some(code) => Reason::ALL
            .into_iter()
            .find(|r| r.code() == code && *r != Reason::CertificateHold)
            .ok_or_else(|| {
                Problem::new(
                    Kind::BadRevocationReason,
                    format!("reason code {code} is not allowed (0-5, 9, 10)"),
                )
            })?,
    };
    let actor = match &req.account {
        Some(account) => {
            let ordered = store::order_of_certificate(&ca.core.db, &serial)
                .await?
                .is_some_and(|o| o.account_id == account.id);
            let same_org = account.org_id.is_some() && account.org_id == record.org_id;
            if !ordered && !same_org {
                return Err(Problem::unauthorized(
                    "this account may not revoke that certificate",
                ));
            }
            Actor::system(format!("acme-account:{}", account.id))
        }
        None => {
            let spki = PublicJwk::parse(&req.jwk)
                .map_err(|e| Problem::malformed(format!("the JWS key: {e}")))?
                .public_key()
                .spki_der();
            let fingerprint = kizuna_core::secret::hex(&kizuna_core::secret::sha256(&spki));
            if fingerprint != record.key_sha256 {
                return Err(Problem::unauthorized(
                    "the request is not signed by the certificate's key",
                ));
            }
            Actor::system(format!("cert-key:{serial}"))
        }
    };
    if record.status == kizuna_core::pki::CertStatus::Revoked {
        return Err(Problem::new(
            Kind::AlreadyRevoked,
            "the certificate is already revoked",
        ));
    }
    crate::revoke::revoke(&ca, &Selector::Serial(serial), reason, actor)
        .await
        .map_err(Problem::from)?;
    Ok(StatusCode::OK.into_response())
}
