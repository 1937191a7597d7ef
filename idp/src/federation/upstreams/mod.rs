//! Upstream OpenID providers (OpenID Connect Discovery 1.0 issuers) that Kizuna brokers:
//! the client registration Kizuna holds there, what to ask for, how to read the answer,
//! and the trust ceiling. Each belongs to one organization. Secrets are sealed by key
//! custody; `private_key_jwt` keys live in custody and only sign.

use serde::Serialize;
use serde_json::json;

use kizuna_core::audit::{self, Actor, AuditEvent};
use kizuna_core::custody::{CustodyError, Rotation};
use kizuna_core::db::{AnyConnection, is_unique_violation};
use kizuna_core::secret;

mod registration;
mod settings;

use super::FederationError;
use super::ceiling::{AcrMap, TrustCeiling};
use super::claims::{ClaimMap, default_map};
use super::saml::{SamlSettings, sp};
use crate::Idp;
use crate::store::federation::{self as store, UpstreamRow};
use settings::{check, check_domains, check_name, check_requests, invalid};

pub use registration::{Registration, SamlRegistration, client_jwks, registration};
pub use settings::{
    NewUpstream, SamlIdp, acr_entries, acr_map_from, check_issuer, claim_entries, claim_map_from,
    with_openid,
};

/// How Kizuna authenticates to the upstream's token endpoint (OpenID Connect Core §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    ClientSecretBasic,
    PrivateKeyJwt,
    /// A SAML upstream: Kizuna signs its requests with its SP key (`key_id`).
    Saml,
}

impl ClientAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuth::ClientSecretBasic => "client_secret_basic",
            ClientAuth::PrivateKeyJwt => "private_key_jwt",
            ClientAuth::Saml => "saml",
        }
    }

    pub fn parse(text: &str) -> Result<ClientAuth, FederationError> {
        match text {
            "client_secret_basic" => Ok(ClientAuth::ClientSecretBasic),
            "private_key_jwt" => Ok(ClientAuth::PrivateKeyJwt),
            "saml" => Ok(ClientAuth::Saml),
            other => Err(FederationError::Invalid(format!(
                "client authentication {other:?}: use client_secret_basic or private_key_jwt"
            ))),
        }
    }
}

/// A configured upstream.
#[derive(Debug, Clone, Serialize)]
pub struct Upstream {
    pub id: String,
    /// The short name in URLs and commands (`hospital`).
    pub alias: String,
    /// The name on the sign-in button.
    pub name: String,
    pub org_id: String,
    /// The OpenID issuer, or the SAML IdP's entity id.
    pub issuer: String,
    /// Kizuna's client id there, or its SAML SP entity id.
    pub client_id: String,
    pub client_auth: ClientAuth,
    /// The client secret, or a SAML upstream's SP decryption key (PKCS#8), sealed by custody.
    #[serde(skip)]
    pub(crate) client_secret: Option<Vec<u8>>,
    /// The custody key that signs `private_key_jwt` assertions, or SAML requests.
    pub key_id: Option<String>,
    /// What a SAML upstream has beyond the rest (`None`: an OpenID provider).
    pub saml: Option<SamlSettings>,
    pub scopes: Vec<String>,
    /// `acr_values` sent with every authorization request.
    pub acr_values: Vec<String>,
    pub claim_map: ClaimMap,
    pub acr_map: AcrMap,
    pub ceiling: TrustCeiling,
    /// First sign-ins may create an account (just-in-time provisioning).
    pub jit: bool,
    /// Email domains whose people sign in here (home-realm discovery).
    pub email_domains: Vec<String>,
    /// RP-initiated logout at Kizuna continues to the upstream's end-session endpoint.
    pub propagate_logout: bool,
    pub status: String,
    pub created_at: i64,
    /// Counts edits, so that a form loaded before another edit is refused.
    pub version: i64,
}

/// Where an upstream stands: offered at sign-in, waiting for a city administrator's
/// approval (one an organization administrator registered), or switched off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamStatus {
    Active,
    Pending,
    Disabled,
}

impl UpstreamStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamStatus::Active => "active",
            UpstreamStatus::Pending => "pending",
            UpstreamStatus::Disabled => "disabled",
        }
    }
}

