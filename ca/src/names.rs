//! Subject alternative names, and the rules that bound them: an organization's allowed
//! names (DNS suffixes, IP ranges) and an issuing CA's name constraints (RFC 5280 §4.2.1.10).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

pub use kizuna_core::net::Cidr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
pub enum San {
    Dns(String),
    Ip(IpAddr),
    Uri(String),
    Email(String),
    /// A HardwareModuleName otherName (RFC 4108 §5): the device's hardware type (an OID,
    /// dotted) and its serial number (hex), as IEEE 802.1AR device identities carry them.
    #[serde(rename = "hwmodule")]
    HardwareModule {
        hw_type: String,
        serial: String,
    },
}

/// id-on-hardwareModuleName (RFC 4108 §5).
pub const ID_ON_HARDWARE_MODULE_NAME: &str = "1.3.6.1.5.5.7.8.4";

/// A dotted OID: at least two arcs, the first 0-2, digits only.
pub fn valid_oid(text: &str) -> bool {
    let arcs: Vec<&str> = text.split('.').collect();
    arcs.len() >= 2
        && arcs.len() <= 32
        && arcs
            .iter()
            .all(|a| !a.is_empty() && a.len() <= 18 && a.bytes().all(|b| b.is_ascii_digit()))
        && matches!(arcs[0], "0" | "1" | "2")
}

impl San {
    /// A hardware module name from its type OID and serial bytes.
    pub fn hardware_module(hw_type: &str, serial: &[u8]) -> Result<San, String> {
        if !valid_oid(hw_type) {
            return Err(format!("{hw_type:?} is not an object identifier"));
        }
        if serial.is_empty() || serial.len() > 64 {
            return Err("a hardware serial number is 1 to 64 bytes".into());
        }
        Ok(San::HardwareModule {
            hw_type: hw_type.to_string(),
            serial: kizuna_core::secret::hex(serial),
        })
    }
}

impl fmt::Display for San {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            San::Dns(d) => write!(f, "DNS:{d}"),
            San::Ip(ip) => write!(f, "IP:{ip}"),
            San::Uri(u) => write!(f, "URI:{u}"),
            San::Email(e) => write!(f, "email:{e}"),
            San::HardwareModule { hw_type, serial } => {
                write!(f, "HardwareModuleName:{hw_type}:{serial}")
            }
        }
    }
}

impl FromStr for San {
    type Err = String;
    /// `dns:name`, `ip:address`, `uri:value`, `email:address`, `hwmodule:OID:SERIAL-HEX`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, value) = s.split_once(':').ok_or_else(|| {
            format!(
                "{s:?}: write names as dns:NAME, ip:ADDRESS, uri:URI, email:ADDRESS or hwmodule:OID:SERIAL-HEX"
            )
        })?;
        match kind.to_ascii_lowercase().as_str() {
            "dns" => Ok(San::Dns(value.to_string())),
            "ip" => value
                .parse()
                .map(San::Ip)
                .map_err(|_| format!("{value:?} is not an IP address")),
            "uri" => Ok(San::Uri(value.to_string())),
            "email" => Ok(San::Email(value.to_string())),
            "hwmodule" => {
                let (hw_type, serial) = value
                    .split_once(':')
                    .ok_or_else(|| format!("{s:?}: write hwmodule:OID:SERIAL-HEX"))?;
                let bytes = (0..serial.len() / 2)
                    .map(|i| u8::from_str_radix(serial.get(2 * i..2 * i + 2).unwrap_or("zz"), 16))
                    .collect::<Result<Vec<u8>, _>>()
                    .ok()
                    .filter(|b| b.len() * 2 == serial.len())
                    .ok_or_else(|| format!("{serial:?} is not hex"))?;
                San::hardware_module(hw_type, &bytes)
            }
            _ => Err(format!(
                "{s:?}: the kind must be dns, ip, uri, email or hwmodule"
            )),
        }
    }
}

/// A DNS name that a certificate may carry: LDH labels, no wildcards, at most 253 bytes.
pub fn valid_dns_name(name: &str) -> bool {
    name.len() <= 253
        && !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// `name` is `domain` or inside it.
pub fn dns_within(name: &str, domain: &str) -> bool {
    let domain = domain.trim_start_matches('.');
    name == domain || name.ends_with(&format!(".{domain}"))
}

/// The names an organization may put in certificates (for profiles that check them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowedNames {
    /// DNS domains: each allows itself and every name below it.
    #[serde(default)]
    pub dns: Vec<String>,
    /// IP ranges, CIDR notation.
    #[serde(default)]
    pub ip: Vec<String>,
}

impl AllowedNames {
    pub fn allows(&self, san: &San) -> bool {
        match san {
            San::Dns(name) => self.dns.iter().any(|d| dns_within(name, d)),
            San::Ip(ip) => self
                .ip
                .iter()
                .filter_map(|c| c.parse::<Cidr>().ok())
                .any(|c| c.contains(ip)),
            _ => false,
        }
    }
}

/// Tests one constraint value against a name.
type Matcher = Box<dyn Fn(&str) -> bool>;

