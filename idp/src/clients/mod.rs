//! Relying parties (OAuth clients): registration (the rules live in `rules`), changes, and
//! lookup (`cache` keeps recent reads). Secrets are generated here with 256 bits of entropy,
//! shown once, and stored as SHA-256 hashes.

mod cache;
mod changes;
mod rules;

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use serde_json::json;

use kizuna_core::Core;
use kizuna_core::audit::{self, Actor, AuditEvent};
use kizuna_core::db::{AnyConnection, Db};
use kizuna_core::secret;

use crate::store::clients::{self as store, ClientRow, ClientUpdate};
use crate::store::{consents, grants};
use changes::change;
use rules::{Redirects, invalid, plan, plan_with};

pub use cache::{CACHE_TTL, ClientCache};
pub use changes::{ClientEdit, ClientStatus, edit, rotate_secret, set_status};
pub use rules::{check_redirect_uri, check_scope_token};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
    /// Mutual TLS with a certificate from a trusted CA naming the registered subject DN or
    /// SAN (RFC 8705 §2.1).
    TlsClientAuth,
    /// Mutual TLS with a self-signed certificate whose key is in the client's JWK Set
    /// (RFC 8705 §2.2).
    SelfSignedTlsClientAuth,
    None,
}

impl AuthMethod {
    pub const ALL: [AuthMethod; 6] = [
        AuthMethod::ClientSecretBasic,
        AuthMethod::ClientSecretPost,
        AuthMethod::PrivateKeyJwt,
        AuthMethod::TlsClientAuth,
        AuthMethod::SelfSignedTlsClientAuth,
        AuthMethod::None,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
            AuthMethod::TlsClientAuth => "tls_client_auth",
            AuthMethod::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
            AuthMethod::None => "none",
        }
    }
    /// True for the mutual-TLS methods (RFC 8705 §2).
    pub fn uses_certificate(self) -> bool {
        matches!(
            self,
            AuthMethod::TlsClientAuth | AuthMethod::SelfSignedTlsClientAuth
        )
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
                "unknown auth method {s:?}: use client_secret_basic, client_secret_post, private_key_jwt, tls_client_auth, self_signed_tls_client_auth or none"
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
    /// RFC 8693: a service passes a resident's token on to another service, within what the
    /// resident consented to.
    #[serde(rename = "urn:ietf:params:oauth:grant-type:token-exchange")]
    TokenExchange,
}

impl GrantType {
    pub const ALL: [GrantType; 5] = [
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
        GrantType::ClientCredentials,
        GrantType::DeviceCode,
        GrantType::TokenExchange,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
            GrantType::DeviceCode => "urn:ietf:params:oauth:grant-type:device_code",
            GrantType::TokenExchange => "urn:ietf:params:oauth:grant-type:token-exchange",
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
        let s = match s {
            "device_code" => GrantType::DeviceCode.as_str(),
            "token_exchange" | "token-exchange" => GrantType::TokenExchange.as_str(),
            s => s,
        };
        GrantType::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| ClientError::Invalid(format!(
                "unknown grant type {s:?}: use authorization_code, refresh_token, client_credentials, device_code or token_exchange"
            )))
    }
}

/// What a `tls_client_auth` client's certificate must name (RFC 8705 §2.1.2: exactly one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TlsMatch {
    pub kind: TlsMatchKind,
    pub value: String,
}

/// Which name of the certificate a `tls_client_auth` registration matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMatchKind {
    /// `tls_client_auth_subject_dn`: the subject DN (RFC 4514 text, compared exactly).
    SubjectDn,
    /// `tls_client_auth_san_dns`
    SanDns,
    /// `tls_client_auth_san_uri`
    SanUri,
    /// `tls_client_auth_san_ip`
    SanIp,
    /// `tls_client_auth_san_email`
    SanEmail,
}

