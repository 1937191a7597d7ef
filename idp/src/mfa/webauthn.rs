//! Passkeys and security keys (WebAuthn Level 2) through webauthn-rs: registration of
//! discoverable credentials with user verification required, authentication as a second
//! factor (the account's own credentials) or passwordless (discoverable, with conditional
//! UI), ceremony state kept in the database so any replica finishes what another started,
//! and a credential whose signature counter goes backwards blocked as possibly cloned.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use webauthn_rs::prelude::*;

use kizuna_core::audit::{Actor, AuditEvent, Outcome};
use kizuna_core::db::{AnyConnection, is_unique_violation};
use kizuna_core::secret;

use super::config::MfaConfig;
use super::policy::Factor;
use super::{MfaError, audit_failure, commit_change, notify};
use crate::Idp;
use crate::store::mfa as store;

pub use crate::store::mfa::PasskeyInfo;

/// How long a ceremony (the options sent to the browser) stays usable.
const CEREMONY_TTL_SECS: i64 = 600;

/// The relying party: the webauthn-rs instance for this public URL, and the staff
/// authenticator allow-list.
pub struct Passkeys {
    webauthn: Option<Webauthn>,
    staff: Option<(AttestationCaList, Vec<Uuid>)>,
}

impl Passkeys {
    /// Builds the relying party. A public URL whose host is an IP address cannot have
    /// passkeys (WebAuthn needs a domain); they are then off and the pages say so.
    pub fn new(public_url: &str, config: &MfaConfig) -> Result<Passkeys, String> {
        let origin = Url::parse(public_url).map_err(|e| format!("public_url: {e}"))?;
        let rp_id = config
            .rp_id
            .clone()
            .or_else(|| origin.domain().map(str::to_string));
        let webauthn = rp_id.and_then(|rp_id| {
            WebauthnBuilder::new(&rp_id, &origin)
                .and_then(|b| b.rp_name(&config.rp_name).build())
                .map_err(|e| tracing::warn!(error = %e, rp_id, "passkeys are off: the relying party id does not fit public_url"))
                .ok()
        });
        if webauthn.is_none() {
            tracing::info!(
                "passkeys are off: public_url has no domain name (use a host name; localhost works for development)"
            );
        }
        let staff = if config.staff_authenticators.is_empty() {
            None
        } else {
            let mut builder = AttestationCaListBuilder::new();
            let mut aaguids = Vec::new();
            for a in &config.staff_authenticators {
                let aaguid =
                    Uuid::parse_str(&a.aaguid).map_err(|e| format!("aaguid {}: {e}", a.aaguid))?;
                let der = read_certificate(&a.ca_file)?;
                builder
                    .insert_device_der(&der, aaguid, a.name.clone(), BTreeMap::new())
                    .map_err(|e| format!("attestation root {}: {e:?}", a.ca_file.display()))?;
                aaguids.push(aaguid);
            }
            Some((builder.build(), aaguids))
        };
        Ok(Passkeys { webauthn, staff })
    }

    pub fn available(&self) -> bool {
        self.webauthn.is_some()
    }

    fn rp(&self) -> Result<&Webauthn, MfaError> {
        self.webauthn.as_ref().ok_or(MfaError::PasskeysUnavailable)
    }
}

fn read_certificate(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return Ok(bytes);
    };
    let Some(start) = text.find("-----BEGIN CERTIFICATE-----") else {
        return Ok(bytes);
    };
    let body = &text[start + 27..];
    let end = body
        .find("-----END CERTIFICATE-----")
        .ok_or_else(|| format!("{}: unterminated PEM", path.display()))?;
    let b64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD
        .decode(b64)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The WebAuthn user handle of an account: its id when that is a UUID (as Kizuna makes them),
