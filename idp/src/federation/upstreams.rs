//! Upstream OpenID providers (OpenID Connect Discovery 1.0 issuers) that Kizuna brokers:
//! the client registration Kizuna holds there, what to ask for, how to read the answer,
//! and the trust ceiling. Each belongs to one organization. Secrets are sealed by key
//! custody; `private_key_jwt` keys live in custody and only sign.

use serde::Serialize;
use serde_json::json;

use kizuna_core::audit::{self, Actor, AuditEvent};
use kizuna_core::custody::KeyAlgorithm;
use kizuna_core::db::{AnyConnection, is_unique_violation};
use kizuna_core::secret;

use super::ceiling::{AcrMap, TrustCeiling};
use super::claims::{ClaimMap, default_map};
use super::{FederationError, clean_text};
use crate::Idp;

/// How Kizuna authenticates to the upstream's token endpoint (OpenID Connect Core §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    ClientSecretBasic,
    PrivateKeyJwt,
}

impl ClientAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuth::ClientSecretBasic => "client_secret_basic",
            ClientAuth::PrivateKeyJwt => "private_key_jwt",
        }
    }

    pub fn parse(text: &str) -> Result<ClientAuth, FederationError> {
        match text {
            "client_secret_basic" => Ok(ClientAuth::ClientSecretBasic),
            "private_key_jwt" => Ok(ClientAuth::PrivateKeyJwt),
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
    pub issuer: String,
    pub client_id: String,
    pub client_auth: ClientAuth,
    #[serde(skip)]
    pub(crate) client_secret: Option<Vec<u8>>,
    /// The custody key that signs `private_key_jwt` assertions.
    pub key_id: Option<String>,
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
        match &self.client_secret {
            Some(sealed) => {
                let plain = idp.core.custody.open(&secret_context(&self.id), sealed)?;
                Ok(Some(String::from_utf8_lossy(&plain).into_owned()))
            }
            None => Ok(None),
        }
    }
}

fn secret_context(id: &str) -> String {
    format!("upstream-client-secret:{id}")
}

/// What the operator gives to add an upstream.
#[derive(Debug, Clone)]
pub struct NewUpstream {
    pub alias: String,
    pub name: String,
    pub org_id: String,
    pub issuer: String,
    pub client_id: String,
    pub client_auth: ClientAuth,
    pub client_secret: Option<String>,
    /// For `private_key_jwt`: the key type to generate (P-256 unless the upstream wants RSA).
    pub key_algorithm: KeyAlgorithm,
    pub scopes: Vec<String>,
    pub acr_values: Vec<String>,
    pub claim_map: Option<ClaimMap>,
    pub acr_map: AcrMap,
    pub ceiling: TrustCeiling,
    pub jit: bool,
    pub email_domains: Vec<String>,
    pub propagate_logout: bool,
}

/// The scopes to ask for: `openid` first, then the others given, each once.
pub fn with_openid(scopes: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut all = vec!["openid".to_string()];
    for scope in scopes {
        if !all.contains(&scope) {
            all.push(scope);
        }
    }
    all
}

/// A claim mapping from `ATTRIBUTE=CLAIM` entries laid over `base`.
pub fn claim_map_from(entries: &[String], base: ClaimMap) -> Result<ClaimMap, FederationError> {
    let mut map = base;
    for entry in entries {
        let (attribute, claim) = super::claims::parse_mapping(entry).map_err(invalid)?;
        map.insert(attribute, claim);
    }
    Ok(map)
}

/// An acr mapping from `VALUE=AAL[:IAL]` entries.
pub fn acr_map_from(entries: &[String]) -> Result<AcrMap, FederationError> {
    entries
        .iter()
        .map(|e| super::ceiling::parse_acr_mapping(e).map_err(invalid))
        .collect()
}

/// A claim mapping as `ATTRIBUTE=CLAIM` entries (what [`claim_map_from`] reads).
pub fn claim_entries(map: &ClaimMap) -> Vec<String> {
    map.iter().map(|(a, c)| format!("{a}={c}")).collect()
}

