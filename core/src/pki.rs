//! Certificates as every part of Kizuna names them: the serial number (parsed once, at the
//! edge), the status a certificate is in, the revocation reason (RFC 5280 §5.3.1), and
//! [`CertificateBook`], the interface through which the OCSP responder reads what the CA
//! holds without importing the CA or its tables.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A certificate serial number: lower-case hex of the integer's bytes, without leading zero
/// bytes. Parsed from any case, with or without `0x`, colons or spaces (as `openssl` and
/// browsers print it); at most 20 octets plus one (RFC 5280 §4.1.2.2, with a sign byte).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Serial(String);

impl Serial {
    /// The serial of an integer's big-endian bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Serial> {
        let significant = bytes
            .iter()
            .position(|b| *b != 0)
            .map_or(&bytes[bytes.len().saturating_sub(1)..], |i| &bytes[i..]);
        (!significant.is_empty() && significant.len() <= 21)
            .then(|| Serial(crate::secret::hex(significant)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The integer's big-endian bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        (0..self.0.len() / 2)
            .filter_map(|i| u8::from_str_radix(&self.0[2 * i..2 * i + 2], 16).ok())
            .collect()
    }
}

impl FromStr for Serial {
    type Err = String;
    fn from_str(text: &str) -> Result<Serial, String> {
        let trimmed = text.trim();
        let body = trimmed
            .strip_prefix("0x")
            .or_else(|| trimmed.strip_prefix("0X"))
            .unwrap_or(trimmed);
        let digits: String = body
            .chars()
            .filter(|c| !matches!(c, ':' | ' '))
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let refuse = || format!("{text:?} is not a certificate serial number (hex)");
        if digits.is_empty() || digits.len() > 64 || !digits.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(refuse());
        }
        let even = if digits.len() % 2 == 1 {
            format!("0{digits}")
        } else {
            digits
        };
        let bytes: Vec<u8> = (0..even.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&even[i..i + 2], 16))
            .collect::<Result<_, _>>()
            .map_err(|_| refuse())?;
        Serial::from_bytes(&bytes).ok_or_else(refuse)
    }
}

impl TryFrom<String> for Serial {
    type Error = String;
    fn try_from(text: String) -> Result<Serial, String> {
        text.parse()
    }
}

impl From<Serial> for String {
    fn from(serial: Serial) -> String {
        serial.0
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a certificate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertStatus {
    Valid,
    /// Suspended (`certificateHold`); can be released.
    Hold,
    Revoked,
}

impl CertStatus {
    pub const ALL: [CertStatus; 3] = [CertStatus::Valid, CertStatus::Hold, CertStatus::Revoked];

    pub fn as_str(self) -> &'static str {
        match self {
            CertStatus::Valid => "valid",
            CertStatus::Hold => "hold",
            CertStatus::Revoked => "revoked",
        }
    }
}

impl FromStr for CertStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<CertStatus, String> {
        CertStatus::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown certificate status {s:?}: use valid, hold or revoked"))
    }
}

/// A stored value that is not one of the type's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unknown(pub String);

impl TryFrom<String> for CertStatus {
    type Error = Unknown;
    fn try_from(text: String) -> Result<CertStatus, Unknown> {
        text.parse().map_err(Unknown)
    }
}

impl fmt::Display for CertStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A revocation reason (RFC 5280 §5.3.1 CRLReason), by its RFC name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Reason {
    Unspecified,
    KeyCompromise,
    CaCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
    CertificateHold,
    PrivilegeWithdrawn,
    AaCompromise,
}

