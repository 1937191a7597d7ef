//! Re-sealing the identity provider's KEK-sealed values under a new key-encryption key
//! (`kizuna kek rotate`): authenticator app seeds, upstream client secrets and the assurance
//! binding key, each by the module that seals it, in the caller's transaction.

use kizuna_core::custody::{CustodyError, Rotation};
use kizuna_core::db::AnyConnection;

/// Re-seals every value this crate sealed with `KeyCustody::seal`.
pub async fn reseal(conn: &mut AnyConnection, rotation: &mut Rotation) -> Result<(), CustodyError> {
    crate::mfa::totp::reseal(conn, rotation).await?;
    crate::federation::upstreams::reseal(conn, rotation).await?;
    crate::assurance::reseal_binding_key(conn, rotation).await
}
