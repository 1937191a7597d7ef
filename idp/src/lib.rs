//! Kizuna's OpenID provider: discovery and JWKS, the authorization code flow with PKCE and
//! PAR, the token endpoint (authorization code, refresh token rotation, client credentials,
//! device code), UserInfo, introspection, revocation, RP-initiated and back-channel logout,
//! sign-in and consent pages, multi-factor authentication with step-up, the account page,
//! the account store, federation (brokering the stakeholders' own OpenID providers), and
//! identity assurance (proofing providers, verified claims).

// Page handlers return early with a finished response (`Err(Response)`); its size does not
// matter on that path.
#![allow(clippy::result_large_err)]

pub mod assurance;
pub mod auth;
pub mod authorize;
pub mod client_auth;
pub mod clients;
pub mod config;
pub mod consent;
pub mod device;
pub mod discovery;
pub mod error;
pub mod federation;
pub mod introspect;
pub mod keys;
pub mod login;
pub mod logout;
pub mod mfa;
pub mod pages;
pub mod password;
pub mod quota;
pub mod revoke;
pub mod sessions;
pub mod throttle;
pub mod token;
pub mod tokens;
pub mod userinfo;
pub mod users;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};

use kizuna_core::Core;

pub use assurance::AssuranceConfig;
pub use config::OidcConfig;
pub use mfa::config::{MailConfig, MfaConfig};

/// The identity provider's state. Cheap to clone (one reference count).
#[derive(Clone)]
pub struct Idp(Arc<IdpState>);

/// What the identity provider holds.
pub struct IdpState {
    pub core: Core,
    pub config: Arc<OidcConfig>,
    pub keys: keys::SigningKeys,
    pub http: reqwest::Client,
    pub remote_jwks: client_auth::RemoteJwks,
    pub clients: clients::ClientCache,
    pub quotas: quota::Quotas,
    /// The broker's client for upstream providers.
    pub federation: federation::Federation,
    pub mfa: Arc<MfaConfig>,
    pub passkeys: mfa::webauthn::Passkeys,
    /// The SMTP relay for notifications; `None` keeps mail in the outbox.
    pub mailer: Option<mfa::notify::Mailer>,
    pub mail_from: String,
    /// Proofing providers and identity assurance settings.
    pub assurance: Arc<assurance::Assurance>,
}

impl std::ops::Deref for Idp {
    type Target = IdpState;
    fn deref(&self) -> &IdpState {
        &self.0
    }
}

impl Idp {
    /// The provider over `core`. Fails when the `[mfa]`, `[mail]` or `[assurance]` settings
    /// cannot be used (an unreadable attestation root or trust anchor, a malformed relay).
    pub fn new(
        core: Core,
        config: OidcConfig,
        mfa: MfaConfig,
        mail: MailConfig,
        assurance: AssuranceConfig,
    ) -> Result<Idp, String> {
        let federation = federation::Federation::new(
            config.upstream_timeout_secs as u64,
            config.upstream_clock_skew_secs,
        );
        let config = Arc::new(config);
        let passkeys = mfa::webauthn::Passkeys::new(&core.public_url, &mfa)?;
        let mailer = mfa::notify::mailer(&mail)?;
        let assurance = Arc::new(assurance::Assurance::new(assurance)?);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("kizuna/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("HTTP client with static settings");
        Ok(Idp(Arc::new(IdpState {
            keys: keys::SigningKeys::new(core.clone(), config.clone()),
            core,
            config,
            http,
            remote_jwks: client_auth::RemoteJwks::default(),
            clients: clients::ClientCache::default(),
            quotas: quota::Quotas::default(),
            federation,
            mfa: Arc::new(mfa),
            passkeys,
            mailer,
            mail_from: mail.from,
            assurance,
        })))
    }

    /// The issuer identifier: the public URL.
    pub fn issuer(&self) -> &str {
        &self.core.public_url
    }

    /// The absolute URL of one of this provider's endpoints.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.core.public_url)
    }
}

