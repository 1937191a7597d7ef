//! The trust ceiling (Smart City Security Guideline サービス②-5: SSO through another
//! organisation must not lower proofing or authentication strength, nor may an upstream
//! raise them beyond what it was vetted for): an upstream's `acr`/`amr` (OpenID Connect
//! Core §2, RFC 8176) are mapped to Kizuna's identity and authentication assurance levels,
//! then capped at the highest levels the upstream may vouch for.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::mfa::policy::Aal;

/// The highest levels an upstream may vouch for: identity assurance (IAL 1–3) and
/// authentication assurance (AAL 1–3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustCeiling {
    pub max_ial: u8,
    pub max_aal: u8,
}

impl TrustCeiling {
    /// A ceiling with both levels in 1..=3.
    pub fn new(max_ial: u8, max_aal: u8) -> Result<TrustCeiling, String> {
        if !(1..=3).contains(&max_ial) || !(1..=3).contains(&max_aal) {
            return Err("the trust ceiling's levels must be 1, 2 or 3".into());
        }
        Ok(TrustCeiling { max_ial, max_aal })
    }
}

/// What one upstream `acr` value means here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Levels {
    pub aal: u8,
    #[serde(default = "one")]
    pub ial: u8,
}

fn one() -> u8 {
    1
}

/// Upstream `acr` values and the levels each stands for.
pub type AcrMap = BTreeMap<String, Levels>;

/// Parses `VALUE=AAL[:IAL]` (e.g. `aal3=3:3`, `urn:example:loa:2=2`): the last `=` splits.
pub fn parse_acr_mapping(text: &str) -> Result<(String, Levels), String> {
    let (value, levels) = text
        .rsplit_once('=')
        .ok_or_else(|| format!("{text:?}: expected VALUE=AAL or VALUE=AAL:IAL"))?;
    let (aal, ial) = levels.split_once(':').unwrap_or((levels, "1"));
    let level = |t: &str| {
        t.parse::<u8>()
            .ok()
            .filter(|l| (1..=3).contains(l))
            .ok_or_else(|| format!("{text:?}: levels must be 1, 2 or 3"))
    };
    if value.is_empty() || value.len() > 200 {
        return Err(format!(
            "{text:?}: the acr value must be 1 to 200 characters"
        ));
    }
    Ok((
        value.to_string(),
        Levels {
            aal: level(aal)?,
            ial: level(ial)?,
        },
    ))
}

/// The levels a federated sign-in reached, after the ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapped {
    pub ial: u8,
    pub aal: Aal,
    /// True when the upstream claimed more than its ceiling allows.
    pub capped: bool,
}

/// Maps the upstream's `acr` (through the upstream's table, or Kizuna's own `acr` URIs when
/// the upstream is another Kizuna) or else its `amr` (RFC 8176 values, read as Kizuna reads
/// its own) to levels, and caps them at the ceiling. Nothing claimed is AAL1 / IAL1.
pub fn map(acr: Option<&str>, amr: &[String], table: &AcrMap, ceiling: TrustCeiling) -> Mapped {
    let (aal, ial) = match acr {
        Some(v) if table.contains_key(v) => (table[v].aal, table[v].ial),
        Some(v) if Aal::from_uri(v).is_some() => (Aal::from_uri(v).map_or(1, Aal::level), 1),
        _ => (Aal::from_amr(amr).map_or(1, Aal::level), 1),
    };
    let capped = aal > ceiling.max_aal || ial > ceiling.max_ial;
    let aal = aal.min(ceiling.max_aal);
    Mapped {
        ial: ial.min(ceiling.max_ial),
        aal: Aal::from_level(aal as i64).unwrap_or(Aal::One),
        capped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> AcrMap {
        [
            ("aal2".to_string(), Levels { aal: 2, ial: 1 }),
            ("aal3".to_string(), Levels { aal: 3, ial: 3 }),
        ]
        .into()
    }

    #[test]
    fn an_upstream_is_never_trusted_beyond_its_ceiling() {
        let ceiling = TrustCeiling::new(2, 2).unwrap();
        let m = map(Some("aal3"), &[], &table(), ceiling);
        assert_eq!((m.ial, m.aal, m.capped), (2, Aal::Two, true));
        let m = map(Some("aal2"), &[], &table(), ceiling);
        assert_eq!((m.ial, m.aal, m.capped), (1, Aal::Two, false));
    }

    #[test]
    fn unknown_or_missing_acr_falls_back_to_amr_then_level_one() {
        let ceiling = TrustCeiling::new(3, 3).unwrap();
        let amr = vec!["hwk".to_string(), "user".to_string()];
        assert_eq!(map(None, &amr, &table(), ceiling).aal, Aal::Three);
        assert_eq!(map(Some("gold"), &[], &table(), ceiling).aal, Aal::One);
        assert_eq!(
            map(Some("urn:kizuna:aal:2"), &[], &table(), ceiling).aal,
            Aal::Two
        );
        assert_eq!(map(None, &[], &table(), ceiling).ial, 1);
    }

    #[test]
    fn acr_mappings_parse_with_the_last_equals_sign() {
        assert_eq!(
            parse_acr_mapping("urn:a=b:loa=3:2").unwrap(),
            ("urn:a=b:loa".to_string(), Levels { aal: 3, ial: 2 })
        );
        assert_eq!(
            parse_acr_mapping("aal2=2").unwrap().1,
            Levels { aal: 2, ial: 1 }
        );
        assert!(parse_acr_mapping("aal4=4").is_err());
        assert!(parse_acr_mapping("=2").is_err());
        assert!(TrustCeiling::new(0, 2).is_err());
    }
}