impl Upstream {
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }

    /// The client secret, opened from custody.
    pub(crate) fn secret(&self, idp: &Idp) -> Result<Option<String>, FederationError> {
        Ok(self
            .secret_bytes(idp)?
            .map(|plain| String::from_utf8_lossy(&plain).into_owned()))
    }

    /// The sealed secret as bytes (a SAML upstream's SP decryption key).
    pub(crate) fn secret_bytes(&self, idp: &Idp) -> Result<Option<Vec<u8>>, FederationError> {
        match &self.client_secret {
            Some(sealed) => Ok(Some(
                idp.core.custody.open(&secret_context(&self.id), sealed)?,
            )),
            None => Ok(None),
        }
    }
}

fn secret_context(id: &str) -> String {
    format!("upstream-client-secret:{id}")
}

/// Seals every upstream's client secret again under the rotation's new KEK, in the caller's
/// transaction (`kizuna kek rotate`).
pub(crate) async fn reseal(
    conn: &mut AnyConnection,
    rotation: &mut Rotation,
) -> Result<(), CustodyError> {
    for (id, sealed) in store::sealed_client_secrets(conn).await? {
        let what = format!("the client secret of upstream {id}");
        let context = secret_context(&id);
        if let Some(next) =
            rotation.reseal_data("upstream_client_secret", &context, &sealed, &what)?
        {
            let updated = store::reseal_client_secret(conn, &id, &sealed, &next.sealed).await?;
            next.stored(updated);
        }
    }
    Ok(())
}

/// Adds an upstream: checks the settings, reads its discovery document (the issuer must
/// answer, match, and offer the code flow with S256), seals the secret or generates the
/// client-assertion key, stores and audits it in one transaction.
pub async fn create(
    idp: &Idp,
    actor: Actor,
    new: NewUpstream,
    status: UpstreamStatus,
) -> Result<Upstream, FederationError> {
    check(&new)?;
    if new.saml.is_none() {
        idp.federation.check_provider(&new.issuer).await?;
    }
    let id = secret::new_id();
    let mut client_secret = match &new.client_secret {
        Some(s) => Some(idp.core.custody.seal(&secret_context(&id), s.as_bytes())?),
        None => None,
    };
    let (mut issuer, mut client_id, mut saml) = (new.issuer, new.client_id, None);
    let mut tx = idp.core.db.begin().await?;
    let key_id = match (new.client_auth, new.saml) {
        (ClientAuth::PrivateKeyJwt, _) => Some(
            idp.core
                .custody
                .generate_in(tx.conn(), "upstream-client-assertion", new.key_algorithm)
                .await?
                .id()
                .to_string(),
        ),
        (ClientAuth::Saml, Some(given)) => {
            let keys = sp::generate(idp, tx.conn(), &new.alias).await?;
            client_secret = Some(
                idp.core
                    .custody
                    .seal(&secret_context(&id), &keys.decryption_key)?,
            );
            issuer = given.metadata.entity_id.clone();
            client_id = sp::entity_id(idp, &new.alias);
            saml = Some(SamlSettings::new(given, &keys));
            Some(keys.signing_key_id)
        }
        _ => None,
    };
    let upstream = Upstream {
        id,
        alias: new.alias,
        name: new.name,
        org_id: new.org_id,
        issuer,
        client_id,
        client_auth: new.client_auth,
        client_secret,
        key_id,
        saml,
        scopes: new.scopes,
        acr_values: new.acr_values,
        claim_map: new.claim_map.unwrap_or_else(default_map),
        acr_map: new.acr_map,
        ceiling: new.ceiling,
        jit: new.jit,
        email_domains: new.email_domains,
        propagate_logout: new.propagate_logout,
        status: status.as_str().into(),
        created_at: kizuna_core::time::now_unix(),
        version: 0,
    };
    store::insert_upstream(tx.conn(), &to_row(&upstream))
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                FederationError::AliasTaken(upstream.alias.clone())
            } else {
                FederationError::Storage(e)
            }
        })?;
    let entries = audit::append_in(
        tx.conn(),
        &[
            AuditEvent::new(actor, "upstream.add", format!("upstream:{}", upstream.id)).details(
                json!({
                    "alias": upstream.alias,
                    "org_id": upstream.org_id,
                    "issuer": upstream.issuer,
                    "client_id": upstream.client_id,
                    "client_auth": upstream.client_auth.as_str(),
                    "scopes": upstream.scopes,
                    "acr_values": upstream.acr_values,
                    "claim_map": upstream.claim_map,
                    "acr_map": upstream.acr_map,
                    "ceiling": upstream.ceiling,
                    "jit": upstream.jit,
                    "email_domains": upstream.email_domains,
                    "status": upstream.status,
                    "saml": upstream.saml.as_ref().map(|s| json!({
                        "sso_url": s.sso_url,
                        "slo_url": s.slo_url,
                        "metadata_url": s.metadata_url,
                        "idp_certificates": s.idp_certs.len(),
                    })),
                }),
            ),
        ],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(upstream)
}

