//! Relying parties (OAuth clients): registration rules, storage, and lookup. Secrets are
//! generated here with 256 bits of entropy, shown once, and stored as SHA-256 hashes.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use kizuna_core::Core;
use kizuna_core::audit::{self, Actor, AuditEvent};
use kizuna_core::db::{AnyConnection, Db};
use kizuna_core::jose::PublicJwk;
use kizuna_core::secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
    None,
}

impl AuthMethod {
    pub const ALL: [AuthMethod; 4] = [
        AuthMethod::ClientSecretBasic,
        AuthMethod::ClientSecretPost,
        AuthMethod::PrivateKeyJwt,
        AuthMethod::None,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
            AuthMethod::None => "none",
        }
    }
    pub fn uses_secret(self) -> bool {
        matches!(
            self,
            AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost
        )
    }
}

impl FromStr for AuthMethod {
    type Err = ClientError;
    fn from_str(s: &str) -> Result<Self, ClientError> {
        AuthMethod::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| ClientError::Invalid(format!(
                "unknown auth method {s:?}: use client_secret_basic, client_secret_post, private_key_jwt or none"
            )))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum GrantType {
    #[serde(rename = "authorization_code")]
    AuthorizationCode,
    #[serde(rename = "refresh_token")]
    RefreshToken,
    #[serde(rename = "client_credentials")]
    ClientCredentials,
    #[serde(rename = "urn:ietf:params:oauth:grant-type:device_code")]
    DeviceCode,
}

impl GrantType {
    pub const ALL: [GrantType; 4] = [
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
        GrantType::ClientCredentials,
        GrantType::DeviceCode,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
            GrantType::DeviceCode => "urn:ietf:params:oauth:grant-type:device_code",
        }
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GrantType {
    type Err = ClientError;
    fn from_str(s: &str) -> Result<Self, ClientError> {
        let s = if s == "device_code" {
            GrantType::DeviceCode.as_str()
        } else {
            s
        };
        GrantType::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| ClientError::Invalid(format!(
                "unknown grant type {s:?}: use authorization_code, refresh_token, client_credentials or device_code"
            )))
    }
}

/// The scopes Kizuna itself defines.
pub const STANDARD_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

#[derive(Debug, Clone, Serialize)]
pub struct Client {
    pub client_id: String,
    pub name: String,
    pub description: Option<String>,
    pub org_id: Option<String>,
    pub auth_method: AuthMethod,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    pub scopes: Vec<String>,
    pub jwks: Option<serde_json::Value>,
    pub jwks_uri: Option<String>,
    pub id_token_alg: String,
    pub require_par: bool,
    pub require_consent: bool,
    /// The lowest authentication assurance level (1-3) every sign-in for this client must
    /// reach; 0 for no rule of its own.
    pub min_aal: u8,
    pub backchannel_logout_uri: Option<String>,
    pub status: String,
    pub created_at: i64,
    /// Counts edits, so an edit made on a stale copy can be refused.
    pub version: i64,
    #[serde(skip)]
    pub secret_hash: Option<String>,
}

impl Client {
    pub fn is_public(&self) -> bool {
        self.auth_method == AuthMethod::None
    }
    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Invalid(String),
    #[error("no client with id {0}")]
    NotFound(String),
    /// The client changed since the caller read it; here is the current one.
    #[error("the client was changed by someone else since it was read")]
    Stale(Box<Client>),
    #[error("storage failed: {0}")]
    Storage(#[from] sqlx::Error),
}

impl From<audit::AuditError> for ClientError {
    fn from(e: audit::AuditError) -> Self {
        ClientError::Invalid(format!("audit failed: {e}"))
    }
}

/// What a registration asks for; unset fields take defaults that fit the client kind.
#[derive(Debug, Clone, Default)]
pub struct NewClient {
    pub name: String,
    pub description: Option<String>,
    pub org_id: Option<String>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub public: bool,
    pub grant_types: Vec<GrantType>,
    pub auth_method: Option<AuthMethod>,
    pub scopes: Vec<String>,
    pub jwks: Option<serde_json::Value>,
    pub jwks_uri: Option<String>,
    pub id_token_alg: Option<String>,
    pub require_par: bool,
    pub require_consent: Option<bool>,
    pub backchannel_logout_uri: Option<String>,
    pub min_aal: u8,
}

/// A new client and, for secret-based methods, its secret (shown once).
#[derive(Debug, Clone, Serialize)]
pub struct CreatedClient {
    #[serde(flatten)]
    pub client: Client,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

fn invalid(message: impl Into<String>) -> ClientError {
    ClientError::Invalid(message.into())
}

/// A redirect URI: absolute, no fragment; `https`, `http` only on a loopback host (RFC 8252
/// §7.3), or a private-use scheme (`com.example.app:/cb`, RFC 8252 §7.1) for native apps.
pub fn check_redirect_uri(uri: &str, public: bool) -> Result<(), ClientError> {
    if uri.len() > 2048 {
        return Err(invalid("redirect URIs must be at most 2048 characters"));
    }
    if uri.contains('#') {
        return Err(invalid(format!(
            "redirect URI {uri:?} must not contain a fragment"
        )));
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(format!(
            "redirect URI {uri:?} contains spaces or control characters"
        )));
    }
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Err(invalid(format!("redirect URI {uri:?} is not absolute")));
    };
    match scheme {
        "https" => {
            let host = rest
                .strip_prefix("//")
                .map(|r| r.split(['/', '?']).next().unwrap_or(""));
            if host.is_none_or(str::is_empty) {
                return Err(invalid(format!("redirect URI {uri:?} has no host")));
            }
            Ok(())
        }
        "http" => {
            let host = rest
                .strip_prefix("//")
                .map(|r| r.split(['/', '?']).next().unwrap_or(""))
                .unwrap_or("");
            let host = host.rsplit_once(':').map_or(host, |(h, port)| {
                if port.chars().all(|c| c.is_ascii_digit()) {
                    h
                } else {
                    host
                }
            });
            if matches!(host, "127.0.0.1" | "[::1]" | "localhost") {
                Ok(())
            } else {
                Err(invalid(format!(
                    "redirect URI {uri:?} must use https (http only on a loopback address)"
                )))
            }
        }
        s if public
            && s.contains('.')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+')) =>
        {
            Ok(())
        }
        _ => Err(invalid(format!(
            "redirect URI {uri:?} must use https (or http on loopback, or a private-use scheme such as com.example.app: for native apps)"
        ))),
    }
}

/// A scope token (RFC 6749 §3.3): printable ASCII without space, `"` or `\`.
pub fn check_scope_token(scope: &str) -> Result<(), ClientError> {
    let ok = !scope.is_empty()
        && scope.len() <= 128
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!("{scope:?} is not a valid scope name")))
    }
}