impl Reason {
    pub const ALL: [Reason; 9] = [
        Reason::Unspecified,
        Reason::KeyCompromise,
        Reason::CaCompromise,
        Reason::AffiliationChanged,
        Reason::Superseded,
        Reason::CessationOfOperation,
        Reason::CertificateHold,
        Reason::PrivilegeWithdrawn,
        Reason::AaCompromise,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unspecified => "unspecified",
            Reason::KeyCompromise => "keyCompromise",
            Reason::CaCompromise => "cACompromise",
            Reason::AffiliationChanged => "affiliationChanged",
            Reason::Superseded => "superseded",
            Reason::CessationOfOperation => "cessationOfOperation",
            Reason::CertificateHold => "certificateHold",
            Reason::PrivilegeWithdrawn => "privilegeWithdrawn",
            Reason::AaCompromise => "aACompromise",
        }
    }

    /// The CRLReason code.
    pub fn code(self) -> u8 {
        match self {
            Reason::Unspecified => 0,
            Reason::KeyCompromise => 1,
            Reason::CaCompromise => 2,
            Reason::AffiliationChanged => 3,
            Reason::Superseded => 4,
            Reason::CessationOfOperation => 5,
            Reason::CertificateHold => 6,
            Reason::PrivilegeWithdrawn => 9,
            Reason::AaCompromise => 10,
        }
    }

    /// The reason of a CRLReason code (8, removeFromCRL, is not a reason to revoke).
    pub fn from_code(code: u8) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.code() == code)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Reason {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Reason::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!(
                    "unknown reason {s:?}: use {}",
                    Reason::ALL
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }
}

/// An issuing CA the OCSP responder answers for.
#[derive(Debug, Clone)]
pub struct IssuingCa {
    pub ca_id: String,
    pub cert_der: Vec<u8>,
    /// Its newest OCSP signer valid now, if any.
    pub signer: Option<OcspSigner>,
}

/// A delegated OCSP signing certificate and its key (in key custody).
#[derive(Debug, Clone)]
pub struct OcspSigner {
    pub serial: Serial,
    pub key_id: String,
    pub cert_der: Vec<u8>,
}

/// What the CA records about one certificate, for a status answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub status: CertStatus,
    /// When it was revoked or held (unix seconds).
    pub revoked_at: Option<i64>,
    pub reason: Option<Reason>,
}

/// One entry of the certificate change feed (issued, revoked, held, released).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub seq: i64,
    pub ca_id: String,
    pub serial: Serial,
    pub created_at: i64,
}

/// A certificate the CA issued, presented as a client credential (RFC 8705): who it names,
/// where it stands, and what its organization lets it ask for as a client of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub serial: Serial,
    pub status: CertStatus,
    /// When its status last changed (held, released, revoked), if ever.
    pub status_changed_at: Option<i64>,
    pub not_before: i64,
    pub not_after: i64,
    pub org_id: Option<String>,
    pub profile: String,
    /// The subject DN as stored (RFC 4514 text).
    pub subject: String,
    /// Subject alternative names as `(kind, value)`: `dns`, `ip`, `uri`, `email`.
    pub sans: Vec<(String, String)>,
    /// The registry device it belongs to, and whether that device may act now (active).
    pub device: Option<(String, bool)>,
    /// The scopes its organization lets it get as a client of its own (`client_credentials`
    /// with no separate registration); `None` when it may not.
    pub client_scopes: Option<Vec<String>>,
}

impl Credential {
    /// True when the certificate may authenticate now: valid status, within its validity.
    pub fn is_live(&self, now: i64) -> bool {
        self.status == CertStatus::Valid && self.not_before <= now && now <= self.not_after
    }
}

/// A certificate's status and when it last changed, for the tokens bound to it: a token
/// counts only while the certificate is valid and was issued after its last change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    pub status: CertStatus,
    pub status_changed_at: Option<i64>,
}

impl Binding {
    /// May a token issued at `issued_at` and bound to this certificate be used?
    pub fn admits(&self, issued_at: i64) -> bool {
        self.status == CertStatus::Valid && self.status_changed_at.is_none_or(|t| issued_at >= t)
    }
}

pub type BookFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, sqlx::Error>> + Send + 'a>>;