/// An acr mapping as `VALUE=AAL:IAL` entries (what [`acr_map_from`] reads).
pub fn acr_entries(map: &AcrMap) -> Vec<String> {
    map.iter()
        .map(|(v, l)| format!("{v}={}:{}", l.aal, l.ial))
        .collect()
}

fn invalid(text: impl Into<String>) -> FederationError {
    FederationError::Invalid(text.into())
}

/// An issuer URL Kizuna may talk to: HTTPS, or plain HTTP on a loopback address (tests and
/// development), without query or fragment (OpenID Connect Discovery §2).
pub fn check_issuer(issuer: &str) -> Result<String, FederationError> {
    let url = url::Url::parse(issuer).map_err(|_| invalid("the issuer is not a URL"))?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
    if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
        return Err(invalid("the issuer must be an https:// URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("the issuer must not have a query or fragment"));
    }
    Ok(issuer.to_string())
}

fn check(new: &NewUpstream) -> Result<(), FederationError> {
    let alias_ok = (2..=32).contains(&new.alias.len())
        && new
            .alias
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !new.alias.starts_with('-');
    if !alias_ok {
        return Err(invalid(
            "the alias must be 2 to 32 lower-case letters, digits and '-'",
        ));
    }
    check_name(&new.name)?;
    check_issuer(&new.issuer)?;
    if new.client_id.is_empty() || new.client_id.len() > 255 {
        return Err(invalid("the client id must be 1 to 255 characters"));
    }
    match (new.client_auth, &new.client_secret) {
        (ClientAuth::ClientSecretBasic, None) => {
            return Err(invalid("client_secret_basic needs the client secret"));
        }
        (ClientAuth::PrivateKeyJwt, Some(_)) => {
            return Err(invalid("private_key_jwt uses a key, not a secret"));
        }
        _ => {}
    }
    check_requests(&new.scopes, &new.acr_values)?;
    check_domains(&new.email_domains)
}

fn check_name(name: &str) -> Result<(), FederationError> {
    if name.trim().is_empty() || name.chars().count() > 100 || clean_text(name, 100) != name {
        return Err(invalid("the name must be 1 to 100 characters"));
    }
    Ok(())
}

/// The scopes and `acr_values` sent upstream: single printable words, `openid` among them.
fn check_requests(scopes: &[String], acr_values: &[String]) -> Result<(), FederationError> {
    if !scopes.iter().any(|s| s == "openid") {
        return Err(invalid("the scopes must include openid"));
    }
    let token_ok =
        |t: &String| !t.is_empty() && t.len() <= 200 && t.bytes().all(|b| b.is_ascii_graphic());
    if !scopes.iter().all(token_ok) || !acr_values.iter().all(token_ok) {
        return Err(invalid("scopes and acr values are single printable words"));
    }
    Ok(())
}

fn check_domains(domains: &[String]) -> Result<(), FederationError> {
    for domain in domains {
        if !domain.contains('.')
            || domain.starts_with('.')
            || !domain
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        {
            return Err(invalid(format!(
                "{domain:?} is not an email domain (lower case)"
            )));
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
    idp.federation.check_provider(&new.issuer).await?;
    let id = secret::new_id();
    let client_secret = match &new.client_secret {
        Some(s) => Some(idp.core.custody.seal(&secret_context(&id), s.as_bytes())?),
        None => None,
    };
    let mut tx = idp.core.db.begin().await?;
    let key_id = match new.client_auth {
        ClientAuth::PrivateKeyJwt => Some(
            idp.core
                .custody
                .generate_in(tx.conn(), "upstream-client-assertion", new.key_algorithm)
                .await?
                .id()
                .to_string(),
        ),
        ClientAuth::ClientSecretBasic => None,
    };
    let upstream = Upstream {
        id,
        alias: new.alias,
        name: new.name,
        org_id: new.org_id,
        issuer: new.issuer,
        client_id: new.client_id,
        client_auth: new.client_auth,
        client_secret,
        key_id,
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
    insert(tx.conn(), &upstream).await?;
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
                }),
            ),
        ],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(upstream)
}