fn check_jwks(jwks: &serde_json::Value) -> Result<(), ClientError> {
    let keys = jwks["keys"]
        .as_array()
        .ok_or_else(|| invalid("jwks must be a JWK Set: {\"keys\": [...]}"))?;
    if keys.is_empty() || keys.len() > 20 {
        return Err(invalid("jwks must hold between 1 and 20 keys"));
    }
    for key in keys {
        PublicJwk::parse(key).map_err(|e| invalid(format!("jwks: {e}")))?;
    }
    Ok(())
}

/// Which rule a client's redirect URIs follow.
#[derive(Clone, Copy)]
enum Redirects<'a> {
    /// A relying party: https, http only on loopback, private-use schemes for native apps.
    ThirdParty,
    /// A client Kizuna itself runs: anywhere under its own public URL, which the operator
    /// chose (plain HTTP included, for a development install on a host name).
    UnderPublicUrl(&'a str),
}

impl Redirects<'_> {
    fn check(self, uri: &str, public: bool) -> Result<(), ClientError> {
        match self {
            Redirects::ThirdParty => check_redirect_uri(uri, public),
            Redirects::UnderPublicUrl(base) => {
                if uri.starts_with(&format!("{}/", base.trim_end_matches('/')))
                    && !uri.contains('#')
                    && uri.len() <= 2048
                {
                    Ok(())
                } else {
                    Err(invalid(format!(
                        "a first-party redirect URI must be under the public URL, not {uri:?}"
                    )))
                }
            }
        }
    }
}