/// Read access to the CA's certificates for the OCSP responder (the CA implements it; the
/// responder never names the CA's tables).
pub trait CertificateBook: Send + Sync {
    /// Issuing CAs with a certificate, and each one's newest signer valid at `now`.
    fn issuing_cas(&self, now: i64) -> BookFuture<'_, Vec<IssuingCa>>;
    /// A certificate's standing; `None` for a serial the CA never issued.
    fn standing<'a>(
        &'a self,
        ca_id: &'a str,
        serial: &'a Serial,
    ) -> BookFuture<'a, Option<Standing>>;
    /// The standings of several of a CA's certificates in one read (serials it never issued
    /// are left out).
    fn standings<'a>(
        &'a self,
        ca_id: &'a str,
        serials: &'a [Serial],
    ) -> BookFuture<'a, Vec<(Serial, Standing)>>;
    /// Serials of a CA's certificates that have not expired at `now`.
    fn current_serials<'a>(&'a self, ca_id: &'a str, now: i64) -> BookFuture<'a, Vec<Serial>>;
    /// Changes after sequence number `after`, and every status change since `since` (unix
    /// seconds) however far back, in sequence order, at most `limit`.
    fn changes(&self, after: i64, since: i64, limit: i64) -> BookFuture<'_, Vec<Change>>;
    /// The oldest and newest sequence numbers the feed still holds (0, 0 when empty).
    fn change_bounds(&self) -> BookFuture<'_, (i64, i64)>;
    /// The certificate with exactly these DER bytes, if this CA issued it.
    fn credential<'a>(&'a self, der: &'a [u8]) -> BookFuture<'a, Option<Credential>>;
    /// Where certificate `serial` stands for the tokens bound to it (`None`: unknown).
    fn binding<'a>(&'a self, serial: &'a Serial) -> BookFuture<'a, Option<Binding>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_serial_is_read_in_any_common_spelling_and_stored_one_way() {
        let want = "729a8ea2c773c675c7d0c43fcb770c20";
        for text in [
            "729a8ea2c773c675c7d0c43fcb770c20",
            "729A8EA2C773C675C7D0C43FCB770C20",
            "0x729A8EA2C773C675C7D0C43FCB770C20",
            "72:9a:8e:a2:c7:73:c6:75:c7:d0:c4:3f:cb:77:0c:20",
            "00:72:9a:8e:a2:c7:73:c6:75:c7:d0:c4:3f:cb:77:0c:20",
            " 72 9a 8e a2 c7 73 c6 75 c7 d0 c4 3f cb 77 0c 20 ",
        ] {
            assert_eq!(text.parse::<Serial>().unwrap().as_str(), want, "{text}");
        }
        assert_eq!("1abc".parse::<Serial>().unwrap().as_str(), "1abc");
        assert_eq!("abc".parse::<Serial>().unwrap().as_str(), "0abc");
        assert_eq!("0".parse::<Serial>().unwrap().as_str(), "00");
        for bad in ["", "xyz", "12g4", "0x", &"ab".repeat(33), "12-34", "../etc"] {
            assert!(bad.parse::<Serial>().is_err(), "{bad:?}");
        }
        assert_eq!(
            Serial::from_bytes(&[0, 0, 1, 0xab]).unwrap().as_str(),
            "01ab"
        );
    }

    #[test]
    fn a_bound_token_counts_only_while_its_certificate_is_valid_and_after_its_last_change() {
        let valid = Binding {
            status: CertStatus::Valid,
            status_changed_at: None,
        };
        assert!(valid.admits(10));
        let released = Binding {
            status: CertStatus::Valid,
            status_changed_at: Some(100),
        };
        assert!(
            !released.admits(99),
            "a token from before a hold stays dead"
        );
        assert!(released.admits(100) && released.admits(101));
        for status in [CertStatus::Hold, CertStatus::Revoked] {
            let dead = Binding {
                status,
                status_changed_at: Some(100),
            };
            assert!(!dead.admits(200), "{status}");
        }
    }

    #[test]
    fn reasons_and_statuses_round_trip_their_names_and_codes() {
        for r in Reason::ALL {
            assert_eq!(r.as_str().parse::<Reason>().unwrap(), r);
            assert_eq!(Reason::from_code(r.code()), Some(r));
        }
        assert_eq!(Reason::from_code(8), None);
        assert_eq!(
            "KEYCOMPROMISE".parse::<Reason>().unwrap(),
            Reason::KeyCompromise
        );
        for s in CertStatus::ALL {
            assert_eq!(s.as_str().parse::<CertStatus>().unwrap(), s);
        }
        assert!("good".parse::<CertStatus>().is_err());
    }
}