impl TlsMatchKind {
    /// The SAN kind a certificate record names it by (`dns`, `uri`, `ip`, `email`).
    pub fn san_kind(self) -> Option<&'static str> {
        match self {
            TlsMatchKind::SubjectDn => None,
            TlsMatchKind::SanDns => Some("dns"),
            TlsMatchKind::SanUri => Some("uri"),
            TlsMatchKind::SanIp => Some("ip"),
            TlsMatchKind::SanEmail => Some("email"),
        }
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
    /// For `tls_client_auth`: the subject DN or SAN its certificate must name.
    pub tls_client_auth: Option<TlsMatch>,
    /// Access tokens bound to the client's certificate (RFC 8705 §3); always for the
    /// mutual-TLS methods.
    pub tls_client_certificate_bound_access_tokens: bool,
    pub id_token_alg: String,
    pub require_par: bool,
    pub require_consent: bool,
    /// The lowest authentication assurance level (1-3) every sign-in for this client must
    /// reach; 0 for no rule of its own.
    pub min_aal: u8,
    pub backchannel_logout_uri: Option<String>,
    pub status: ClientStatus,
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
        self.status == ClientStatus::Active
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
    pub tls_client_auth: Option<TlsMatch>,
    /// Ask for certificate-bound access tokens (with a mutual-TLS method they always are).
    pub certificate_bound: bool,
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
    client.status = status;
    client.client_id = secret::new_id();
    let client_secret = client.auth_method.uses_secret().then(secret::random_token);
    client.secret_hash = client_secret.as_deref().map(secret::token_hash);
    let mut tx = core.db.begin().await?;
    if let Some(org) = &client.org_id
        && !kizuna_core::orgs::exists_in(tx.conn(), org).await?
    {
        return Err(invalid(format!("no organization with id {org}")));
    }
    store::insert(tx.conn(), &to_row(&client)).await?;
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

pub(super) fn to_json<T: Serialize>(value: &T) -> String {
    // Vectors of strings and enums always serialize.
    serde_json::to_string(value).expect("serializable")
}

/// The client as stored.
fn to_row(c: &Client) -> ClientRow {
    ClientRow {
        id: c.client_id.clone(),
        name: c.name.clone(),
        description: c.description.clone(),
        org_id: c.org_id.clone(),
        secret_hash: c.secret_hash.clone(),
        auth_method: c.auth_method.as_str().to_string(),
        redirect_uris: to_json(&c.redirect_uris),
        post_logout_redirect_uris: to_json(&c.post_logout_redirect_uris),
        grant_types: to_json(&c.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>()),
        scopes: to_json(&c.scopes),
        jwks: c.jwks.as_ref().map(|j| j.to_string()),
        jwks_uri: c.jwks_uri.clone(),
        tls_client_auth: c.tls_client_auth.as_ref().map(to_json),
        certificate_bound: c.tls_client_certificate_bound_access_tokens as i64,
        id_token_alg: c.id_token_alg.clone(),
        require_par: c.require_par as i64,
        require_consent: c.require_consent as i64,
        backchannel_logout_uri: c.backchannel_logout_uri.clone(),
        status: c.status.as_str().to_string(),
        created_at: c.created_at,
        min_aal: c.min_aal as i64,
        version: c.version,
    }
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
            tls_client_auth: r
                .tls_client_auth
                .and_then(|t| serde_json::from_str(&t).ok()),
            tls_client_certificate_bound_access_tokens: r.certificate_bound != 0,
            id_token_alg: r.id_token_alg,
            require_par: r.require_par != 0,
            require_consent: r.require_consent != 0,
            min_aal: r.min_aal.clamp(0, 3) as u8,
            backchannel_logout_uri: r.backchannel_logout_uri,
            // An unknown stored status signs no one in.
            status: r.status.parse().unwrap_or(ClientStatus::Disabled),
            created_at: r.created_at,
            version: r.version,
            secret_hash: r.secret_hash,
        }
    }
}

/// The client with this id, as stored now.
pub async fn get(db: &Db, client_id: &str) -> Result<Option<Client>, sqlx::Error> {
    if client_id.len() > 128 {
        return Ok(None);
    }
    let mut conn = db.conn().await?;
    get_in(&mut conn, client_id).await
}

/// Every client, oldest first.
pub async fn list(db: &Db) -> Result<Vec<Client>, sqlx::Error> {
    Ok(store::list(db)
        .await?
        .into_iter()
        .map(Client::from)
        .collect())
}

/// Deletes a client: its grants are revoked and its consents and quota removed, in one
/// transaction.
pub async fn delete(core: &Core, actor: Actor, client_id: &str) -> Result<(), ClientError> {
    let now = kizuna_core::time::now_unix();
    let mut tx = core.db.begin().await?;
    if !store::delete(tx.conn(), client_id).await? {
        return Err(ClientError::NotFound(client_id.to_string()));
    }
    grants::revoke_for_client(tx.conn(), client_id, "client deleted", now).await?;
    consents::delete_for_client(tx.conn(), client_id).await?;
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
                ClientUpdate::RedirectUris(&to_json(&client.redirect_uris)),
            )
            .await?;
        }
        None => {
            store::insert(tx.conn(), &to_row(&client)).await?;
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

pub(super) async fn get_in(
    conn: &mut AnyConnection,
    client_id: &str,
) -> Result<Option<Client>, sqlx::Error> {
    Ok(store::find(conn, client_id).await?.map(Client::from))
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