async fn insert(conn: &mut AnyConnection, u: &Upstream) -> Result<(), FederationError> {
    sqlx::query(
        "INSERT INTO upstreams (id, alias, name, org_id, issuer, client_id, client_auth, client_secret, key_id, \
         scopes, acr_values, claim_map, acr_map, max_ial, max_aal, jit, email_domains, propagate_logout, status, \
         created_at, updated_at, version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $20, $21)",
    )
    .bind(&u.id)
    .bind(&u.alias)
    .bind(&u.name)
    .bind(&u.org_id)
    .bind(&u.issuer)
    .bind(&u.client_id)
    .bind(u.client_auth.as_str())
    .bind(&u.client_secret)
    .bind(&u.key_id)
    .bind(to_json(&u.scopes))
    .bind(to_json(&u.acr_values))
    .bind(to_json(&u.claim_map))
    .bind(to_json(&u.acr_map))
    .bind(u.ceiling.max_ial as i64)
    .bind(u.ceiling.max_aal as i64)
    .bind(u.jit as i64)
    .bind(to_json(&u.email_domains))
    .bind(u.propagate_logout as i64)
    .bind(&u.status)
    .bind(u.created_at)
    .bind(u.version)
    .execute(conn)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            FederationError::AliasTaken(u.alias.clone())
        } else {
            FederationError::Storage(e)
        }
    })?;
    Ok(())
}

/// Settings as JSON text, for storage.
fn to_json(value: &impl Serialize) -> String {
    // Vectors and maps of strings and numbers always serialize.
    serde_json::to_string(value).expect("plain settings serialize")
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    alias: String,
    name: String,
    org_id: String,
    issuer: String,
    client_id: String,
    client_auth: String,
    client_secret: Option<Vec<u8>>,
    key_id: Option<String>,
    scopes: String,
    acr_values: String,
    claim_map: String,
    acr_map: String,
    max_ial: i64,
    max_aal: i64,
    jit: i64,
    email_domains: String,
    propagate_logout: i64,
    status: String,
    created_at: i64,
    version: i64,
}

const COLUMNS: &str = "id, alias, name, org_id, issuer, client_id, client_auth, client_secret, key_id, scopes, \
    acr_values, claim_map, acr_map, max_ial, max_aal, jit, email_domains, propagate_logout, status, created_at, version";

impl From<Row> for Upstream {
    fn from(r: Row) -> Upstream {
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
            status: r.status,
            created_at: r.created_at,
            version: r.version,
        }
    }
}

