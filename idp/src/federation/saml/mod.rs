//! SAML 2.0 upstream identity providers: Kizuna as a service provider in the Web Browser SSO
//! profile (SAML 2.0 Profiles §4.1), beside the OpenID Connect upstreams and with the same
//! ownership, approval, trust ceiling, claim mapping, account resolution and logout. The
//! AuthnRequest goes by HTTP-Redirect, the Response comes back by HTTP-POST to the ACS
//! (`acs`), logout goes both ways by HTTP-Redirect (`slo`). Metadata and logout messages
//! are read by `read`, responses checked by `verify` (XML signatures through a maintained
//! library, never hand-written canonicalization; `docs/federation.md` says which and why).
//! Kizuna's own side (entity id, keys, certificates, SP metadata) is `sp`; the messages it
//! sends are `messages`.

pub mod acs;
mod crypt;
mod dsig;
mod error;
mod keys;
mod messages;
pub mod read;
pub mod slo;
pub mod sp;
pub mod verify;
mod xml;

use axum::http::HeaderMap;

pub use sp::SamlSettings;

use super::FederationError;
use super::client::{Continuation, Started};
use super::pending::{self, Pending, Return};
use super::upstreams::{SamlIdp, Upstream};
use crate::Idp;

/// Sends the browser to the IdP with a signed AuthnRequest (HTTP-Redirect binding); its id
/// is stored as the pending authorization's nonce, which the answer must be `InResponseTo`,
/// and the `RelayState` names the pending authorization, bound to this browser.
pub(crate) async fn start(
    idp: &Idp,
    upstream: &Upstream,
    saml: &SamlSettings,
    continuation: &Continuation,
    headers: &HeaderMap,
) -> Result<Started, FederationError> {
    let key = signing_key(idp, upstream).await?;
    let request_id = messages::new_id();
    let relay_state = kizuna_core::secret::random_token();
    let xml = messages::authn_request(
        &request_id,
        kizuna_core::time::now_unix(),
        &saml.sso_url,
        &upstream.client_id,
        &sp::acs_url(idp, &upstream.alias),
        &upstream.acr_values,
    );
    let location =
        messages::redirect(&key, &saml.sso_url, "SAMLRequest", &xml, Some(&relay_state))?;
    let cookie = pending::pend(
        idp,
        Pending {
            state: &relay_state,
            upstream_id: &upstream.id,
            nonce: &request_id,
            pkce_verifier: "",
            continuation,
        },
        headers,
        Return::Post,
    )
    .await?;
    Ok(Started { location, cookie })
}

/// The largest IdP metadata document read (a federation's aggregate is not an upstream).
const MAX_METADATA_BYTES: usize = 256 * 1024;

/// Kizuna's SP signing key at this upstream, from custody.
async fn signing_key(
    idp: &Idp,
    upstream: &Upstream,
) -> Result<kizuna_core::custody::KeyHandle, FederationError> {
    let key_id = upstream
        .key_id
        .as_deref()
        .ok_or_else(|| FederationError::Invalid("the SAML upstream has no signing key".into()))?;
    Ok(idp.core.custody.get(key_id).await?)
}

/// Reads an IdP's metadata from `url` (HTTPS, or HTTP on loopback), with the upstream
/// request timeout and a size cap.
pub async fn fetch_metadata(idp: &Idp, url: &str) -> Result<Vec<u8>, FederationError> {
    super::upstreams::check_issuer(url)
        .map_err(|_| FederationError::Invalid("the metadata URL must be an https:// URL".into()))?;
    let fail = |e: String| {
        FederationError::Invalid(format!("the IdP metadata at {url} could not be read: {e}"))
    };
    let response = idp
        .federation
        .http()
        .get(url)
        .send()
        .await
        .map_err(|e| fail(super::discovery::chain(&e)))?;
    if !response.status().is_success() {
        return Err(fail(format!("answered {}", response.status())));
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| fail(super::discovery::chain(&e)))?;
    if body.len() > MAX_METADATA_BYTES {
        return Err(fail("the metadata is too large".into()));
    }
    Ok(body.to_vec())
}

/// A SAML IdP as its metadata at `url` describes it.
pub async fn idp_from_url(idp: &Idp, url: &str) -> Result<SamlIdp, FederationError> {
    let xml = fetch_metadata(idp, url).await?;
    Ok(SamlIdp {
        metadata: read::idp_metadata(&xml)?,
        metadata_url: Some(url.to_string()),
    })
}

/// The claim mapping a SAML upstream starts with: the address from `mail`, the name from
/// `displayName` (by FriendlyName; the `urn:oid` Names work as well).
pub fn default_claim_map() -> super::claims::ClaimMap {
    [("email", "mail"), ("name", "displayName")]
        .into_iter()
        .map(|(a, c)| (a.to_string(), c.to_string()))
        .collect()
}

#[cfg(test)]
#[path = "fuzz_seeds_tests.rs"]
mod fuzz_seeds_tests;
