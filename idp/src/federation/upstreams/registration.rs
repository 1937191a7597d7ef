//! What to register at an upstream for Kizuna: the redirect and logout URIs and the
//! client-assertion key of an OpenID upstream, or Kizuna's SP entity id and endpoints at a
//! SAML IdP.

use serde::Serialize;
use serde_json::json;

use super::{FederationError, Upstream};
use crate::Idp;
use crate::federation::saml::sp;

/// What to register at the upstream for Kizuna's client there.
#[derive(Debug, Clone, Serialize)]
pub struct Registration {
    pub redirect_uri: String,
    pub backchannel_logout_uri: String,
    pub post_logout_redirect_uri: String,
    /// Where the upstream reads the client-assertion key (private_key_jwt only).
    pub jwks_uri: Option<String>,
    /// What a SAML IdP registers instead (it reads all of it from the metadata URL).
    pub saml: Option<SamlRegistration>,
}

/// Kizuna as a SAML SP at one upstream.
#[derive(Debug, Clone, Serialize)]
pub struct SamlRegistration {
    pub entity_id: String,
    pub metadata_url: String,
    pub acs_url: String,
    pub slo_url: String,
}

pub fn registration(idp: &Idp, upstream: &Upstream) -> Registration {
    Registration {
        redirect_uri: crate::federation::client::callback_url(idp),
        backchannel_logout_uri: idp.endpoint(&format!(
            "/federation/{}/backchannel-logout",
            upstream.alias
        )),
        post_logout_redirect_uri: idp.endpoint("/federation/logout/done"),
        jwks_uri: upstream
            .key_id
            .as_ref()
            .filter(|_| upstream.saml.is_none())
            .map(|_| idp.endpoint(&format!("/federation/{}/jwks", upstream.alias))),
        saml: upstream.saml.as_ref().map(|_| SamlRegistration {
            entity_id: upstream.client_id.clone(),
            metadata_url: sp::entity_id(idp, &upstream.alias),
            acs_url: sp::acs_url(idp, &upstream.alias),
            slo_url: sp::slo_url(idp, &upstream.alias),
        }),
    }
}

/// The public key of an upstream's client-assertion key as a JWK Set (for the upstream's
/// registration, or its `jwks_uri`).
pub async fn client_jwks(
    idp: &Idp,
    upstream: &Upstream,
) -> Result<Option<serde_json::Value>, FederationError> {
    let Some(key_id) = upstream.key_id.as_ref().filter(|_| upstream.saml.is_none()) else {
        return Ok(None);
    };
    let key = idp.core.custody.get(key_id).await?;
    let mut jwk = key.public_key().jwk();
    jwk["kid"] = json!(key.public_key().thumbprint());
    jwk["use"] = json!("sig");
    jwk["alg"] = json!(key.algorithm().jws_alg());
    Ok(Some(json!({"keys": [jwk]})))
}