/// Applies defaults and checks every rule; returns the client to store (without id/secret).
fn plan(new: NewClient) -> Result<Client, ClientError> {
    plan_with(new, Redirects::ThirdParty)
}

fn plan_with(new: NewClient, redirects: Redirects) -> Result<Client, ClientError> {
    let name = new.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(invalid("the client name must be 1 to 200 characters"));
    }
    let auth_method = match (new.public, new.auth_method) {
        (true, None | Some(AuthMethod::None)) => AuthMethod::None,
        (true, Some(other)) => {
            return Err(invalid(format!(
                "a public client authenticates with none, not {}",
                other.as_str()
            )));
        }
        (false, Some(AuthMethod::None)) => {
            return Err(invalid("auth method none is for public clients (--public)"));
        }
        (false, Some(method)) => method,
        (false, None) if new.jwks.is_some() || new.jwks_uri.is_some() => AuthMethod::PrivateKeyJwt,
        (false, None) => AuthMethod::ClientSecretBasic,
    };
    let mut grant_types = new.grant_types.clone();
    if grant_types.is_empty() {
        grant_types = vec![GrantType::AuthorizationCode, GrantType::RefreshToken];
    }
    grant_types.dedup();
    if auth_method == AuthMethod::None && grant_types.contains(&GrantType::ClientCredentials) {
        return Err(invalid("client_credentials needs a confidential client"));
    }
    let needs_redirect = grant_types.contains(&GrantType::AuthorizationCode);
    if needs_redirect && new.redirect_uris.is_empty() {
        return Err(invalid(
            "authorization_code needs at least one redirect URI",
        ));
    }
    if new.redirect_uris.len() > 20 || new.post_logout_redirect_uris.len() > 20 {
        return Err(invalid("at most 20 redirect URIs"));
    }
    for uri in new
        .redirect_uris
        .iter()
        .chain(&new.post_logout_redirect_uris)
    {
        redirects.check(uri, new.public)?;
    }
    if let Some(uri) = &new.backchannel_logout_uri {
        check_redirect_uri(uri, false)?;
    }
    match (auth_method, &new.jwks, &new.jwks_uri) {
        (AuthMethod::PrivateKeyJwt, None, None) => {
            return Err(invalid(
                "private_key_jwt needs the client's keys: --jwks-uri (or a JWK Set)",
            ));
        }
        (_, Some(_), Some(_)) => return Err(invalid("give jwks or jwks_uri, not both")),
        (_, Some(jwks), None) => check_jwks(jwks)?,
        (_, None, Some(uri)) => check_redirect_uri(uri, false).map_err(|_| {
            invalid(format!(
                "jwks_uri {uri:?} must be an https URL (http only on loopback)"
            ))
        })?,
        _ => {}
    }
    let scopes = if new.scopes.is_empty() {
        STANDARD_SCOPES.iter().map(|s| s.to_string()).collect()
    } else {
        for scope in &new.scopes {
            check_scope_token(scope)?;
        }
        let mut scopes = new.scopes.clone();
        scopes.sort();
        scopes.dedup();
        scopes
    };
    let id_token_alg = new.id_token_alg.unwrap_or_else(|| "ES256".into());
    if !matches!(id_token_alg.as_str(), "ES256" | "RS256") {
        return Err(invalid("id_token_alg must be ES256 or RS256"));
    }
    let description = new
        .description
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty());
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 1000)
    {
        return Err(invalid("the description must be at most 1000 characters"));
    }
    if new.min_aal > 3 {
        return Err(invalid("min_aal must be 0 (none), 1, 2 or 3"));
    }
    Ok(Client {
        min_aal: new.min_aal,
        client_id: String::new(),
        name,
        description,
        org_id: new.org_id,
        auth_method,
        redirect_uris: new.redirect_uris,
        post_logout_redirect_uris: new.post_logout_redirect_uris,
        grant_types,
        scopes,
        jwks: new.jwks,
        jwks_uri: new.jwks_uri,
        id_token_alg,
        require_par: new.require_par,
        require_consent: new.require_consent.unwrap_or(true),
        backchannel_logout_uri: new.backchannel_logout_uri,
        status: "active".into(),
        version: 0,
        created_at: kizuna_core::time::now_unix(),
        secret_hash: None,
    })
}

