//! Renewed My Number cards. A card's signature certificate is replaced when the card is
//! renewed (every five years, or after a move), and with it the identity Kizuna binds to one
//! account. J-LIS gives service providers the link between each old certificate and its
//! successor; an operator feeds those links here, and the new certificate's identity is
//! bound to the account the old one was bound to. Proofing with the renewed card then
//! raises that account, and is refused (audited) for any other.

use serde::Serialize;
use serde_json::json;

use kizuna_core::audit::{self, Actor, AuditEvent, Outcome};

use super::{AssuranceError, keyed_hash, x509_signature};
use crate::Idp;
use crate::store::assurance as store;

/// One old-to-new certificate link: the issuer as Kizuna reads it from the certificates (the
/// J-LIS signing CA's subject) and both serial numbers.
#[derive(Debug, Clone)]
pub struct CardRenewal {
    pub issuer: String,
    pub old_serial: String,
    pub new_serial: String,
}

/// What feeding the links did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RenewalReport {
    /// New certificates now bound to the account of their predecessor.
    pub renewed: usize,
    /// Links whose old certificate was never used here (nothing to carry over).
    pub not_bound: usize,
    /// Links already carried over (feeding a file twice changes nothing).
    pub already: usize,
    /// Links (1-based, in the order given) whose new certificate is already bound to another
    /// account: left as they are, for a person to look at.
    pub conflicts: Vec<usize>,
}

/// The issuer name of certificates the CA in `ca_pem` (PEM) issued, as proofing reads it:
/// the CA's subject.
pub fn issuer_name(ca_pem: &str) -> Result<String, AssuranceError> {
    use x509_cert::der::DecodePem;
    let ca = x509_cert::Certificate::from_pem(ca_pem.trim().as_bytes()).map_err(|e| {
        AssuranceError::Refused(format!("the issuing CA certificate is not PEM: {e}"))
    })?;
    Ok(ca.tbs_certificate().subject().to_string())
}

/// A serial number as the certificate's DER INTEGER bytes in lower-case hex (what proofing
/// records): hex digits with or without `:` or spaces, leading zeros dropped, and a `00`
/// put back in front when the top bit is set.
pub fn normalize_serial(text: &str) -> Result<String, AssuranceError> {
    let digits: String = text
        .chars()
        .filter(|c| !matches!(c, ':' | ' '))
        .collect::<String>()
        .to_ascii_lowercase();
    let digits = digits.strip_prefix("0x").unwrap_or(&digits);
    if digits.is_empty() || digits.len() > 42 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(AssuranceError::Refused(format!(
            "{text:?} is not a certificate serial number in hex"
        )));
    }
    let trimmed = digits.trim_start_matches('0');
    let even = if trimmed.len() % 2 == 1 {
        format!("0{trimmed}")
    } else {
        trimmed.to_string()
    };
    if even.is_empty() {
        return Ok("00".into());
    }
    let top_bit_set = u8::from_str_radix(&even[..1], 16).is_ok_and(|d| d >= 8);
    Ok(if top_bit_set {
        format!("00{even}")
    } else {
        even
    })
}

/// Carries each link's binding over to the new certificate, in one transaction, audited per
/// account (`assurance.binding_renewed`; a conflict as `assurance.binding_refused`).
pub async fn renew(
    idp: &Idp,
    actor: Actor,
    links: &[CardRenewal],
) -> Result<RenewalReport, AssuranceError> {
    let mut hashes = Vec::with_capacity(links.len());
    for link in links {
        let identity = |serial: &str| x509_signature::binding_identity(&link.issuer, serial);
        hashes.push((
            keyed_hash(idp, "binding", &identity(&link.old_serial)).await?,
            keyed_hash(idp, "binding", &identity(&link.new_serial)).await?,
        ));
    }
    let now = kizuna_core::time::now_unix();
    let mut report = RenewalReport::default();
    let mut events = Vec::new();
    let mut tx = idp.core.db.begin().await?;
    for (n, (old, new)) in hashes.iter().enumerate() {
        let Some(owner) = store::binding_owner(tx.conn(), old).await? else {
            report.not_bound += 1;
            continue;
        };
        match store::binding_owner(tx.conn(), new).await? {
            Some(current) if current == owner => report.already += 1,
            Some(other) => {
                report.conflicts.push(n + 1);
                events.push(
                    AuditEvent::new(
                        actor.clone(),
                        "assurance.binding_refused",
                        format!("user:{owner}"),
                    )
                    .outcome(Outcome::Denied)
                    .details(json!({"provider": x509_signature::ID, "renewed_card": true, "bound_to": other})),
                );
            }
            None => {
                store::insert_binding(tx.conn(), new, &owner, x509_signature::ID, now).await?;
                report.renewed += 1;
                events.push(
                    AuditEvent::new(
                        actor.clone(),
                        "assurance.binding_renewed",
                        format!("user:{owner}"),
                    )
                    .details(json!({"provider": x509_signature::ID})),
                );
            }
        }
    }
    let entries = audit::append_in(tx.conn(), &events).await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::normalize_serial;

    #[test]
    fn serials_are_read_as_their_der_bytes() {
        assert_eq!(normalize_serial("01:A2:ff").unwrap(), "01a2ff");
        assert_eq!(normalize_serial("0x8F00").unwrap(), "008f00");
        assert_eq!(normalize_serial("00008f00").unwrap(), "008f00");
        assert_eq!(normalize_serial("abc").unwrap(), "0abc");
        assert_eq!(normalize_serial("0").unwrap(), "00");
        assert!(normalize_serial("12g4").is_err());
        assert!(normalize_serial("").is_err());
    }
}
