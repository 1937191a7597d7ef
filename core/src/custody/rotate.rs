//! Re-sealing under a new key-encryption key (`kizuna kek rotate`): a [`Rotation`] opens each
//! sealed value with the KEKs the operator configured and seals it again under the new KEK.
//! Every owner of a sealed column re-seals its own rows through it, in the one transaction the
//! command holds, so a rotation is all or nothing; custody re-seals its own: the software keys
//! and the KEK check value.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::kek::{KEK_CHECK_KEY, check_aad};
use super::{CustodyError, Kek, KekId, KeyAlgorithm, Keyring, SoftwareBackend};
use crate::db::AnyConnection;

/// What a rotation did to one kind of sealed value.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Count {
    /// Opened with a configured KEK and sealed again under the new one.
    pub resealed: u64,
    /// Already under the new KEK (sealed by a replica that seals with it): left alone.
    pub already: u64,
    /// Changed or deleted by a running server while the rotation ran: left as that server
    /// wrote it.
    pub changed_meanwhile: u64,
}

/// One rotation in progress: the KEKs that open, the KEK that seals, and the tally.
pub struct Rotation {
    from: Keyring,
    to: Kek,
    counts: BTreeMap<&'static str, Count>,
    elsewhere: BTreeMap<String, u64>,
}

/// A value re-sealed under the new KEK, for its owner to store; say with
/// [`stored`](Resealed::stored) whether the row was still as read.
#[must_use = "store the re-sealed value and report it with stored()"]
pub struct Resealed<'r> {
    rotation: &'r mut Rotation,
    kind: &'static str,
    pub sealed: Vec<u8>,
}

impl Resealed<'_> {
    /// `updated`: the owner's compare-and-set found the row as it was read.
    pub fn stored(self, updated: bool) {
        let count = self.rotation.counts.entry(self.kind).or_default();
        if updated {
            count.resealed += 1;
        } else {
            count.changed_meanwhile += 1;
        }
    }
}

impl Rotation {
    /// Opens with `from` (the configured keyring), seals with `to`.
    pub fn new(from: Keyring, to: Kek) -> Rotation {
        Rotation {
            from,
            to,
            counts: BTreeMap::new(),
            elsewhere: BTreeMap::new(),
        }
    }

    pub fn new_kek_id(&self) -> KekId {
        self.to.id()
    }

    /// The configured KEKs' ids, the current one first.
    pub fn from_kek_ids(&self) -> Vec<KekId> {
        self.from.ids()
    }

    /// Re-seals a value sealed by [`KeyCustody::seal`](super::KeyCustody::seal) under
    /// `context`; `None` when it is already under the new KEK. `kind` names it in the report
    /// (`totp_seed`) and `what` in an error (`the TOTP seed of user …`).
    pub fn reseal_data(
        &mut self,
        kind: &'static str,
        context: &str,
        sealed: &[u8],
        what: &str,
    ) -> Result<Option<Resealed<'_>>, CustodyError> {
        self.reseal(kind, &SoftwareBackend::data_aad(context), sealed, what)
    }

    fn reseal(
        &mut self,
        kind: &'static str,
        aad: &[u8],
        sealed: &[u8],
        what: &str,
    ) -> Result<Option<Resealed<'_>>, CustodyError> {
        if self.to.open(aad, sealed).is_some() {
            self.counts.entry(kind).or_default().already += 1;
            return Ok(None);
        }
        let plain = self.from.open(aad, sealed).ok_or_else(|| {
            let ids: Vec<String> = self
                .from_kek_ids()
                .iter()
                .map(ToString::to_string)
                .collect();
            CustodyError::ResealFailed(what.to_string(), ids.join(", "))
        })?;
        let sealed = self.to.seal(aad, &plain);
        Ok(Some(Resealed {
            rotation: self,
            kind,
            sealed,
        }))
    }

    /// Values of each kind, by kind name.
    pub fn counts(&self) -> &BTreeMap<&'static str, Count> {
        &self.counts
    }

    /// Keys held by another backend (an HSM), by backend: the KEK does not protect them.
    pub fn held_elsewhere(&self) -> &BTreeMap<String, u64> {
        &self.elsewhere
    }

    /// How many values were sealed again.
    pub fn resealed(&self) -> u64 {
        self.counts.values().map(|c| c.resealed).sum()
    }
}