/// Registers a client (and audits it) in one transaction.
pub async fn create(
    core: &Core,
    actor: Actor,
    new: NewClient,
) -> Result<CreatedClient, ClientError> {
    create_with_status(core, actor, new, ClientStatus::Active).await
}

/// Registers a client that starts `pending` (an organization administrator's registration,
/// which a city administrator approves) or `active`.
pub async fn create_with_status(
    core: &Core,
    actor: Actor,
    new: NewClient,
    status: ClientStatus,
) -> Result<CreatedClient, ClientError> {
    let mut client = plan(new)?;
    client.status = status.as_str().to_string();
    client.client_id = secret::new_id();
    let client_secret = client.auth_method.uses_secret().then(secret::random_token);
    client.secret_hash = client_secret.as_deref().map(secret::token_hash);
    let mut tx = core.db.begin().await?;
    if let Some(org) = &client.org_id {
        let exists: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM organizations WHERE id = $1")
            .bind(org)
            .fetch_one(tx.conn())
            .await?;
        if exists == 0 {
            return Err(invalid(format!("no organization with id {org}")));
        }
    }
    insert(tx.conn(), &client).await?;
    let entries = audit::append_in(
        tx.conn(),
        &[AuditEvent::new(
            actor,
            "client.create",
            format!("client:{}", client.client_id),
        )
        .details(json!({
            "name": client.name,
            "auth_method": client.auth_method.as_str(),
            "grant_types": client.grant_types,
            "redirect_uris": client.redirect_uris,
            "org_id": client.org_id,
            "min_aal": client.min_aal,
            "status": client.status,
        }))],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(CreatedClient {
        client,
        client_secret,
    })
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Vectors of strings and enums always serialize.
    serde_json::to_string(value).expect("serializable")
}

async fn insert(conn: &mut AnyConnection, c: &Client) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO clients (id, name, description, org_id, secret_hash, auth_method, redirect_uris, \
         post_logout_redirect_uris, grant_types, scopes, jwks, jwks_uri, id_token_alg, require_par, \
         require_consent, backchannel_logout_uri, status, created_at, updated_at, min_aal) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $18, $19)",
    )
    .bind(&c.client_id)
    .bind(&c.name)
    .bind(&c.description)
    .bind(&c.org_id)
    .bind(&c.secret_hash)
    .bind(c.auth_method.as_str())
    .bind(to_json(&c.redirect_uris))
    .bind(to_json(&c.post_logout_redirect_uris))
    .bind(to_json(&c.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>()))
    .bind(to_json(&c.scopes))
    .bind(c.jwks.as_ref().map(|j| j.to_string()))
    .bind(&c.jwks_uri)
    .bind(&c.id_token_alg)
    .bind(c.require_par as i64)
    .bind(c.require_consent as i64)
    .bind(&c.backchannel_logout_uri)
    .bind(&c.status)
    .bind(c.created_at)
    .bind(c.min_aal as i64)
    .execute(conn)
    .await?;
    Ok(())
}

const COLUMNS: &str = "id, name, description, org_id, secret_hash, auth_method, redirect_uris, \
    post_logout_redirect_uris, grant_types, scopes, jwks, jwks_uri, id_token_alg, require_par, \
    require_consent, backchannel_logout_uri, status, created_at, min_aal, version";

#[derive(sqlx::FromRow)]
struct ClientRow {
    id: String,
    name: String,
    description: Option<String>,
    org_id: Option<String>,
    secret_hash: Option<String>,
    auth_method: String,
    redirect_uris: String,
    post_logout_redirect_uris: String,
    grant_types: String,
    scopes: String,
    jwks: Option<String>,
    jwks_uri: Option<String>,
    id_token_alg: String,
    require_par: i64,
    require_consent: i64,
    backchannel_logout_uri: Option<String>,
    status: String,
    created_at: i64,
    min_aal: i64,
    version: i64,
}