/// else a stable hash of it.
pub fn user_handle(user_id: &str) -> Uuid {
    Uuid::parse_str(user_id).unwrap_or_else(|_| {
        let digest = secret::sha256(user_id.as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Uuid::from_bytes(bytes)
    })
}

/// The account's passkeys, oldest first.
pub async fn list(idp: &Idp, user_id: &str) -> Result<Vec<PasskeyInfo>, sqlx::Error> {
    store::passkeys(&idp.core.db, user_id).await
}

struct Stored {
    id: String,
    user_id: String,
    name: String,
    passkey: Passkey,
    hardware_bound: bool,
    possibly_cloned: bool,
}

async fn load_by_credential(
    conn: &mut AnyConnection,
    credential_id: &[u8],
) -> Result<Option<Stored>, MfaError> {
    let row = store::passkey_by_credential(conn, &URL_SAFE_NO_PAD.encode(credential_id)).await?;
    row.map(|found| {
        Ok(Stored {
            passkey: serde_json::from_str(&found.passkey)
                .map_err(|e| MfaError::Rejected(format!("stored passkey {}: {e}", found.id)))?,
            id: found.id,
            user_id: found.user_id,
            name: found.name,
            hardware_bound: found.hardware_bound,
            possibly_cloned: found.possibly_cloned,
        })
    })
    .transpose()
}

async fn user_passkeys(
    idp: &Idp,
    user_id: &str,
    hardware_only: bool,
) -> Result<Vec<Passkey>, MfaError> {
    Ok(store::usable_passkeys(&idp.core.db, user_id, hardware_only)
        .await?
        .into_iter()
        .filter_map(|json| serde_json::from_str(&json).ok())
        .collect())
}

// ---------------------------------------------------------------------------------------------
// Ceremony state

async fn keep_state<T: Serialize>(
    idp: &Idp,
    purpose: &str,
    user_id: Option<&str>,
    state: &T,
) -> Result<String, MfaError> {
    let id = secret::random_token();
    let now = kizuna_core::time::now_unix();
    let state = serde_json::to_string(state).map_err(|e| MfaError::Rejected(e.to_string()))?;
    store::insert_ceremony(
        &idp.core.db,
        &secret::token_hash(&id),
        purpose,
        user_id,
        &state,
        now,
        now + CEREMONY_TTL_SECS,
    )
    .await?;
    Ok(id)
}

/// Takes a ceremony's state (once: a second finish with the same ceremony fails).
async fn take_state<T: DeserializeOwned>(
    idp: &Idp,
    id: &str,
    purpose: &str,
    user_id: Option<&str>,
) -> Result<T, MfaError> {
    match store::take_ceremony(&idp.core.db, &secret::token_hash(id), purpose).await? {
        Some((state, owner, expires_at))
            if owner.as_deref() == user_id && expires_at > kizuna_core::time::now_unix() =>
        {
            serde_json::from_str(&state).map_err(|e| MfaError::Rejected(e.to_string()))
        }
        _ => Err(MfaError::Expired),
    }
}

fn parse<T: DeserializeOwned>(response: &str) -> Result<T, MfaError> {
    if response.len() > 64 * 1024 {
        return Err(MfaError::Rejected("the response is too large".into()));
    }
    serde_json::from_str(response)
        .map_err(|e| MfaError::Rejected(format!("malformed response: {e}")))
}

/// `parse`, for the fuzz targets.
#[cfg(feature = "fuzzing")]
pub(crate) fn parse_response<T: DeserializeOwned>(response: &str) -> Result<T, MfaError> {
    parse(response)
}

fn options_json<T: Serialize>(options: &T) -> String {
    serde_json::to_string(options).unwrap_or_default()
}

/// A flag webauthn-rs keeps inside the credential without an accessor (`backup_eligible`).
fn credential_flag(passkey: &Passkey, name: &str) -> bool {
    fn find(v: &Value, name: &str) -> Option<bool> {
        match v {
            Value::Object(map) => map
                .get(name)
                .and_then(Value::as_bool)
                .or_else(|| map.values().find_map(|x| find(x, name))),
            _ => None,
        }
    }
    serde_json::to_value(passkey)
        .ok()
        .and_then(|v| find(&v, name))
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------------------------
// Registration

/// Starts registering a passkey for the account. Returns the ceremony id and the options for
/// `navigator.credentials.create()`. Staff accounts must use an allowed, attested model
/// when an allow-list is configured.
pub async fn start_registration(
    idp: &Idp,
    user_id: &str,
    username: &str,
    display_name: &str,
    staff: bool,
) -> Result<(String, String), MfaError> {
    let rp = idp.passkeys.rp()?;
    let exclude: Vec<CredentialID> = user_passkeys(idp, user_id, false)
        .await?
        .iter()
        .map(|p| p.cred_id().clone())
        .collect();
    let handle = user_handle(user_id);
    let (options, id) = match (&idp.passkeys.staff, staff) {
        (Some((cas, _)), true) => {
            let (options, state) = rp
                .start_attested_passkey_registration(
                    handle,
                    username,
                    display_name,
                    Some(exclude),
                    cas.clone(),
                    None,
                )
                .map_err(|e| MfaError::Rejected(e.to_string()))?;
            (
                options,
                keep_state(idp, "register-attested", Some(user_id), &state).await?,
            )
        }
        _ => {
            let (options, state) = rp
                .start_passkey_registration(handle, username, display_name, Some(exclude))
                .map_err(|e| MfaError::Rejected(e.to_string()))?;
            (
                options,
                keep_state(idp, "register", Some(user_id), &state).await?,
            )
        }
    };
    // Passkeys are discoverable credentials, so they can sign in without a username.
    let mut options = serde_json::to_value(&options).unwrap_or_default();
    if let Some(selection) = options["publicKey"].get_mut("authenticatorSelection") {
        selection["residentKey"] = json!("required");
        selection["requireResidentKey"] = json!(true);
    }
    Ok((id, options_json(&options)))
}

/// Finishes a registration: verifies the browser's response against the ceremony and
/// stores the named passkey; audited and notified.
pub async fn finish_registration(
    idp: &Idp,
    user_id: &str,
    ceremony: &str,
    name: &str,
    response: &str,
) -> Result<PasskeyInfo, MfaError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(MfaError::InvalidName);
    }
    let rp = idp.passkeys.rp()?;
    let credential: RegisterPublicKeyCredential = parse(response)?;
    let refused = |e: WebauthnError| MfaError::Rejected(e.to_string());
    let attested_state: Result<AttestedPasskeyRegistration, MfaError> =
        take_state(idp, ceremony, "register-attested", Some(user_id)).await;
    let (passkey, attested, aaguid) = match attested_state {
        Ok(state) => {
            let attested = rp.finish_attested_passkey_registration(&credential, &state);
            let attested = match attested {
                Ok(a) => a,
                Err(e) => {
                    return Err(reject(idp, user_id, "mfa.passkey.register", refused(e)).await);
                }
            };
            let aaguid = match attested.attestation().metadata {
                AttestationMetadata::Packed { aaguid }
                | AttestationMetadata::Tpm { aaguid, .. } => Some(aaguid),
                _ => None,
            };
            let allowed = idp
                .passkeys
                .staff
                .as_ref()
                .is_some_and(|(_, list)| aaguid.is_some_and(|a| list.contains(&a)));
            if !allowed {
                return Err(reject(
                    idp,
                    user_id,
                    "mfa.passkey.register",
                    MfaError::AuthenticatorNotAllowed,
                )
                .await);
            }
            (Passkey::from(attested), true, aaguid.map(|a| a.to_string()))
        }
        Err(MfaError::Expired) => {
            let state: PasskeyRegistration =
                take_state(idp, ceremony, "register", Some(user_id)).await?;
            match rp.finish_passkey_registration(&credential, &state) {
                Ok(p) => (p, false, None),
                Err(e) => {
                    return Err(reject(idp, user_id, "mfa.passkey.register", refused(e)).await);
                }
            }
        }
        Err(other) => return Err(other),
    };
    let hardware_bound = attested || !credential_flag(&passkey, "backup_eligible");
    let info = PasskeyInfo {
        id: secret::new_id(),
        name: name.to_string(),
        hardware_bound: hardware_bound as i64,
        attested: attested as i64,
        possibly_cloned: 0,
        created_at: kizuna_core::time::now_unix(),
        last_used_at: None,
    };
    let mut tx = idp.core.db.begin().await?;
    let stored = serde_json::to_string(&passkey).map_err(|e| MfaError::Rejected(e.to_string()))?;
    store::insert_passkey(
        tx.conn(),
        user_id,
        &store::NewPasskey {
            info: &info,
            credential_id: &URL_SAFE_NO_PAD.encode::<&[u8]>(passkey.cred_id().as_ref()),
            passkey: &stored,
            aaguid: aaguid.as_deref(),
        },
    )
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            MfaError::Rejected("this passkey is already registered".into())
        } else {
            MfaError::Storage(e)
        }
    })?;
    commit_change(tx, AuditEvent::new(Actor::user(user_id), "mfa.passkey.register", format!("user:{user_id}"))
            .details(json!({"passkey": info.id, "name": info.name, "hardware_bound": hardware_bound, "attested": attested, "aaguid": aaguid})), user_id, notify::Change::PasskeyAdded {
            name: info.name.clone(),
        },).await?;
    Ok(info)
}

