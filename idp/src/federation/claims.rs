//! Claim mapping: which upstream claim (OpenID Connect Core §5.1 names, or any other,
//! with `.` reaching into objects such as `address.formatted`) becomes which attribute of
//! the Kizuna account. Values are checked here, at the edge; a value that fails is dropped
//! and named in the audit entry.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use super::clean_text;
use crate::users;

/// The attributes an upstream can fill.
pub const ATTRIBUTES: [&str; 6] = [
    "email",
    "name",
    "name_kana",
    "birthdate",
    "address",
    "groups",
];

/// Attribute → upstream claim path.
pub type ClaimMap = BTreeMap<String, String>;

/// The mapping used when an upstream names none: the standard claims by their own names.
pub fn default_map() -> ClaimMap {
    [
        ("email", "email"),
        ("name", "name"),
        ("birthdate", "birthdate"),
        ("address", "address"),
        ("groups", "groups"),
    ]
    .into_iter()
    .map(|(a, c)| (a.to_string(), c.to_string()))
    .collect()
}

/// Parses `ATTRIBUTE=CLAIM` (e.g. `name_kana=kana_name`).
pub fn parse_mapping(text: &str) -> Result<(String, String), String> {
    let (attribute, claim) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected ATTRIBUTE=CLAIM"))?;
    if !ATTRIBUTES.contains(&attribute) {
        return Err(format!(
            "{attribute:?} is not an attribute; use one of {}",
            ATTRIBUTES.join(", ")
        ));
    }
    if claim.is_empty() || claim.len() > 100 || claim.chars().any(char::is_control) {
        return Err(format!(
            "{text:?}: the claim name must be 1 to 100 characters"
        ));
    }
    Ok((attribute.to_string(), claim.to_string()))
}

/// The account attributes an upstream's claims gave.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct MappedClaims {
    pub email: Option<String>,
    /// The upstream said it verified the address (`email_verified: true`).
    pub email_verified: bool,
    pub name: Option<String>,
    pub name_kana: Option<String>,
    pub birthdate: Option<String>,
    pub address: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// Attributes whose upstream value was refused.
    #[serde(default)]
    pub dropped: Vec<String>,
}

fn lookup<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    // A claim named exactly so comes first: SAML attribute names (`urn:oid:0.9.2342…`)
    // have dots of their own.
    if let Some(value) = claims.get(path) {
        return Some(value);
    }
    let mut parts = path.split('.');
    let mut value = claims.get(parts.next()?)?;
    for part in parts {
        value = value.get(part)?;
    }
    Some(value)
}

fn text(value: &Value, max: usize) -> Option<String> {
    let s = value.as_str()?.trim();
    (!s.is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control))
        .then(|| s.to_string())
}

fn birthdate(value: &Value) -> Option<String> {
    let s = value.as_str()?;
    let valid = match s.len() {
        4 => s.bytes().all(|b| b.is_ascii_digit()),
        10 => {
            time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).is_ok()
        }
        _ => false,
    };
    valid.then(|| s.to_string())
}

impl MappedClaims {
    /// An upstream vouches only for addresses in the domains it answers for (its
    /// `email_domains`): `email_verified` about any other address is not believed, so an
    /// upstream cannot hand out verified addresses of the city's or another partner's domain.
    pub fn believe_verification_within(&mut self, domains: &[String]) {
        let own = self
            .email
            .as_deref()
            .and_then(|e| e.rsplit_once('@'))
            .is_some_and(|(_, domain)| domains.iter().any(|d| d.eq_ignore_ascii_case(domain)));
        if !own {
            self.email_verified = false;
        }
    }
}

/// Applies `map` to the upstream's claims (ID token and UserInfo, merged).
pub fn apply(map: &ClaimMap, claims: &Map<String, Value>) -> MappedClaims {
    let mut out = MappedClaims {
        email_verified: claims.get("email_verified").and_then(Value::as_bool) == Some(true),
        ..MappedClaims::default()
    };
    for (attribute, path) in map {
        let Some(value) = lookup(claims, path).filter(|v| !v.is_null()) else {
            continue;
        };
        let ok = match attribute.as_str() {
            "email" => {
                out.email = value.as_str().and_then(|e| users::normalize_email(e).ok());
                out.email.is_some()
            }
            "name" => {
                out.name = text(value, 200);
                out.name.is_some()
            }
            "name_kana" => {
                out.name_kana = text(value, 200);
                out.name_kana.is_some()
            }
            "birthdate" => {
                out.birthdate = birthdate(value);
                out.birthdate.is_some()
            }
            "address" => {
                out.address =
                    text(value, 500).or_else(|| value.get("formatted").and_then(|f| text(f, 500)));
                out.address.is_some()
            }
            "groups" => match value.as_array() {
                Some(list) if list.len() <= 100 => {
                    out.groups = list
                        .iter()
                        .filter_map(|g| text(g, 100))
                        .map(|g| clean_text(&g, 100))
                        .collect();
                    out.groups.len() == list.len()
                }
                _ => false,
            },
            _ => true,
        };
        if !ok {
            out.dropped.push(attribute.clone());
        }
    }
    if out.email.is_none() {
        out.email_verified = false;
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn verification_counts_only_in_the_upstreams_own_domains() {
        let mapped = |email: &str| MappedClaims {
            email: Some(email.into()),
            email_verified: true,
            ..MappedClaims::default()
        };
        let domains = vec!["hospital.example.jp".to_string()];
        let mut own = mapped("hanako@hospital.example.jp");
        own.believe_verification_within(&domains);
        assert!(own.email_verified);
        for other in [
            "mayor@city.example.jp",
            "x@evil-hospital.example.jp",
            "x@sub.hospital.example.jp",
        ] {
            let mut m = mapped(other);
            m.believe_verification_within(&domains);
            assert!(!m.email_verified, "{other}");
        }
        let mut none = mapped("hanako@hospital.example.jp");
        none.believe_verification_within(&[]);
        assert!(
            !none.email_verified,
            "an upstream with no domains vouches for none"
        );
    }

    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn standard_claims_map_by_default() {
        let c = claims(json!({
            "email": "Hanako@Hospital.Example.JP", "email_verified": true, "name": "山田 花子",
            "birthdate": "1990-04-01", "address": {"formatted": "柏市若柴 1"},
            "groups": ["nurses", "staff"]
        }));
        let m = apply(&default_map(), &c);
        assert_eq!(m.email.as_deref(), Some("hanako@hospital.example.jp"));
        assert!(m.email_verified);
        assert_eq!(m.name.as_deref(), Some("山田 花子"));
        assert_eq!(m.address.as_deref(), Some("柏市若柴 1"));
        assert_eq!(m.groups, vec!["nurses", "staff"]);
        assert!(m.dropped.is_empty());
    }

    #[test]
    fn bad_values_are_dropped_and_named() {
        let c = claims(json!({
            "email": "not an address", "email_verified": true, "birthdate": "1st April",
            "kana": {"family": "ヤマダ"}, "name": "a\u{0}b"
        }));
        let mut map = default_map();
        map.insert("name_kana".into(), "kana.family".into());
        let m = apply(&map, &c);
        assert_eq!(m.email, None);
        assert!(!m.email_verified, "no address, nothing verified");
        assert_eq!(m.name_kana.as_deref(), Some("ヤマダ"));
        assert_eq!(m.dropped, vec!["birthdate", "email", "name"]);
    }

    #[test]
    fn mappings_name_known_attributes() {
        assert!(parse_mapping("name_kana=kana").is_ok());
        assert!(parse_mapping("password=pwd").is_err());
        assert!(parse_mapping("email").is_err());
    }
}
