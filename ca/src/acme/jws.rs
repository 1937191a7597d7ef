//! Request authentication (RFC 8555 §6.2–6.5): every POST is a flattened JWS whose protected
//! header names the algorithm, a fresh nonce, the exact request URL, and either the account
//! key (`jwk`, for new accounts and certificate-key revocation) or the account (`kid`).

use axum::http::{HeaderMap, header};
use serde::Deserialize;

use kizuna_core::jose::{JoseError, Jws};

use super::problem::{Kind, Problem};
use super::store::{self, Account};
use crate::Ca;

/// The JWS algorithms accounts may sign with.
pub const ALGORITHMS: &[&str] = &["ES256", "ES384", "RS256", "PS256", "EdDSA"];

/// Which key a request must be signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer {
    /// `jwk` in the header (newAccount).
    Jwk,
    /// `kid`: an existing, valid account.
    Account,
    /// Either (revokeCert).
    Either,
}

/// A verified request.
pub struct Signed {
    pub payload: Vec<u8>,
    /// The account, when the request was signed with `kid`.
    pub account: Option<Account>,
    /// The key that signed it.
    pub jwk: serde_json::Value,
}

impl Signed {
    /// The payload as JSON; POST-as-GET requests have none.
    pub fn json<T: for<'de> Deserialize<'de>>(&self) -> Result<T, Problem> {
        serde_json::from_slice(&self.payload).map_err(|e| {
            Problem::malformed(format!(
                "the JWS payload is not what this resource takes: {e}"
            ))
        })
    }

    /// The signing account (requests with `kid`).
    pub fn account(&self) -> Result<&Account, Problem> {
        self.account
            .as_ref()
            .ok_or_else(|| Problem::malformed("this request must be signed with the account (kid)"))
    }

    pub fn is_post_as_get(&self) -> bool {
        self.payload.is_empty()
    }
}

#[derive(Deserialize)]
struct Flattened {
    protected: String,
    payload: String,
    signature: String,
}

/// The largest JWS body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// Parses a flattened JWS without checking anything but its form.
pub fn parse(body: &[u8]) -> Result<Jws, Problem> {
    if body.len() > MAX_BODY {
        return Err(Problem::malformed("the request body is too large"));
    }
    let flat: Flattened = serde_json::from_slice(body).map_err(|_| {
        Problem::malformed("the body is not a flattened JWS (protected, payload, signature)")
    })?;
    Jws::parse(&format!(
        "{}.{}.{}",
        flat.protected, flat.payload, flat.signature
    ))
    .map_err(|e| Problem::malformed(format!("the JWS is malformed: {e}")))
}

fn jose_problem(e: JoseError) -> Problem {
    match e {
        JoseError::AlgorithmNotAllowed(alg) => Problem {
            algorithms: Some(ALGORITHMS),
            ..Problem::new(
                Kind::BadSignatureAlgorithm,
                format!("the JWS algorithm {alg:?} is not accepted"),
            )
        },
        JoseError::BadSignature => Problem::malformed("the JWS signature does not verify"),
        JoseError::BadKey(why) => Problem::malformed(format!("the JWS key is not usable: {why}")),
        other => Problem::malformed(format!("the JWS is malformed: {other}")),
    }
}

/// Verifies a request to `url` (absolute), consuming its nonce.
pub async fn verify(
    ca: &Ca,
    headers: &HeaderMap,
    body: &[u8],
    url: &str,
    signer: Signer,
) -> Result<Signed, Problem> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/jose+json"))
    {
        return Err(Problem::malformed("send requests as application/jose+json")
            .status(axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE));
    }
    let jws = parse(body)?;
    let alg = jws.header.alg.as_str();
    if alg.eq_ignore_ascii_case("none") || !ALGORITHMS.contains(&alg) {
        return Err(jose_problem(JoseError::AlgorithmNotAllowed(
            alg.to_string(),
        )));
    }
    if jws.header.url.as_deref() != Some(url) {
        return Err(Problem::unauthorized(format!(
            "the JWS url {:?} is not this request's URL ({url})",
            jws.header.url.as_deref().unwrap_or("")
        )));
    }
    let (account, jwk) = match (&jws.header.jwk, &jws.header.kid, signer) {
        (Some(_), Some(_), _) => {
            return Err(Problem::malformed("the JWS header has both jwk and kid"));
        }
        (Some(jwk), None, Signer::Jwk | Signer::Either) => (None, jwk.clone()),
        (None, Some(kid), Signer::Account | Signer::Either) => {
            let account = account_of_kid(ca, kid).await?;
            let jwk = account.jwk();
            (Some(account), jwk)
        }
        (_, _, Signer::Jwk) => {
            return Err(Problem::malformed(
                "this request must carry the account key (jwk)",
            ));
        }
        _ => {
            return Err(Problem::malformed(
                "this request must be signed with the account (kid)",
            ));
        }
    };
    jws.verify(&jwk, ALGORITHMS).map_err(jose_problem)?;
    let nonce = jws
        .header
        .nonce
        .as_deref()
        .ok_or_else(|| Problem::new(Kind::BadNonce, "the JWS has no nonce"))?;
    if !store::consume_nonce(&ca.core.db, nonce).await? {
        return Err(Problem::new(
            Kind::BadNonce,
            "the nonce is unknown, expired or already used: get a new one",
        ));
    }
    Ok(Signed {
        payload: jws.payload.clone(),
        account,
        jwk,
    })
}