/// Name constraints of an issuing CA.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NameConstraints {
    pub permitted_dns: Vec<String>,
    pub excluded_dns: Vec<String>,
    pub permitted_ip: Vec<String>,
    pub excluded_ip: Vec<String>,
    /// Host or domain of URIs (RFC 5280: the host part; a leading dot means "below").
    pub permitted_uri: Vec<String>,
    pub excluded_uri: Vec<String>,
    /// Mailbox, host or domain of email addresses.
    pub permitted_email: Vec<String>,
    pub excluded_email: Vec<String>,
}

impl NameConstraints {
    pub fn is_empty(&self) -> bool {
        *self == NameConstraints::default()
    }

    /// Checks every value parses; returns the first problem.
    pub fn validate(&self) -> Result<(), String> {
        for ip in self.permitted_ip.iter().chain(&self.excluded_ip) {
            ip.parse::<Cidr>()?;
        }
        for dns in self.permitted_dns.iter().chain(&self.excluded_dns) {
            if !valid_dns_name(dns.trim_start_matches('.')) {
                return Err(format!("{dns:?} is not a DNS name"));
            }
        }
        Ok(())
    }

    /// Why `san` falls outside these constraints, if it does.
    pub fn violation(&self, san: &San) -> Option<String> {
        let (permitted, excluded, matches): (&[String], &[String], Matcher) = match san {
            // Kizuna writes no otherName constraints, and RFC 5280 applies a constraint only
            // to names of its own form.
            San::HardwareModule { .. } => return None,
            San::Dns(name) => {
                let name = name.clone();
                (
                    &self.permitted_dns,
                    &self.excluded_dns,
                    Box::new(move |c: &str| dns_within(&name, c)),
                )
            }
            San::Ip(ip) => {
                let ip = *ip;
                (
                    &self.permitted_ip,
                    &self.excluded_ip,
                    Box::new(move |c: &str| c.parse::<Cidr>().is_ok_and(|c| c.contains(&ip))),
                )
            }
            San::Uri(uri) => {
                let host = uri_host(uri);
                (
                    &self.permitted_uri,
                    &self.excluded_uri,
                    Box::new(move |c: &str| {
                        host.as_deref().is_some_and(|h| {
                            if c.starts_with('.') {
                                h.ends_with(c)
                            } else {
                                h == c
                            }
                        })
                    }),
                )
            }
            San::Email(email) => {
                let email = email.clone();
                (
                    &self.permitted_email,
                    &self.excluded_email,
                    Box::new(move |c: &str| {
                        let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
                        if c.contains('@') {
                            email == c
                        } else if c.starts_with('.') {
                            domain.ends_with(c)
                        } else {
                            domain == c
                        }
                    }),
                )
            }
        };
        if let Some(hit) = excluded.iter().find(|c| matches(c)) {
            return Some(format!(
                "{san} is excluded by the issuing CA's name constraints ({hit})"
            ));
        }
        if !permitted.is_empty() && !permitted.iter().any(|c| matches(c)) {
            return Some(format!("{san} is outside the issuing CA's permitted names"));
        }
        None
    }
}

/// The host of a URI with an authority (`scheme://host/...`); URNs have none.
fn uri_host(uri: &str) -> Option<String> {
    let rest = uri.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?;
    let host = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    Some(host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_and_domains() {
        assert!(valid_dns_name("api.water.city.example"));
        assert!(!valid_dns_name("*.city.example"));
        assert!(!valid_dns_name("Upper.example"));
        assert!(!valid_dns_name("bad..example"));
        assert!(dns_within("a.water.city.example", "water.city.example"));
        assert!(dns_within("water.city.example", "water.city.example"));
        assert!(!dns_within("evilwater.city.example", "water.city.example"));
    }

    #[test]
    fn name_constraints_permit_and_exclude() {
        let nc = NameConstraints {
            permitted_dns: vec!["city.example".into()],
            excluded_dns: vec!["secret.city.example".into()],
            permitted_ip: vec!["10.0.0.0/8".into()],
            ..Default::default()
        };
        assert!(
            nc.violation(&San::Dns("water.city.example".into()))
                .is_none()
        );
        assert!(
            nc.violation(&San::Dns("x.secret.city.example".into()))
                .is_some()
        );
        assert!(nc.violation(&San::Dns("evil.example".into())).is_some());
        assert!(
            nc.violation(&San::Ip("10.9.9.9".parse().unwrap()))
                .is_none()
        );
        assert!(
            nc.violation(&San::Ip("192.168.0.1".parse().unwrap()))
                .is_some()
        );
        assert!(
            nc.violation(&San::Uri("urn:kizuna:device:o:d".into()))
                .is_none(),
            "no URI constraints"
        );
    }

    #[test]
    fn sans_parse_from_text() {
        assert_eq!(
            "dns:a.example".parse::<San>().unwrap(),
            San::Dns("a.example".into())
        );
        assert_eq!(
            "ip:10.0.0.1".parse::<San>().unwrap(),
            San::Ip("10.0.0.1".parse().unwrap())
        );
        assert!("ftp:x".parse::<San>().is_err());
        assert_eq!(
            "hwmodule:1.3.6.1.4.1.99999.1:0a0b".parse::<San>().unwrap(),
            San::HardwareModule {
                hw_type: "1.3.6.1.4.1.99999.1".into(),
                serial: "0a0b".into()
            }
        );
        assert!("hwmodule:1.3.6:0g".parse::<San>().is_err());
        assert!("hwmodule:x.y:0a".parse::<San>().is_err());
        assert!("hwmodule:1.3.6:".parse::<San>().is_err());
    }
}