async fn reject(idp: &Idp, user_id: &str, action: &str, error: MfaError) -> MfaError {
    audit_failure(idp, user_id, action, &error.to_string(), Outcome::Failure).await;
    error
}

/// Removes one of the account's passkeys; audited and notified.
pub async fn remove(idp: &Idp, user_id: &str, passkey_id: &str) -> Result<bool, MfaError> {
    let mut tx = idp.core.db.begin().await?;
    let Some(name) = store::delete_passkey(tx.conn(), user_id, passkey_id).await? else {
        return Ok(false);
    };
    commit_change(
        tx,
        AuditEvent::new(
            Actor::user(user_id),
            "mfa.passkey.remove",
            format!("user:{user_id}"),
        )
        .details(json!({"passkey": passkey_id, "name": name})),
        user_id,
        notify::Change::PasskeyRemoved { name },
    )
    .await?;
    Ok(true)
}

// ---------------------------------------------------------------------------------------------
// Authentication

/// Starts a second-factor check with the account's passkeys (only hardware-bound ones when
/// AAL3 is needed). Returns the ceremony id and the options for `navigator.credentials.get()`.
pub async fn start_authentication(
    idp: &Idp,
    user_id: &str,
    hardware_only: bool,
) -> Result<(String, String), MfaError> {
    let rp = idp.passkeys.rp()?;
    let passkeys = user_passkeys(idp, user_id, hardware_only).await?;
    if passkeys.is_empty() {
        return Err(MfaError::NotEnrolled);
    }
    let (options, state) = rp
        .start_passkey_authentication(&passkeys)
        .map_err(|e| MfaError::Rejected(e.to_string()))?;
    let id = keep_state(idp, "authenticate", Some(user_id), &state).await?;
    Ok((id, options_json(&options)))
}

