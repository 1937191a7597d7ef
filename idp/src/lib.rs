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
mod background;
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
pub mod mtls;
pub mod pages;
pub mod password;
pub mod quota;
pub mod releases;
pub mod reseal;
pub mod revoke;
pub mod sessions;
mod state;
pub mod store;
pub mod throttle;
pub mod token;
pub mod tokens;
pub mod userinfo;
pub mod users;

/// Crate-private parsers of untrusted input, for the fuzz targets in `fuzz/` only.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};

    /// Reads a browser's passkey registration response as the account page does.
    pub fn webauthn_registration(
        response: &str,
    ) -> Result<RegisterPublicKeyCredential, crate::mfa::MfaError> {
        crate::mfa::webauthn::parse_response(response)
    }

    /// Reads a browser's passkey assertion as the second-factor and passwordless pages do.
    pub fn webauthn_assertion(response: &str) -> Result<PublicKeyCredential, crate::mfa::MfaError> {
        crate::mfa::webauthn::parse_response(response)
    }
}

use axum::Router;
use axum::routing::{get, post};

pub use assurance::AssuranceConfig;
pub use background::{init, spawn_background};
pub use config::OidcConfig;
pub use mfa::config::{MailConfig, MfaConfig};
pub use state::{Idp, IdpState};

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
            "/account/services/releases.csv",
            get(pages::services::export_csv),
        )
        .route(
            "/account/services/releases.json",
            get(pages::services::export_json),
        )
        .route(
            "/account/services/withdraw",
            post(pages::services::withdraw),
        )
        .route("/account/services/expiry", post(pages::services::shorten))
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
        .route("/federation/saml/{alias}/acs", post(pages::saml::acs))
        .route("/federation/saml/{alias}/slo", get(pages::saml::slo))
        .route(
            "/federation/saml/{alias}/metadata",
            get(pages::saml::metadata),
        )
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