/// The identity provider's routes.
pub fn router(idp: Idp) -> Router {
    Router::new()
        .route("/", get(pages::home))
        .route(
            "/.well-known/openid-configuration",
            get(discovery::configuration),
        )
        .route("/jwks", get(discovery::jwks))
        .route("/authorize", get(authorize::get).post(authorize::post))
        .route("/authorize/resume", get(authorize::resume))
        .route("/par", post(authorize::par))
        .route("/token", post(token::endpoint))
        .route(
            "/userinfo",
            get(userinfo::endpoint).post(userinfo::endpoint),
        )
        .route("/introspect", post(introspect::endpoint))
        .route("/revoke", post(revoke::endpoint))
        .route(
            "/device_authorization",
            post(device::authorization_endpoint),
        )
        .route(
            "/device",
            get(pages::device::show).post(pages::device::enter),
        )
        .route("/device/decision", post(pages::device::decide))
        .route("/login", get(pages::login::show).post(pages::login::submit))
        .route("/login/passkey", post(pages::mfa::passwordless))
        .route("/login/mfa", get(pages::mfa::show).post(pages::mfa::submit))
        .route("/login/mfa/cancel", post(pages::mfa::cancel))
        .route("/assets/webauthn.js", get(pages::mfa::script))
        .route("/account", get(pages::account::show))
        .route("/account/passkeys/new", get(pages::account::new_passkey))
        .route("/account/passkeys", post(pages::account::add_passkey))
        .route(
            "/account/passkeys/remove",
            post(pages::account::remove_passkey),
        )
        .route("/account/totp/new", get(pages::account::new_totp))
        .route("/account/totp", post(pages::account::confirm_totp))
        .route("/account/totp/remove", post(pages::account::remove_totp))
        .route(
            "/account/recovery-codes",
            post(pages::account::regenerate_codes),
        )
        .route("/account/sessions/end", post(pages::account::end_session))
        .route("/account/services", get(pages::services::show))
        .route(
            "/account/services/withdraw",
            post(pages::services::withdraw),
        )
        .route(
            "/consent",
            get(pages::consent::show).post(pages::consent::submit),
        )
        .route(
            "/logout",
            get(pages::logout::start_get).post(pages::logout::start_post),
        )
        .route("/logout/confirm", post(pages::logout::confirm))
        .route(
            "/account/identity",
            get(assurance::pages::show).post(assurance::pages::edit_name),
        )
        .route("/account/identity/cancel", post(assurance::pages::cancel))
        .route("/account/identity/continue", get(assurance::pages::resume))
        .route(
            "/assurance/x509/challenge",
            post(assurance::x509_signature::challenge),
        )
        .route("/assurance/x509/start", post(assurance::pages::x509_start))
        .route(
            "/assurance/x509/verify",
            post(assurance::x509_signature::verify),
        )
        .route(
            "/assurance/webhook/{name}/start",
            post(assurance::pages::webhook_start),
        )
        .route(
            "/assurance/webhook/{name}/callback",
            post(assurance::webhook::callback),
        )
        .route(
            "/assurance/jpki-oidc/{alias}/start",
            post(assurance::jpki_oidc::start),
        )
        .route("/login/federated", post(pages::federation::start))
        .route("/federation/callback", get(pages::federation::callback))
        .route(
            "/federation/link",
            get(pages::federation::link_page).post(pages::federation::link),
        )
        .route(
            "/federation/link/cancel",
            post(pages::federation::cancel_link),
        )
        .route(
            "/federation/logout/done",
            get(pages::federation::logged_out),
        )
        .route(
            "/federation/{alias}/backchannel-logout",
            post(pages::federation::backchannel_logout),
        )
        .route(
            "/federation/{alias}/jwks",
            get(pages::federation::client_jwks),
        )
        .route("/account/links/remove", post(pages::account::unlink))
        .with_state(idp)
}

/// Prepares the signing keys; call once at start-up.
pub async fn init(idp: &Idp) -> Result<(), keys::KeyError> {
    idp.keys.ensure("ES256").await
}

/// Background work every replica runs: scheduled key rotation, back-channel logout
/// delivery, and removal of expired rows.
pub fn spawn_background(idp: Idp) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        let mut round: u64 = 0;
        loop {
            tick.tick().await;
            logout::deliver_due(&idp).await;
            mfa::notify::deliver_due(&idp).await;
            if round.is_multiple_of(60) {
                if let Err(e) = idp.keys.rotate_due().await {
                    tracing::warn!(error = %e, "scheduled key rotation");
                }
                sweep(&idp).await;
            }
            round += 1;
        }
    })
}

/// Deletes rows that can no longer matter (expired codes, requests, replay records,
/// ceremonies, pending second steps, upstream authorizations and link requests, federated
/// sessions whose session is gone, mail older than 90 days that is done).
async fn sweep(idp: &Idp) {
    let Ok(Some(lock)) = idp.core.db.try_job_lock("oidc-sweep").await else {
        return;
    };
    let now = kizuna_core::time::now_unix();
    let day_ago = now - 86_400;
    for (sql, cutoff) in [
        (
            "DELETE FROM authorization_codes WHERE expires_at < $1",
            day_ago,
        ),
        ("DELETE FROM auth_requests WHERE expires_at < $1", day_ago),
        (
            "DELETE FROM client_assertion_jtis WHERE expires_at < $1",
            now,
        ),
        ("DELETE FROM revoked_tokens WHERE expires_at < $1", now),
        ("DELETE FROM device_codes WHERE expires_at < $1", day_ago),
        ("DELETE FROM throttle WHERE window_start < $1", day_ago),
        ("DELETE FROM refresh_tokens WHERE expires_at < $1", now),
        ("DELETE FROM sessions WHERE expires_at < $1", day_ago),
        ("DELETE FROM webauthn_ceremonies WHERE expires_at < $1", now),
        ("DELETE FROM mfa_pending WHERE expires_at < $1", now),
        (
            "DELETE FROM proofing_attempts WHERE expires_at < $1",
            day_ago,
        ),
        ("DELETE FROM proofing_result_ids WHERE expires_at < $1", now),
        (
            "DELETE FROM upstream_authorizations WHERE expires_at < $1",
            now,
        ),
        (
            "DELETE FROM federation_link_requests WHERE expires_at < $1",
            now,
        ),
        ("DELETE FROM federation_logouts WHERE expires_at < $1", now),
        (
            "DELETE FROM federated_sessions WHERE created_at < $1 AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.sid = federated_sessions.sid)",
            day_ago,
        ),
        (
            "DELETE FROM mail_outbox WHERE status <> 'queued' AND created_at < $1",
            now - 90 * 86_400,
        ),
    ] {
        if let Err(e) = sqlx::query(sql)
            .bind(cutoff)
            .execute(idp.core.db.pool())
            .await
        {
            tracing::warn!(error = %e, "sweeping expired rows");
        }
    }
    let _ = lock.release().await;
}