/// The upstream as stored.
fn to_row(u: &Upstream) -> UpstreamRow {
    UpstreamRow {
        id: u.id.clone(),
        alias: u.alias.clone(),
        name: u.name.clone(),
        org_id: u.org_id.clone(),
        issuer: u.issuer.clone(),
        client_id: u.client_id.clone(),
        client_auth: u.client_auth.as_str().to_string(),
        client_secret: u.client_secret.clone(),
        key_id: u.key_id.clone(),
        saml: u.saml.as_ref().map(to_json),
        scopes: to_json(&u.scopes),
        acr_values: to_json(&u.acr_values),
        claim_map: to_json(&u.claim_map),
        acr_map: to_json(&u.acr_map),
        max_ial: u.ceiling.max_ial as i64,
        max_aal: u.ceiling.max_aal as i64,
        jit: u.jit as i64,
        email_domains: to_json(&u.email_domains),
        propagate_logout: u.propagate_logout as i64,
        status: u.status.clone(),
        created_at: u.created_at,
        version: u.version,
    }
}

/// Settings as JSON text, for storage.
fn to_json(value: &impl Serialize) -> String {
    // Vectors and maps of strings and numbers always serialize.
    serde_json::to_string(value).expect("plain settings serialize")
}

impl From<UpstreamRow> for Upstream {
    fn from(r: UpstreamRow) -> Upstream {
        fn parse<T: serde::de::DeserializeOwned + Default>(text: &str) -> T {
            serde_json::from_str(text).unwrap_or_default()
        }
        Upstream {
            client_auth: ClientAuth::parse(&r.client_auth).unwrap_or(ClientAuth::ClientSecretBasic),
            scopes: parse(&r.scopes),
            acr_values: parse(&r.acr_values),
            claim_map: parse(&r.claim_map),
            acr_map: parse(&r.acr_map),
            ceiling: TrustCeiling {
                max_ial: r.max_ial.clamp(1, 3) as u8,
                max_aal: r.max_aal.clamp(1, 3) as u8,
            },
            jit: r.jit != 0,
            email_domains: parse(&r.email_domains),
            propagate_logout: r.propagate_logout != 0,
            id: r.id,
            alias: r.alias,
            name: r.name,
            org_id: r.org_id,
            issuer: r.issuer,
            client_id: r.client_id,
            client_secret: r.client_secret,
            key_id: r.key_id,
            saml: r.saml.and_then(|s| serde_json::from_str(&s).ok()),
            status: r.status,
            created_at: r.created_at,
            version: r.version,
        }
    }
}

/// Every upstream, by alias.
pub async fn list(idp: &Idp) -> Result<Vec<Upstream>, sqlx::Error> {
    Ok(store::upstreams(&idp.core.db)
        .await?
        .into_iter()
        .map(Upstream::from)
        .collect())
}

/// The upstreams the sign-in page offers.
pub async fn active(idp: &Idp) -> Result<Vec<Upstream>, sqlx::Error> {
    Ok(list(idp)
        .await?
        .into_iter()
        .filter(Upstream::is_active)
        .collect())
}

/// One upstream by alias or id.
pub async fn find(idp: &Idp, alias_or_id: &str) -> Result<Option<Upstream>, sqlx::Error> {
    Ok(store::find_upstream(&idp.core.db, alias_or_id)
        .await?
        .map(Upstream::from))
}

/// The active upstream whose people have addresses at `email`'s domain.
pub async fn for_email(idp: &Idp, email: &str) -> Result<Option<Upstream>, sqlx::Error> {
    let email = email.trim().to_lowercase();
    let Some((_, domain)) = email.rsplit_once('@') else {
        return Ok(None);
    };
    Ok(active(idp)
        .await?
        .into_iter()
        .find(|u| u.email_domains.iter().any(|d| d == domain)))
}