/// Re-seals custody's own sealed values in the caller's transaction: every software key's
/// material and the KEK check value. Keys in other backends (PKCS#11) hold only a reference
/// and are counted, not touched.
pub async fn reseal_keys(
    conn: &mut AnyConnection,
    rotation: &mut Rotation,
) -> Result<(), CustodyError> {
    let keys: Vec<(String, String, String, Vec<u8>)> =
        sqlx::query_as("SELECT id, algorithm, backend, material FROM keys ORDER BY id")
            .fetch_all(&mut *conn)
            .await?;
    for (id, algorithm, backend, material) in keys {
        if backend != "software" {
            *rotation.elsewhere.entry(backend).or_default() += 1;
            continue;
        }
        let algorithm: KeyAlgorithm = algorithm.parse()?;
        let aad = SoftwareBackend::aad(&id, algorithm);
        let what = format!("key {id}");
        if let Some(next) = rotation.reseal("software_key", &aad, &material, &what)? {
            let updated =
                sqlx::query("UPDATE keys SET material = $1 WHERE id = $2 AND material = $3")
                    .bind(&next.sealed)
                    .bind(&id)
                    .bind(&material)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
            next.stored(updated == 1);
        }
    }
    let check: Option<String> = sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
        .bind(KEK_CHECK_KEY)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(check) = check {
        let sealed = STANDARD
            .decode(&check)
            .map_err(|_| CustodyError::WrongKek)?;
        let what = "the KEK check value";
        if let Some(next) = rotation.reseal("kek_check", check_aad(), &sealed, what)? {
            let updated = sqlx::query("UPDATE meta SET value = $1 WHERE key = $2 AND value = $3")
                .bind(STANDARD.encode(&next.sealed))
                .bind(KEK_CHECK_KEY)
                .bind(&check)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            next.stored(updated == 1);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::custody::KeyBackend;

    #[test]
    fn a_rotation_reseals_what_the_old_kek_sealed_and_leaves_what_the_new_one_did() {
        let old = || Kek::from_bytes(&[1u8; 32]);
        let new = || Kek::from_bytes(&[2u8; 32]);
        let by_old = SoftwareBackend::new(old())
            .seal_data("totp:u", b"seed")
            .unwrap();
        let by_new = SoftwareBackend::new(new())
            .seal_data("totp:v", b"seed2")
            .unwrap();
        let mut rotation = Rotation::new(Keyring::from(old()), new());
        let next = rotation
            .reseal_data("totp_seed", "totp:u", &by_old, "u")
            .unwrap()
            .expect("re-sealed");
        let sealed = next.sealed.clone();
        next.stored(true);
        assert!(
            rotation
                .reseal_data("totp_seed", "totp:v", &by_new, "v")
                .unwrap()
                .is_none()
        );
        let only_new = SoftwareBackend::new(new());
        assert_eq!(only_new.open_data("totp:u", &sealed).unwrap(), b"seed");
        assert!(
            SoftwareBackend::new(old())
                .open_data("totp:u", &sealed)
                .is_none()
        );
        assert_eq!(
            rotation.counts()["totp_seed"],
            Count {
                resealed: 1,
                already: 1,
                changed_meanwhile: 0
            }
        );
        // A value no configured KEK opens stops the rotation, naming it.
        let stranger = SoftwareBackend::new(Kek::from_bytes(&[9u8; 32]))
            .seal_data("totp:w", b"x")
            .unwrap();
        let err = rotation
            .reseal_data("totp_seed", "totp:w", &stranger, "the TOTP seed of w")
            .err()
            .unwrap();
        assert!(err.to_string().contains("the TOTP seed of w"), "{err}");
    }
}
