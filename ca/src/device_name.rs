//! The name a device certificate carries: a SPIFFE ID,
//! `spiffe://<trust domain>/org/<organization>/device/<device id>`, which Envoy, Istio and
//! SPIRE-aware services match on. Certificates issued before SPIFFE IDs carry
//! `urn:kizuna:device:<organization>:<device id>`; that form is still read (requests asking
//! for it get the SPIFFE ID, and certificates already issued keep working).

use std::fmt;

/// The legacy URN prefix, read but no longer issued.
pub const LEGACY_PREFIX: &str = "urn:kizuna:device:";

/// A device identified by its organization and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceName {
    pub org: String,
    pub device: String,
}

/// How a URI relates to device names.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not a device name at all (another URI).
    Other,
    /// A device name in either form.
    Device(DeviceName),
    /// A device name that cannot be certified, and why.
    Invalid(String),
}

impl DeviceName {
    /// The SPIFFE ID under `trust_domain`.
    pub fn spiffe_id(&self, trust_domain: &str) -> String {
        format!(
            "spiffe://{trust_domain}/org/{}/device/{}",
            self.org, self.device
        )
    }

    /// Reads `uri` as a device name: the SPIFFE form under `trust_domain`, or the legacy URN.
    pub fn parse(uri: &str, trust_domain: &str) -> Parsed {
        let (org, device, form) = if let Some(rest) = uri.strip_prefix(LEGACY_PREFIX) {
            match rest.split_once(':') {
                Some((org, device)) => (org, device, "urn:kizuna:device:<organization>:<id>"),
                None => {
                    return Parsed::Invalid(format!(
                        "{uri} is not urn:kizuna:device:<organization>:<device-id>"
                    ));
                }
            }
        } else if let Some(rest) = strip_scheme(uri, "spiffe://") {
            let (domain, path) = rest.split_once('/').unwrap_or((rest, ""));
            if !domain.eq_ignore_ascii_case(trust_domain) {
                return Parsed::Invalid(format!(
                    "{uri} is in trust domain {domain}, not this CA's ({trust_domain})"
                ));
            }
            let parts: Vec<&str> = path.split('/').collect();
            match parts.as_slice() {
                ["org", org, "device", device] => (*org, *device, "the SPIFFE device path"),
                _ => {
                    return Parsed::Invalid(format!(
                        "{uri} is not spiffe://{trust_domain}/org/<organization>/device/<device-id>"
                    ));
                }
            }
        } else {
            return Parsed::Other;
        };
        for (what, value) in [("organization", org), ("device id", device)] {
            if let Err(why) = segment(value) {
                return Parsed::Invalid(format!("the {what} in {uri} ({form}) {why}"));
            }
        }
        Parsed::Device(DeviceName {
            org: org.to_string(),
            device: device.to_string(),
        })
    }
}

impl fmt::Display for DeviceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "device {} of organization {}", self.device, self.org)
    }
}

fn strip_scheme<'a>(uri: &'a str, scheme: &str) -> Option<&'a str> {
    uri.get(..scheme.len())
        .filter(|s| s.eq_ignore_ascii_case(scheme))
        .map(|_| &uri[scheme.len()..])
}

/// A path segment both forms can carry: 1-64 letters, digits, `-`, `_`, `.`, and not a
/// dot segment (SPIFFE IDs have no `.` or `..` segments).
pub(crate) fn segment(value: &str) -> Result<(), &'static str> {
    if value.is_empty()
        || value.len() > 64
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("must be 1-64 letters, digits, - _ .");
    }
    if value == "." || value == ".." {
        return Err("must not be . or ..");
    }
    Ok(())
}

/// Checks a configured trust domain: a SPIFFE trust domain is lowercase letters, digits,
/// `.`, `-` and `_`.
pub fn check_trust_domain(domain: &str) -> Result<(), String> {
    if domain.is_empty()
        || domain.len() > 255
        || !domain.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        })
    {
        return Err(format!(
            "ca.trust_domain {domain:?} is not a SPIFFE trust domain (lowercase letters, digits, . - _)"
        ));
    }
    Ok(())
}

/// The trust domain by default: the public URL's host, lowercased.
pub fn default_trust_domain(public_url: &str) -> String {
    let rest = public_url.split_once("://").map_or(public_url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    };
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(org: &str, id: &str) -> Parsed {
        Parsed::Device(DeviceName {
            org: org.into(),
            device: id.into(),
        })
    }

    #[test]
    fn both_forms_name_the_same_device() {
        let name = DeviceName {
            org: "o1".into(),
            device: "lamp-1".into(),
        };
        let spiffe = name.spiffe_id("city.example");
        assert_eq!(spiffe, "spiffe://city.example/org/o1/device/lamp-1");
        assert_eq!(
            DeviceName::parse(&spiffe, "city.example"),
            device("o1", "lamp-1")
        );
        assert_eq!(
            DeviceName::parse("urn:kizuna:device:o1:lamp-1", "city.example"),
            device("o1", "lamp-1")
        );
    }

    #[test]
    fn other_uris_are_not_device_names() {
        for uri in ["https://city.example/x", "urn:example:thing", "spiffe"] {
            assert_eq!(
                DeviceName::parse(uri, "city.example"),
                Parsed::Other,
                "{uri}"
            );
        }
    }

    #[test]
    fn malformed_or_foreign_device_names_are_refused() {
        for uri in [
            "spiffe://other.example/org/o1/device/d",
            "spiffe://city.example/org/o1/device/d/extra",
            "spiffe://city.example/org/o1/device/",
            "spiffe://city.example/org/o1/device/..",
            "spiffe://city.example/org/o%2F1/device/d",
            "spiffe://city.example/device/d",
            "urn:kizuna:device:o1",
            "urn:kizuna:device:o1:a b",
            "urn:kizuna:device::d",
        ] {
            assert!(
                matches!(DeviceName::parse(uri, "city.example"), Parsed::Invalid(_)),
                "{uri}"
            );
        }
    }

    #[test]
    fn the_trust_domain_defaults_to_the_public_host() {
        assert_eq!(
            default_trust_domain("https://ID.City.example:8443/base"),
            "id.city.example"
        );
        assert_eq!(default_trust_domain("http://127.0.0.1:8080"), "127.0.0.1");
        assert_eq!(default_trust_domain("https://[::1]:8443"), "::1");
        assert!(check_trust_domain("id.city.example").is_ok());
        assert!(check_trust_domain("::1").is_err());
        assert!(check_trust_domain("City.example").is_err());
    }
}