/// Every upstream, by alias.
pub async fn list(idp: &Idp) -> Result<Vec<Upstream>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM upstreams ORDER BY alias"))
        .fetch_all(idp.core.db.pool())
        .await?;
    Ok(rows.into_iter().map(Upstream::from).collect())
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
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM upstreams WHERE alias = $1 OR id = $1"
    ))
    .bind(alias_or_id)
    .fetch_optional(idp.core.db.pool())
    .await?;
    Ok(row.map(Upstream::from))
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
    sqlx::query(
        "UPDATE upstreams SET status = $1, updated_at = $2, version = version + 1 WHERE id = $3",
    )
    .bind(to.as_str())
    .bind(kizuna_core::time::now_unix())
    .bind(&upstream.id)
    .execute(tx.conn())
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
    check_requests(&next.scopes, &next.acr_values)?;
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
    let updated = sqlx::query(
        "UPDATE upstreams SET name = $1, client_secret = $2, scopes = $3, acr_values = $4, claim_map = $5, \
         acr_map = $6, max_ial = $7, max_aal = $8, jit = $9, email_domains = $10, propagate_logout = $11, \
         updated_at = $12, version = $13 WHERE id = $14 AND version = $15",
    )
    .bind(&next.name)
    .bind(&next.client_secret)
    .bind(to_json(&next.scopes))
    .bind(to_json(&next.acr_values))
    .bind(to_json(&next.claim_map))
    .bind(to_json(&next.acr_map))
    .bind(next.ceiling.max_ial as i64)
    .bind(next.ceiling.max_aal as i64)
    .bind(next.jit as i64)
    .bind(to_json(&next.email_domains))
    .bind(next.propagate_logout as i64)
    .bind(kizuna_core::time::now_unix())
    .bind(next.version)
    .bind(&next.id)
    .bind(current.version)
    .execute(tx.conn())
    .await?
    .rows_affected();
    if updated == 0 {
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

/// What to register at the upstream for Kizuna's client there.
#[derive(Debug, Clone, Serialize)]
pub struct Registration {
    pub redirect_uri: String,
    pub backchannel_logout_uri: String,
    pub post_logout_redirect_uri: String,
    /// Where the upstream reads the client-assertion key (private_key_jwt only).
    pub jwks_uri: Option<String>,
}

pub fn registration(idp: &Idp, upstream: &Upstream) -> Registration {
    Registration {
        redirect_uri: super::client::callback_url(idp),
        backchannel_logout_uri: idp.endpoint(&format!(
            "/federation/{}/backchannel-logout",
            upstream.alias
        )),
        post_logout_redirect_uri: idp.endpoint("/federation/logout/done"),
        jwks_uri: upstream
            .key_id
            .as_ref()
            .map(|_| idp.endpoint(&format!("/federation/{}/jwks", upstream.alias))),
    }
}

/// The public key of an upstream's client-assertion key as a JWK Set (for the upstream's
/// registration, or its `jwks_uri`).
pub async fn client_jwks(
    idp: &Idp,
    upstream: &Upstream,
) -> Result<Option<serde_json::Value>, FederationError> {
    let Some(key_id) = &upstream.key_id else {
        return Ok(None);
    };
    let key = idp.core.custody.get(key_id).await?;
    let mut jwk = key.public_key().jwk();
    jwk["kid"] = json!(key.public_key().thumbprint());
    jwk["use"] = json!("sig");
    jwk["alg"] = json!(key.algorithm().jws_alg());
    Ok(Some(json!({"keys": [jwk]})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(alias: &str, issuer: &str) -> NewUpstream {
        NewUpstream {
            alias: alias.into(),
            name: "City Hospital".into(),
            org_id: "org".into(),
            issuer: issuer.into(),
            client_id: "kizuna".into(),
            client_auth: ClientAuth::ClientSecretBasic,
            client_secret: Some("secret".into()),
            key_algorithm: KeyAlgorithm::P256,
            scopes: vec!["openid".into()],
            acr_values: Vec::new(),
            claim_map: None,
            acr_map: AcrMap::new(),
            ceiling: TrustCeiling::new(1, 1).unwrap(),
            jit: true,
            email_domains: vec!["hospital.example.jp".into()],
            propagate_logout: true,
        }
    }

    #[test]
    fn issuers_are_https_except_on_loopback() {
        assert!(check_issuer("https://login.hospital.example.jp").is_ok());
        assert!(check_issuer("http://127.0.0.1:4000").is_ok());
        assert!(check_issuer("http://localhost:4000").is_ok());
        assert!(check_issuer("http://login.hospital.example.jp").is_err());
        assert!(check_issuer("https://op.example/?tenant=1").is_err());
        assert!(check_issuer("not a url").is_err());
    }

    #[test]
    fn settings_are_checked_before_anything_is_fetched() {
        assert!(check(&new("hospital", "https://op.example")).is_ok());
        assert!(check(&new("Hospital", "https://op.example")).is_err());
        assert!(check(&new("-x", "https://op.example")).is_err());
        let mut no_openid = new("hospital", "https://op.example");
        no_openid.scopes = vec!["email".into()];
        assert!(check(&no_openid).is_err());
        let mut both = new("hospital", "https://op.example");
        both.client_auth = ClientAuth::PrivateKeyJwt;
        assert!(check(&both).is_err(), "a key, not a secret");
        let mut domain = new("hospital", "https://op.example");
        domain.email_domains = vec!["Hospital.example".into()];
        assert!(check(&domain).is_err());
    }
}