/// Sets an upstream's status; audited as `upstream.approve` (pending to active),
/// `upstream.enable` or `upstream.disable`. A disabled or pending upstream is not offered,
/// and its callbacks and logout tokens are refused.
pub async fn set_status(
    idp: &Idp,
    actor: Actor,
    alias_or_id: &str,
    to: UpstreamStatus,
) -> Result<Upstream, FederationError> {
    let upstream = find(idp, alias_or_id)
        .await?
        .ok_or_else(|| FederationError::UnknownUpstream(alias_or_id.to_string()))?;
    let action = match to {
        UpstreamStatus::Active if upstream.status == UpstreamStatus::Pending.as_str() => {
            "upstream.approve"
        }
        UpstreamStatus::Active | UpstreamStatus::Pending => "upstream.enable",
        UpstreamStatus::Disabled => "upstream.disable",
    };
    let mut tx = idp.core.db.begin().await?;
    store::set_upstream_status(
        tx.conn(),
        &upstream.id,
        to.as_str(),
        kizuna_core::time::now_unix(),
    )
    .await?;
    let entries = audit::append_in(
        tx.conn(),
        &[
            AuditEvent::new(actor, action, format!("upstream:{}", upstream.id)).details(json!({
                "alias": upstream.alias,
                "from": upstream.status,
                "to": to.as_str(),
            })),
        ],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(Upstream {
        status: to.as_str().to_string(),
        version: upstream.version + 1,
        ..upstream
    })
}

/// An edit of an upstream's settings; `None` keeps what is there. The alias, issuer, client
/// id and client authentication method stay as registered (a different provider or
/// registration is a new upstream).
#[derive(Debug, Clone, Default)]
pub struct UpstreamEdit {
    /// The version the editor loaded; a newer one refuses the edit.
    pub expected_version: i64,
    pub name: Option<String>,
    /// A new client secret (client_secret_basic only).
    pub client_secret: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub acr_values: Option<Vec<String>>,
    pub claim_map: Option<ClaimMap>,
    pub acr_map: Option<AcrMap>,
    pub ceiling: Option<TrustCeiling>,
    pub jit: Option<bool>,
    pub email_domains: Option<Vec<String>>,
    pub propagate_logout: Option<bool>,
}

/// Edits an upstream: checks the settings as `create` does, refuses an edit made on an older
/// version (returning the current one), stores and audits it (what changed, never the
/// secret) in one transaction.
pub async fn edit(
    idp: &Idp,
    actor: Actor,
    id: &str,
    edit: UpstreamEdit,
) -> Result<Upstream, FederationError> {
    let current = find(idp, id)
        .await?
        .ok_or_else(|| FederationError::UnknownUpstream(id.to_string()))?;
    if current.version != edit.expected_version {
        return Err(FederationError::Stale(Box::new(current)));
    }
    if edit.client_secret.is_some() && current.client_auth != ClientAuth::ClientSecretBasic {
        return Err(invalid("private_key_jwt uses a key, not a secret"));
    }
    if edit.client_secret.as_deref().is_some_and(str::is_empty) {
        return Err(invalid("the new client secret is empty"));
    }
    let mut next = current.clone();
    let mut changed = serde_json::Map::new();
    macro_rules! apply {
        ($field:ident) => {
            if let Some(value) = edit.$field {
                if value != next.$field {
                    changed.insert(stringify!($field).into(), json!(value));
                    next.$field = value;
                }
            }
        };
    }
    apply!(name);
    apply!(scopes);
    apply!(acr_values);
    apply!(claim_map);
    apply!(acr_map);
    apply!(ceiling);
    apply!(jit);
    apply!(email_domains);
    apply!(propagate_logout);
    check_name(&next.name)?;
    if next.saml.is_none() {
        check_requests(&next.scopes, &next.acr_values)?;
    }
    check_domains(&next.email_domains)?;
    if let Some(secret) = &edit.client_secret {
        next.client_secret = Some(
            idp.core
                .custody
                .seal(&secret_context(&next.id), secret.as_bytes())?,
        );
        changed.insert("client_secret".into(), json!("replaced"));
    }
    next.version += 1;
    let mut tx = idp.core.db.begin().await?;
    let updated = store::update_upstream(
        tx.conn(),
        &to_row(&next),
        current.version,
        kizuna_core::time::now_unix(),
    )
    .await?;
    if !updated {
        drop(tx);
        let newer = find(idp, id)
            .await?
            .ok_or_else(|| FederationError::UnknownUpstream(id.to_string()))?;
        return Err(FederationError::Stale(Box::new(newer)));
    }
    let entries = audit::append_in(
        tx.conn(),
        &[
            AuditEvent::new(actor, "upstream.edit", format!("upstream:{}", next.id))
                .details(json!({"alias": next.alias, "version": next.version, "changed": changed})),
        ],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(next)
}