/// Finishes a second-factor check for `user_id`.
pub async fn finish_authentication(
    idp: &Idp,
    user_id: &str,
    ceremony: &str,
    response: &str,
) -> Result<Factor, MfaError> {
    let rp = idp.passkeys.rp()?;
    let credential: PublicKeyCredential = parse(response)?;
    let state: PasskeyAuthentication =
        take_state(idp, ceremony, "authenticate", Some(user_id)).await?;
    let mut conn = idp.core.db.conn().await?;
    let stored = load_by_credential(&mut conn, &credential.raw_id).await?;
    drop(conn);
    let Some(stored) = stored else {
        return Err(reject(
            idp,
            user_id,
            "mfa.passkey.verify",
            MfaError::Rejected("unknown passkey".into()),
        )
        .await);
    };
    if stored.user_id != user_id {
        return Err(foreign(idp, user_id, &stored).await);
    }
    let result = rp.finish_passkey_authentication(&credential, &state);
    verified(idp, stored, result).await
}

/// Starts a passwordless sign-in: any discoverable passkey of this site may answer.
pub async fn start_discoverable(idp: &Idp) -> Result<(String, String), MfaError> {
    let rp = idp.passkeys.rp()?;
    let (options, state) = rp
        .start_discoverable_authentication()
        .map_err(|e| MfaError::Rejected(e.to_string()))?;
    let id = keep_state(idp, "discover", None, &state).await?;
    Ok((id, options_json(&options)))
}