impl From<ClientRow> for Client {
    fn from(r: ClientRow) -> Client {
        let list = |text: &str| serde_json::from_str::<Vec<String>>(text).unwrap_or_default();
        Client {
            client_id: r.id,
            name: r.name,
            description: r.description,
            org_id: r.org_id,
            auth_method: r
                .auth_method
                .parse()
                .unwrap_or(AuthMethod::ClientSecretBasic),
            redirect_uris: list(&r.redirect_uris),
            post_logout_redirect_uris: list(&r.post_logout_redirect_uris),
            grant_types: list(&r.grant_types)
                .iter()
                .filter_map(|g| g.parse().ok())
                .collect(),
            scopes: list(&r.scopes),
            jwks: r.jwks.and_then(|j| serde_json::from_str(&j).ok()),
            jwks_uri: r.jwks_uri,
            id_token_alg: r.id_token_alg,
            require_par: r.require_par != 0,
            require_consent: r.require_consent != 0,
            min_aal: r.min_aal.clamp(0, 3) as u8,
            backchannel_logout_uri: r.backchannel_logout_uri,
            status: r.status,
            created_at: r.created_at,
            version: r.version,
            secret_hash: r.secret_hash,
        }
    }
}

pub async fn get(db: &Db, client_id: &str) -> Result<Option<Client>, sqlx::Error> {
    if client_id.len() > 128 {
        return Ok(None);
    }
    let row: Option<ClientRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM clients WHERE id = $1"))
            .bind(client_id)
            .fetch_optional(db.pool())
            .await?;
    Ok(row.map(Client::from))
}

pub async fn list(db: &Db) -> Result<Vec<Client>, sqlx::Error> {
    let rows: Vec<ClientRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM clients ORDER BY created_at, id"
    ))
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(Client::from).collect())
}

/// Deletes a client: its grants are revoked and its consents and quota removed, in one
/// transaction.
pub async fn delete(core: &Core, actor: Actor, client_id: &str) -> Result<(), ClientError> {
    let now = kizuna_core::time::now_unix();
    let mut tx = core.db.begin().await?;
    let deleted = sqlx::query("DELETE FROM clients WHERE id = $1")
        .bind(client_id)
        .execute(tx.conn())
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(ClientError::NotFound(client_id.to_string()));
    }
    sqlx::query("UPDATE grants SET revoked_at = $1, revoked_reason = 'client deleted' WHERE client_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(client_id)
        .execute(tx.conn())
        .await?;
    for table in ["consents", "client_quotas"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE client_id = $1"))
            .bind(client_id)
            .execute(tx.conn())
            .await?;
    }
    let entries = audit::append_in(
        tx.conn(),
        &[AuditEvent::new(
            actor,
            "client.delete",
            format!("client:{client_id}"),
        )],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(())
}

/// Registers a public client that Kizuna itself runs (its admin console) under a fixed id,
/// or points an existing one at `redirect_uri`. Audited when created.
pub async fn ensure_first_party(
    core: &Core,
    client_id: &str,
    name: &str,
    redirect_uri: &str,
    min_aal: u8,
) -> Result<(), ClientError> {
    let mut client = plan_with(
        NewClient {
            name: name.to_string(),
            redirect_uris: vec![redirect_uri.to_string()],
            public: true,
            auth_method: Some(AuthMethod::None),
            grant_types: vec![GrantType::AuthorizationCode],
            scopes: vec!["openid".into(), "profile".into()],
            require_consent: Some(false),
            min_aal,
            ..NewClient::default()
        },
        Redirects::UnderPublicUrl(&core.public_url),
    )?;
    client.client_id = client_id.to_string();
    let mut tx = core.db.begin().await?;
    match get_in(tx.conn(), client_id).await? {
        Some(existing) if existing.redirect_uris == client.redirect_uris => return Ok(()),
        Some(_) => {
            change(
                tx.conn(),
                client_id,
                None,
                "redirect_uris = $4",
                &[to_json(&client.redirect_uris)],
            )
            .await?;
        }
        None => {
            insert(tx.conn(), &client).await?;
            let entries = audit::append_in(
                tx.conn(),
                &[AuditEvent::new(
                    Actor::system("kizuna"),
                    "client.create",
                    format!("client:{client_id}"),
                )
                .details(json!({"name": name, "first_party": true, "redirect_uris": client.redirect_uris}))],
            )
            .await?;
            tx.commit().await?;
            audit::publish(&entries);
            return Ok(());
        }
    }
    tx.commit().await?;
    Ok(())
}

async fn get_in(conn: &mut AnyConnection, client_id: &str) -> Result<Option<Client>, sqlx::Error> {
    let row: Option<ClientRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM clients WHERE id = $1"))
            .bind(client_id)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(Client::from))
}