/// The account a `kid` names; it must exist and be valid.
pub async fn account_of_kid(ca: &Ca, kid: &str) -> Result<Account, Problem> {
    let prefix = ca.url("/acme/account/");
    let id = kid.strip_prefix(&prefix).ok_or_else(|| {
        Problem::new(
            Kind::AccountDoesNotExist,
            format!("{kid} is not an account URL of this server"),
        )
    })?;
    let account = store::account(&ca.core.db, id)
        .await?
        .ok_or_else(|| Problem::new(Kind::AccountDoesNotExist, format!("no account {kid}")))?;
    if account.status != "valid" {
        return Err(Problem::unauthorized(format!(
            "the account is {}",
            account.status
        )));
    }
    Ok(account)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How a request was signed, whether its payload is JSON (POST-as-GET has none), and the
    /// key it verifies with: its own `jwk`, or a key of the fixed set (by kid) for `kid`.
    type Seen = (&'static str, bool, Vec<&'static str>);

    /// The committed `acme_jws` fuzz seeds (`fuzz/corpus/acme_jws/`), parsed as every ACME
    /// endpoint does first, then read and verified as the fuzz target does.
    #[test]
    fn acme_jws_fuzz_seeds_parse_and_verify() {
        let set: serde_json::Value = serde_json::from_str(kizuna_core::testing::FUZZ_JWKS).unwrap();
        let expected: [(&str, Result<Seen, String>); 5] = [
            ("key_change_rs256.json", Ok(("kid", true, vec!["rsa"]))),
            // Its payload carries an external account binding made with the fixed HMAC key.
            (
                "new_account_es256.json",
                Ok(("jwk", true, vec!["jwk", "ec", "eab"])),
            ),
            ("new_order_kid.json", Ok(("kid", true, vec!["ec"]))),
            ("post_as_get.json", Ok(("kid", false, vec!["ec"]))),
            (
                "revoke_eddsa_jwk.json",
                Ok(("jwk", true, vec!["jwk", "ed"])),
            ),
        ];
        kizuna_core::testing::check_fuzz_seeds(
            concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/acme_jws"),
            &expected,
            |body| {
                let jws = parse(body).map_err(|p| p.detail)?;
                assert!(jws.header.nonce.is_some() && jws.header.url.is_some());
                let claims = jws.claims::<serde_json::Value>();
                let mut by = Vec::new();
                let signer = match (&jws.header.jwk, &jws.header.kid) {
                    (Some(jwk), None) => {
                        kizuna_core::jose::thumbprint(jwk).map_err(|e| e.to_string())?;
                        if jws.verify(jwk, ALGORITHMS).is_ok() {
                            by.push("jwk");
                        }
                        "jwk"
                    }
                    (None, Some(_)) => "kid",
                    _ => return Err("neither jwk nor kid alone".to_string()),
                };
                for key in set["keys"].as_array().unwrap() {
                    if jws.verify(key, ALGORITHMS).is_ok() {
                        by.push(if key["kid"] == "ec" {
                            "ec"
                        } else if key["kid"] == "ed" {
                            "ed"
                        } else if key["kid"] == "rsa" {
                            "rsa"
                        } else {
                            "ec384"
                        });
                    }
                }
                if let Ok(eab) = claims.as_ref().map(|c| &c["externalAccountBinding"])
                    && !eab.is_null()
                {
                    let inner = parse(eab.to_string().as_bytes()).map_err(|p| p.detail)?;
                    if inner
                        .verify_hmac(kizuna_core::testing::FUZZ_HMAC_KEY)
                        .is_ok()
                        && inner.claims::<serde_json::Value>().ok() == jws.header.jwk
                    {
                        by.push("eab");
                    }
                }
                Ok((signer, claims.is_ok(), by))
            },
        );
    }
}