/// Finishes a passwordless sign-in; returns the account and the factor used.
pub async fn finish_discoverable(
    idp: &Idp,
    ceremony: &str,
    response: &str,
) -> Result<(String, Factor), MfaError> {
    let rp = idp.passkeys.rp()?;
    let credential: PublicKeyCredential = parse(response)?;
    let state: DiscoverableAuthentication = take_state(idp, ceremony, "discover", None).await?;
    let (handle, credential_id) = rp
        .identify_discoverable_authentication(&credential)
        .map_err(|e| MfaError::Rejected(e.to_string()))?;
    let mut conn = idp.core.db.conn().await?;
    let stored = load_by_credential(&mut conn, credential_id).await?;
    drop(conn);
    let Some(stored) = stored else {
        return Err(MfaError::Rejected(
            "this passkey is not registered here".into(),
        ));
    };
    if user_handle(&stored.user_id) != handle {
        // The authenticator claims an account the credential is not registered to.
        let claimed = handle.to_string();
        return Err(foreign(idp, &claimed, &stored).await);
    }
    let user_id = stored.user_id.clone();
    let result = rp.finish_discoverable_authentication_v2(&credential, state, &stored.passkey);
    let factor = verified(idp, stored, result).await?;
    Ok((user_id, factor))
}

async fn foreign(idp: &Idp, claimed_by: &str, stored: &Stored) -> MfaError {
    let event = AuditEvent::new(Actor::anonymous(), "mfa.passkey.verify", format!("user:{claimed_by}"))
        .outcome(Outcome::Denied)
        .details(json!({"reason": "credential of another account", "owner": stored.user_id, "passkey": stored.id}));
    if let Err(e) = idp.core.audit.record(event).await {
        tracing::error!(error = %e, "auditing a foreign passkey");
    }
    MfaError::ForeignCredential
}

/// After webauthn-rs checked the assertion: blocks a credential whose counter went
/// backwards, else records its use.
async fn verified(
    idp: &Idp,
    mut stored: Stored,
    result: Result<AuthenticationResult, WebauthnError>,
) -> Result<Factor, MfaError> {
    if stored.possibly_cloned {
        return Err(reject(
            idp,
            &stored.user_id,
            "mfa.passkey.verify",
            MfaError::PossiblyCloned,
        )
        .await);
    }
    let result = match result {
        Ok(r) => r,
        Err(WebauthnError::CredentialPossibleCompromise) => {
            block_cloned(idp, &stored).await?;
            return Err(MfaError::PossiblyCloned);
        }
        Err(e) => {
            return Err(reject(
                idp,
                &stored.user_id,
                "mfa.passkey.verify",
                MfaError::Rejected(e.to_string()),
            )
            .await);
        }
    };
    stored.passkey.update_credential(&result);
    let updated =
        serde_json::to_string(&stored.passkey).map_err(|e| MfaError::Rejected(e.to_string()))?;
    store::record_passkey_use(
        &idp.core.db,
        &stored.id,
        &updated,
        kizuna_core::time::now_unix(),
    )
    .await?;
    Ok(Factor::Passkey {
        hardware: stored.hardware_bound,
    })
}

async fn block_cloned(idp: &Idp, stored: &Stored) -> Result<(), MfaError> {
    let mut tx = idp.core.db.begin().await?;
    store::block_passkey(tx.conn(), &stored.id).await?;
    commit_change(tx, AuditEvent::new(Actor::system("webauthn"), "mfa.passkey.clone_suspected", format!("user:{}", stored.user_id))
            .outcome(Outcome::Denied)
            .details(json!({"passkey": stored.id, "name": stored.name, "reason": "signature counter did not increase"})), &stored.user_id, notify::Change::PasskeyBlocked {
            name: stored.name.clone(),
        },).await?;
    Ok(())
}

#[cfg(test)]
mod tests;
