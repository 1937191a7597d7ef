//! OpenID Connect for Identity Assurance 1.0: `verified_claims` (§5) released in the ID
//! token and at UserInfo when the `claims` parameter asks for them (§6) and the client is
//! allowed them, and the discovery metadata that advertises them (§8).

use serde_json::{Map, Value, json};

use super::{ATTRIBUTES, EvidenceType, Record, current};
use crate::Idp;

/// The `verified_claims` requests of one member (`id_token` or `userinfo`) of the `claims`
/// parameter: an object or an array of objects (§6).
fn requests<'a>(claims: Option<&'a Value>, member: &str) -> Vec<&'a Map<String, Value>> {
    match claims
        .and_then(|c| c.get(member))
        .and_then(|m| m.get("verified_claims"))
    {
        Some(Value::Object(one)) => vec![one],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_object).collect(),
        _ => Vec::new(),
    }
}

/// True when a request's `verification.trust_framework` (with `value`/`values`) accepts ours.
fn framework_matches(request: &Map<String, Value>, ours: &str) -> bool {
    let Some(tf) = request
        .get("verification")
        .and_then(|v| v.get("trust_framework"))
        .and_then(Value::as_object)
    else {
        return true;
    };
    let mut listed: Vec<&str> = tf
        .get("values")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    listed.extend(tf.get("value").and_then(Value::as_str));
    listed.is_empty() || listed.contains(&ours)
}

/// The evidence summary of a record (§5.1.1.1): its type, how and when it was checked and
/// by whom it was issued; document and certificate numbers are never released.
fn evidence(record: &Record) -> Value {
    let time = kizuna_core::time::unix_to_rfc3339(record.evidence_time);
    match EvidenceType::parse(&record.evidence_type) {
        Some(EvidenceType::ElectronicSignature) => json!({
            "type": "electronic_signature",
            "signature_type": record.evidence_method,
            "issuer": record.evidence_issuer,
            "created_at": time,
        }),
        Some(EvidenceType::Document) => {
            let mut details = json!({"type": record.evidence_document});
            if let Some(issuer) = &record.evidence_issuer {
                details["issuer"] = json!({"name": issuer});
            }
            json!({
                "type": "document",
                "method": record.evidence_method,
                "time": time,
                "document_details": details,
            })
        }
        _ => {
            let mut e = json!({"type": record.evidence_type, "time": time});
            if let Some(method) = &record.evidence_method {
                e["method"] = json!(method);
            }
            if let Some(issuer) = &record.evidence_issuer {
                e["record"] = json!({"source": {"name": issuer}});
            }
            e
        }
    }
}

/// A claim value as released: `address` is the address object (§5.1.1 of OIDC Core).
fn claim_value(name: &str, value: &str) -> Value {
    if name == "address" {
        json!({"formatted": value})
    } else {
        json!(value)
    }
}

/// The `verified_claims` to release to `client_id` about `user_id` for one member of the
/// claims request, and the names released (for the audit entry). `None` — the claim is
/// left out, as §6 asks — when nothing was requested, the client may receive none of the
/// requested claims, or the person has no live proofing.
pub async fn release(
    idp: &Idp,
    client_id: &str,
    user_id: &str,
    claims_request: Option<&Value>,
    member: &str,
) -> Result<Option<(Value, Vec<String>)>, sqlx::Error> {
    let wanted = requests(claims_request, member);
    if wanted.is_empty() {
        return Ok(None);
    }
    let settings = idp.clients.assurance(&idp.core.db, client_id).await?;
    let allowed = &settings.verified_claims;
    if allowed.is_empty() {
        return Ok(None);
    }
    let mut conn = idp.core.db.conn().await?;
    let Some(record) = current(&mut conn, user_id).await? else {
        return Ok(None);
    };
    drop(conn);
    for request in wanted {
        if !framework_matches(request, &record.trust_framework) {
            continue;
        }
        let Some(asked) = request.get("claims").and_then(Value::as_object) else {
            continue;
        };
        let mut out = Map::new();
        for name in asked.keys() {
            if let Some(v) = record.attributes.get(name)
                && allowed.contains(name)
            {
                out.insert(name.clone(), claim_value(name, v));
            }
        }
        if out.is_empty() {
            continue;
        }
        let names: Vec<String> = out.keys().map(|k| format!("verified_claims.{k}")).collect();
        let verified = json!({
            "verification": {
                "trust_framework": record.trust_framework,
                "assurance_level": record.ial().name(),
                "time": kizuna_core::time::unix_to_rfc3339(record.verified_at),
                "verification_process": record.id,
                "evidence": [evidence(&record)],
            },
            "claims": out,
        });
        return Ok(Some((verified, names)));
    }
    Ok(None)
}

/// The discovery members for identity assurance (§8).
pub fn discovery(idp: &Idp) -> Value {
    json!({
        "verified_claims_supported": true,
        "trust_frameworks_supported": [idp.assurance.config.trust_framework],
        "evidence_supported": EvidenceType::ALL.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
        "documents_supported": ["idcard", "passport", "driving_permit", "residence_permit"],
        "documents_methods_supported": ["pipp"],
        "claims_in_verified_claims_supported": ATTRIBUTES,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_read_from_either_member_as_object_or_array() {
        let claims = json!({
            "id_token": {"verified_claims": {"claims": {"given_name": null}}},
            "userinfo": {"verified_claims": [{"claims": {"birthdate": null}}, 7]},
        });
        assert_eq!(requests(Some(&claims), "id_token").len(), 1);
        assert_eq!(requests(Some(&claims), "userinfo").len(), 1);
        assert!(requests(None, "userinfo").is_empty());
    }

    #[test]
    fn a_trust_framework_filter_must_name_ours() {
        let asks = |tf: Value| {
            json!({"verification": {"trust_framework": tf}})
                .as_object()
                .unwrap()
                .clone()
        };
        assert!(framework_matches(&asks(Value::Null), "nist_800_63A"));
        assert!(framework_matches(
            &asks(json!({"value": "nist_800_63A"})),
            "nist_800_63A"
        ));
        assert!(!framework_matches(
            &asks(json!({"values": ["eidas"]})),
            "nist_800_63A"
        ));
    }
}