/// A client's lifecycle: `pending` until approved, `active`, or `disabled`. Only active
/// clients can sign anyone in or get tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientStatus {
    Pending,
    Active,
    Disabled,
}

impl ClientStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientStatus::Pending => "pending",
            ClientStatus::Active => "active",
            ClientStatus::Disabled => "disabled",
        }
    }
}

/// What an edit of a registered client may change.
#[derive(Debug, Clone)]
pub struct ClientEdit {
    pub redirect_uris: Vec<String>,
    pub min_aal: u8,
    /// The version the editor read; the edit is refused when the client changed since.
    pub expected_version: i64,
}

/// Bumps the version of a client whose version is still `expected`, with `set` (SQL
/// assignments from `$3`) and `values`; the current client when someone else was first.
async fn change(
    conn: &mut AnyConnection,
    client_id: &str,
    expected: Option<i64>,
    set: &str,
    values: &[String],
) -> Result<Client, ClientError> {
    let sql = format!(
        "UPDATE clients SET {set}, version = version + 1, updated_at = $1 WHERE id = $2 AND ($3 IS NULL OR version = $3)"
    );
    let mut query = sqlx::query(&sql)
        .bind(kizuna_core::time::now_unix())
        .bind(client_id)
        .bind(expected);
    for value in values {
        query = query.bind(value);
    }
    let changed = query.execute(&mut *conn).await?.rows_affected();
    let client = get_in(conn, client_id)
        .await?
        .ok_or_else(|| ClientError::NotFound(client_id.to_string()))?;
    if changed == 0 {
        return Err(ClientError::Stale(Box::new(client)));
    }
    Ok(client)
}

