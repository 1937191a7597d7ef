//! Certificate profiles: everything the requester may not decide — allowed key types,
//! validity, key usage, extended key usage, which names may appear and how they are checked,
//! and which token scope may request them. Built in: `device`, `service`, `ocsp-signer`;
//! `[ca.profiles.NAME]` in the configuration adds or overrides.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::keys::KeyType;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Usage {
    DigitalSignature,
    KeyEncipherment,
    KeyAgreement,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtendedUsage {
    ServerAuth,
    ClientAuth,
    OcspSigning,
    EmailProtection,
    CodeSigning,
}

/// How a kind of subject alternative name is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NameRule {
    /// Not allowed.
    No,
    /// Allowed within the requesting organization's allowed names.
    OrgNames,
    /// Allowed as long as the issuing CA's name constraints permit it.
    Any,
}

/// A profile as written in the configuration (every field optional over the built-in).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProfileConfig {
    /// Logical name of the issuing CA (default `issuing`).
    pub issuer: Option<String>,
    /// `p256`, `p384`, `ed25519`, `rsa`.
    pub key_types: Option<Vec<String>>,
    pub min_rsa_bits: Option<u32>,
    pub validity_days: Option<i64>,
    pub key_usage: Option<Vec<Usage>>,
    pub extended_key_usage: Option<Vec<ExtendedUsage>>,
    pub dns: Option<NameRule>,
    pub ip: Option<NameRule>,
    pub email: Option<NameRule>,
    /// Allow the device name `spiffe://<trust domain>/org/<org>/device/<device-id>` (the
    /// legacy `urn:kizuna:device:<org>:<device-id>` is read and certified as that).
    pub device_uri: Option<bool>,
    /// Copy a `serialNumber` from the request's subject (a device's hardware serial).
    pub subject_serial_number: Option<bool>,
    /// Allow a HardwareModuleName otherName SAN (RFC 4108: hardware type OID and serial).
    pub hardware_module_name: Option<bool>,
    /// The token scope that may request this profile (default `kizuna:cert:<name>`).
    pub scope: Option<String>,
    /// Certificate policy OIDs to assert (the `service` profile asserts the CA/Browser Forum
    /// domain-validated policy, 2.23.140.1.2.1).
    pub policies: Option<Vec<String>>,
    /// EST re-enrollment with an expired (never revoked) certificate is allowed this many
    /// days after it expired; 0 (the default) allows none.
    pub renewal_grace_days: Option<i64>,
}

/// A resolved profile.
#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    pub name: String,
    pub issuer: String,
    pub key_types: Vec<String>,
    pub min_rsa_bits: u32,
    pub validity_days: i64,
    pub key_usage: Vec<Usage>,
    pub extended_key_usage: Vec<ExtendedUsage>,
    pub dns: NameRule,
    pub ip: NameRule,
    pub email: NameRule,
    pub device_uri: bool,
    pub subject_serial_number: bool,
    pub hardware_module_name: bool,
    /// Adds id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1).
    pub ocsp_nocheck: bool,
    pub scope: String,
    pub policies: Vec<String>,
    /// Issued only by Kizuna itself, never on request.
    pub internal: bool,
    /// Days after expiry within which an unrevoked certificate may still re-enroll.
    pub renewal_grace_days: i64,
}

impl Profile {
    pub fn allows_key(&self, key: KeyType) -> Result<(), String> {
        if !self.key_types.iter().any(|k| k == key.family()) {
            return Err(format!(
                "profile {} does not allow {key} keys (allowed: {})",
                self.name,
                self.key_types.join(", ")
            ));
        }
        if let KeyType::Rsa(bits) = key
            && bits < self.min_rsa_bits
        {
            return Err(format!(
                "profile {} needs RSA keys of at least {} bits",
                self.name, self.min_rsa_bits
            ));
        }
        Ok(())
    }
}

fn builtin(name: &str) -> Option<Profile> {
    let base = |name: &str| Profile {
        name: name.to_string(),
        issuer: "issuing".into(),
        key_types: vec!["p256".into(), "p384".into(), "ed25519".into(), "rsa".into()],
        min_rsa_bits: 2048,
        validity_days: 365,
        key_usage: vec![Usage::DigitalSignature],
        extended_key_usage: vec![],
        dns: NameRule::No,
        ip: NameRule::No,
        email: NameRule::No,
        device_uri: false,
        subject_serial_number: false,
        hardware_module_name: false,
        ocsp_nocheck: false,
        scope: format!("kizuna:cert:{name}"),
        policies: vec![],
        internal: false,
        renewal_grace_days: 0,
    };
    match name {
        "device" => Some(Profile {
            extended_key_usage: vec![ExtendedUsage::ClientAuth],
            device_uri: true,
            subject_serial_number: true,
            hardware_module_name: true,
            ..base(name)
        }),
        "service" => Some(Profile {
            key_types: vec!["p256".into(), "p384".into(), "rsa".into()],
            validity_days: 90,
            extended_key_usage: vec![ExtendedUsage::ServerAuth, ExtendedUsage::ClientAuth],
            dns: NameRule::OrgNames,
            ip: NameRule::OrgNames,
            policies: vec!["2.23.140.1.2.1".into()],
            ..base(name)
        }),
        "ocsp-signer" => Some(Profile {
            key_types: vec!["p256".into(), "p384".into()],
            validity_days: 30,
            extended_key_usage: vec![ExtendedUsage::OcspSigning],
            ocsp_nocheck: true,
            internal: true,
            ..base(name)
        }),
        _ => None,
    }
}