/// Replaces a client's redirect URIs and required assurance level; audited.
/// Changes a client's redirect URIs and minimum level. With `review`, a change of either
/// sends an active client back to `pending` until a city administrator approves it again
/// (an organization administrator re-pointing a client they do not approve).
pub async fn edit(
    core: &Core,
    actor: Actor,
    client_id: &str,
    edit: ClientEdit,
    review: bool,
) -> Result<Client, ClientError> {
    if edit.min_aal > 3 {
        return Err(invalid("min_aal must be 0 (none), 1, 2 or 3"));
    }
    let current = get(&core.db, client_id)
        .await?
        .ok_or_else(|| ClientError::NotFound(client_id.to_string()))?;
    for uri in &edit.redirect_uris {
        check_redirect_uri(uri, current.is_public())?;
    }
    if edit.redirect_uris.is_empty() && current.allows(GrantType::AuthorizationCode) {
        return Err(invalid(
            "a client using the authorization code grant needs at least one redirect URI",
        ));
    }
    let changes_reach =
        edit.redirect_uris != current.redirect_uris || edit.min_aal != current.min_aal;
    let status = if review && changes_reach && current.status == ClientStatus::Active.as_str() {
        ClientStatus::Pending.as_str()
    } else {
        current.status.as_str()
    };
    let mut tx = core.db.begin().await?;
    let client = change(
        tx.conn(),
        client_id,
        Some(edit.expected_version),
        "redirect_uris = $4, min_aal = CAST($5 AS INTEGER), status = $6",
        &[
            to_json(&edit.redirect_uris),
            edit.min_aal.to_string(),
            status.to_string(),
        ],
    )
    .await?;
    let entries = audit::append_in(
        tx.conn(),
        &[AuditEvent::new(actor, "client.update", format!("client:{client_id}"))
            .details(json!({"redirect_uris": client.redirect_uris, "min_aal": client.min_aal, "status": client.status, "version": client.version}))],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(client)
}

/// Gives a confidential client a new secret (shown once); the old one stops working at once.
pub async fn rotate_secret(
    core: &Core,
    actor: Actor,
    client_id: &str,
) -> Result<String, ClientError> {
    let current = get(&core.db, client_id)
        .await?
        .ok_or_else(|| ClientError::NotFound(client_id.to_string()))?;
    if !current.auth_method.uses_secret() {
        return Err(invalid(format!(
            "client {client_id} authenticates with {}, not a secret",
            current.auth_method.as_str()
        )));
    }
    let secret = secret::random_token();
    let mut tx = core.db.begin().await?;
    change(
        tx.conn(),
        client_id,
        None,
        "secret_hash = $4",
        &[secret::token_hash(&secret)],
    )
    .await?;
    let entries = audit::append_in(
        tx.conn(),
        &[AuditEvent::new(
            actor,
            "client.rotate_secret",
            format!("client:{client_id}"),
        )],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(secret)
}

/// Moves a client to `to` (approve a pending one, disable, re-enable), audited as `action`.
/// Disabling revokes its grants.
pub async fn set_status(
    core: &Core,
    actor: Actor,
    client_id: &str,
    to: ClientStatus,
    action: &str,
) -> Result<Client, ClientError> {
    let mut tx = core.db.begin().await?;
    let client = change(
        tx.conn(),
        client_id,
        None,
        "status = $4",
        &[to.as_str().to_string()],
    )
    .await?;
    if to == ClientStatus::Disabled {
        sqlx::query("UPDATE grants SET revoked_at = $1, revoked_reason = 'client disabled' WHERE client_id = $2 AND revoked_at IS NULL")
            .bind(kizuna_core::time::now_unix())
            .bind(client_id)
            .execute(tx.conn())
            .await?;
    }
    let entries = audit::append_in(
        tx.conn(),
        &[
            AuditEvent::new(actor, action, format!("client:{client_id}"))
                .details(json!({"status": to.as_str()})),
        ],
    )
    .await?;
    tx.commit().await?;
    audit::publish(&entries);
    Ok(client)
}

/// True when `secret` is this client's secret (compared as hashes, in constant time).
pub fn secret_matches(client: &Client, secret: &str) -> bool {
    match &client.secret_hash {
        Some(stored) => {
            secret::constant_time_eq(stored.as_bytes(), secret::token_hash(secret).as_bytes())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web(name: &str) -> NewClient {
        NewClient {
            name: name.into(),
            redirect_uris: vec!["https://rp.city.example/cb".into()],
            ..NewClient::default()
        }
    }

    #[test]
    fn a_first_party_redirect_must_lie_under_the_public_url() {
        let console = |uri: &str| {
            plan_with(
                NewClient {
                    public: true,
                    redirect_uris: vec![uri.into()],
                    ..web("Console")
                },
                Redirects::UnderPublicUrl("http://kizuna.city.internal:8080/"),
            )
        };
        assert!(console("http://kizuna.city.internal:8080/admin/callback").is_ok());
        for bad in [
            "http://kizuna.city.internal:8080.evil.example/admin/callback",
            "http://kizuna.city.internal:8080/admin/callback#x",
            "https://rp.city.example/cb",
        ] {
            assert!(console(bad).is_err(), "{bad}");
        }
        assert!(
            plan(NewClient {
                redirect_uris: vec!["http://kizuna.city.internal:8080/admin/callback".into()],
                ..web("Third party")
            })
            .is_err(),
            "plain http on a host name is only for Kizuna's own clients"
        );
    }

    #[test]
    fn defaults_fit_the_client_kind() {
        let c = plan(web("Library")).unwrap();
        assert_eq!(c.auth_method, AuthMethod::ClientSecretBasic);
        assert_eq!(
            c.grant_types,
            vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
        );
        assert!(c.scopes.contains(&"openid".to_string()));
        let public = plan(NewClient {
            public: true,
            ..web("App")
        })
        .unwrap();
        assert_eq!(public.auth_method, AuthMethod::None);
        let jwt = plan(NewClient {
            jwks_uri: Some("https://rp.example/jwks".into()),
            ..web("Gov")
        })
        .unwrap();
        assert_eq!(jwt.auth_method, AuthMethod::PrivateKeyJwt);
    }

    #[test]
    fn redirect_uris_follow_rfc_8252() {
        for ok in [
            "https://rp.example/cb",
            "http://127.0.0.1:8080/cb",
            "http://localhost/cb",
            "http://[::1]:9/cb",
        ] {
            check_redirect_uri(ok, false).unwrap();
        }
        check_redirect_uri("jp.city.app:/oauth", true).unwrap();
        for bad in [
            "http://rp.example/cb",
            "https://rp.example/cb#frag",
            "/relative",
            "https:///nohost",
            "jp.city.app:/oauth",
            "javascript:alert(1)",
            "https://rp.example/a b",
        ] {
            assert!(check_redirect_uri(bad, false).is_err(), "{bad}");
        }
        assert!(check_redirect_uri("javascript:alert(1)", true).is_err());
        assert!(check_redirect_uri("http://localhost.evil.example/cb", false).is_err());
    }

    #[test]
    fn inconsistent_registrations_are_refused() {
        assert!(
            plan(NewClient {
                redirect_uris: vec![],
                ..web("x")
            })
            .is_err()
        );
        assert!(
            plan(NewClient {
                public: true,
                grant_types: vec![GrantType::ClientCredentials],
                ..web("x")
            })
            .is_err()
        );
        assert!(
            plan(NewClient {
                auth_method: Some(AuthMethod::PrivateKeyJwt),
                ..web("x")
            })
            .is_err()
        );
        assert!(
            plan(NewClient {
                public: true,
                auth_method: Some(AuthMethod::ClientSecretBasic),
                ..web("x")
            })
            .is_err()
        );
        assert!(
            plan(NewClient {
                id_token_alg: Some("HS256".into()),
                ..web("x")
            })
            .is_err()
        );
        assert!(
            plan(NewClient {
                scopes: vec!["bad scope".into()],
                ..web("x")
            })
            .is_err()
        );
        assert!(
            plan(NewClient {
                jwks: Some(json!({"keys": [{"kty": "oct", "k": "AA"}]})),
                ..web("x")
            })
            .is_err()
        );
        let service = NewClient {
            name: "Sensor hub".into(),
            grant_types: vec![GrantType::ClientCredentials],
            ..NewClient::default()
        };
        assert!(
            plan(service).is_ok(),
            "client_credentials needs no redirect URI"
        );
    }
}

/// How long a replica may use a client record it read before reading it again. A change
/// made on one replica (disable, delete, new secret) reaches the others within this time.
pub const CACHE_TTL: Duration = Duration::from_secs(2);

/// Recently read clients, so the token endpoint does not read the same row on every call.
/// A cached lookup: the client (or that there is none) and when it was read.
type CachedClient = (Option<Arc<Client>>, Instant);

#[derive(Clone, Default)]
pub struct ClientCache {
    entries: Arc<Mutex<HashMap<String, CachedClient>>>,
}

impl ClientCache {
    /// The client with this id (`None` when unknown), from memory when fresh.
    pub async fn get(&self, db: &Db, client_id: &str) -> Result<Option<Arc<Client>>, sqlx::Error> {
        if let Some((client, at)) = self
            .entries
            .lock()
            .ok()
            .and_then(|e| e.get(client_id).cloned())
            && at.elapsed() < CACHE_TTL
        {
            return Ok(client);
        }
        self.fresh(db, client_id).await
    }

    /// The client as stored now (remembered for the steps that follow, such as the rest of
    /// one sign-in).
    pub async fn fresh(
        &self,
        db: &Db,
        client_id: &str,
    ) -> Result<Option<Arc<Client>>, sqlx::Error> {
        let client = get(db, client_id).await?.map(Arc::new);
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() > 10_000 {
                entries.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
            }
            entries.insert(client_id.to_string(), (client.clone(), Instant::now()));
        }
        Ok(client)
    }

    /// Forgets a client changed on this replica.
    pub fn forget(&self, client_id: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(client_id);
        }
    }
}