/// The profiles in force: built-ins, with configuration applied over them.
#[derive(Debug, Clone)]
pub struct Profiles(BTreeMap<String, Profile>);

impl Profiles {
    pub fn new(configured: &BTreeMap<String, ProfileConfig>) -> Result<Profiles, String> {
        let mut all: BTreeMap<String, Profile> = ["device", "service", "ocsp-signer"]
            .into_iter()
            .filter_map(|n| builtin(n).map(|p| (n.to_string(), p)))
            .collect();
        for (name, config) in configured {
            let mut profile = all
                .remove(name)
                .or_else(|| builtin(name))
                .unwrap_or_else(|| Profile {
                    extended_key_usage: vec![ExtendedUsage::ClientAuth],
                    ..builtin("device").expect("built-in device profile")
                });
            profile.name = name.clone();
            profile.scope = format!("kizuna:cert:{name}");
            apply(&mut profile, config).map_err(|e| format!("ca.profiles.{name}: {e}"))?;
            all.insert(name.clone(), profile);
        }
        Ok(Profiles(all))
    }

    pub fn get(&self, name: &str) -> Option<&Profile> {
        self.0.get(name)
    }

    pub fn all(&self) -> impl Iterator<Item = &Profile> {
        self.0.values()
    }
}

fn apply(profile: &mut Profile, config: &ProfileConfig) -> Result<(), String> {
    if let Some(issuer) = &config.issuer {
        profile.issuer = issuer.clone();
    }
    if let Some(types) = &config.key_types {
        for t in types {
            if !matches!(t.as_str(), "p256" | "p384" | "ed25519" | "rsa") {
                return Err(format!(
                    "key type {t:?} is not supported: use p256, p384, ed25519 or rsa"
                ));
            }
        }
        if types.is_empty() {
            return Err("key_types must not be empty".into());
        }
        profile.key_types = types.clone();
    }
    if let Some(bits) = config.min_rsa_bits {
        if bits < 2048 {
            return Err("min_rsa_bits must be at least 2048".into());
        }
        profile.min_rsa_bits = bits;
    }
    if let Some(days) = config.validity_days {
        if !(1..=3650).contains(&days) {
            return Err("validity_days must be between 1 and 3650".into());
        }
        profile.validity_days = days;
    }
    if let Some(ku) = &config.key_usage {
        profile.key_usage = ku.clone();
    }
    if let Some(eku) = &config.extended_key_usage {
        profile.extended_key_usage = eku.clone();
    }
    if let Some(rule) = config.dns {
        profile.dns = rule;
    }
    if let Some(rule) = config.ip {
        profile.ip = rule;
    }
    if let Some(rule) = config.email {
        profile.email = rule;
    }
    if let Some(device) = config.device_uri {
        profile.device_uri = device;
    }
    if let Some(hmn) = config.hardware_module_name {
        profile.hardware_module_name = hmn;
    }
    if let Some(serial) = config.subject_serial_number {
        profile.subject_serial_number = serial;
    }
    if let Some(scope) = &config.scope {
        profile.scope = scope.clone();
    }
    if let Some(policies) = &config.policies {
        for oid in policies {
            let arcs: Vec<&str> = oid.split('.').collect();
            if arcs.len() < 2 || arcs.iter().any(|a| a.parse::<u64>().is_err()) {
                return Err(format!("policy {oid:?} is not a dotted OID"));
            }
        }
        profile.policies = policies.clone();
    }
    if let Some(days) = config.renewal_grace_days {
        if !(0..=3650).contains(&days) {
            return Err("renewal_grace_days must be between 0 and 3650".into());
        }
        profile.renewal_grace_days = days;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_ins_and_overrides() {
        let mut configured = BTreeMap::new();
        configured.insert(
            "service".to_string(),
            ProfileConfig {
                validity_days: Some(30),
                key_types: Some(vec!["p256".into()]),
                ..Default::default()
            },
        );
        configured.insert(
            "meter".to_string(),
            ProfileConfig {
                issuer: Some("devices".into()),
                ..Default::default()
            },
        );
        let profiles = Profiles::new(&configured).unwrap();
        assert_eq!(profiles.get("service").unwrap().validity_days, 30);
        assert!(
            profiles
                .get("service")
                .unwrap()
                .allows_key(KeyType::P384)
                .is_err()
        );
        let meter = profiles.get("meter").unwrap();
        assert_eq!(meter.issuer, "devices");
        assert_eq!(meter.scope, "kizuna:cert:meter");
        assert!(
            profiles
                .get("device")
                .unwrap()
                .allows_key(KeyType::Rsa(1024))
                .is_err()
        );
        assert!(
            profiles
                .get("device")
                .unwrap()
                .allows_key(KeyType::P521)
                .is_err()
        );
        assert!(profiles.get("ocsp-signer").unwrap().internal);
    }

    #[test]
    fn bad_configuration_names_the_profile() {
        let mut configured = BTreeMap::new();
        configured.insert(
            "x".to_string(),
            ProfileConfig {
                key_types: Some(vec!["p521".into()]),
                ..Default::default()
            },
        );
        let err = Profiles::new(&configured).unwrap_err();
        assert!(
            err.contains("ca.profiles.x") && err.contains("p521"),
            "{err}"
        );
    }
}
