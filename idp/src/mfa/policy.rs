//! Authentication assurance (NIST SP 800-63B AAL1–3) from the methods a sign-in used
//! (RFC 8176 `amr` values), what a request, its client and the account require, and which
//! factor a person is asked for next. Pure rules; `docs/assurance.md` explains them.

use serde_json::Value;

/// An authentication assurance level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Aal {
    One = 1,
    Two = 2,
    Three = 3,
}

/// The `acr` values Kizuna publishes, in order.
pub const ACR_VALUES: [&str; 3] = ["urn:kizuna:aal:1", "urn:kizuna:aal:2", "urn:kizuna:aal:3"];

impl Aal {
    pub fn from_level(level: i64) -> Option<Aal> {
        match level {
            1 => Some(Aal::One),
            2 => Some(Aal::Two),
            3 => Some(Aal::Three),
            _ => None,
        }
    }

    pub fn level(self) -> u8 {
        self as u8
    }

    /// The stable `acr` URI of this level.
    pub fn uri(self) -> &'static str {
        ACR_VALUES[self as usize - 1]
    }

    pub fn from_uri(uri: &str) -> Option<Aal> {
        ACR_VALUES
            .iter()
            .position(|v| *v == uri)
            .and_then(|i| Aal::from_level(i as i64 + 1))
    }

    /// The level a sign-in with these methods reached: a hardware-bound passkey with user
    /// verification is AAL3; two factors (or a passkey, which verifies the user itself)
    /// AAL2; one factor AAL1. `None` for no method at all. A sign-in at an upstream
    /// identity provider (`fed`) counts as the first factor, as a password would: with a
    /// local code or passkey it is two (what Keycloak's post-broker OTP does); with a local
    /// password it is still one.
    pub fn from_amr(amr: &[String]) -> Option<Aal> {
        let has = |m: &str| amr.iter().any(|a| a == m);
        let verified = has("user") || has("pin");
        if has("hwk") && verified {
            return Some(Aal::Three);
        }
        let factors = [
            has("pwd") || has("fed"),
            has("otp"),
            has("hwk") || has("swk"),
        ]
        .iter()
        .filter(|f| **f)
        .count();
        if factors >= 2 || (has("swk") && verified) || has("mfa") {
            Some(Aal::Two)
        } else if factors == 1 {
            Some(Aal::One)
        } else {
            None
        }
    }
}

/// A second factor the account has enrolled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Factor {
    Totp,
    /// A passkey; `hardware` when it cannot leave its authenticator (not backup-eligible).
    Passkey {
        hardware: bool,
    },
    RecoveryCode,
}

impl Factor {
    /// The `amr` values a successful use of this factor adds. Passkeys always verify the
    /// user (PIN or biometric on the authenticator), reported as `user`.
    pub fn amr(self) -> &'static [&'static str] {
        match self {
            Factor::Totp | Factor::RecoveryCode => &["otp"],
            Factor::Passkey { hardware: true } => &["hwk", "user"],
            Factor::Passkey { hardware: false } => &["swk", "user"],
        }
    }
}

/// `amr` after adding a factor, in a stable order, with `mfa` when more than one factor
/// was used.
pub fn combine(amr: &[String], added: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = amr.iter().filter(|a| *a != "mfa").cloned().collect();
    for a in added {
        if !out.iter().any(|x| x == a) {
            out.push(a.to_string());
        }
    }
    let has = |m: &str| out.iter().any(|a| a == m);
    let kinds = [has("pwd") || has("fed"), has("otp"), has("hwk"), has("swk")]
        .iter()
        .filter(|k| **k)
        .count();
    let passkey_alone = out.iter().any(|a| a == "user");
    if kinds >= 2 || passkey_alone {
        out.push("mfa".into());
    }
    out
}

/// What a request asks of the sign-in, besides the client's and the account's rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcrRequest {
    /// Acceptable levels from `acr_values` and `claims` (`acr` with `value`/`values`),
    /// in the request's order of preference.
    pub wanted: Vec<Aal>,
}

impl AcrRequest {
    /// Reads `acr_values` and the `acr` member of the `claims` parameter (OpenID Connect
    /// Core §5.5.1.1). Values Kizuna does not define are ignored.
    pub fn parse(acr_values: &[String], claims: Option<&Value>) -> AcrRequest {
        let mut wanted: Vec<Aal> = acr_values.iter().filter_map(|v| Aal::from_uri(v)).collect();
        if let Some(acr) = claims
            .and_then(|c| c.get("id_token"))
            .and_then(|c| c.get("acr"))
        {
            let listed = acr
                .get("values")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .chain(acr.get("value").cloned());
            for v in listed {
                if let Some(aal) = v.as_str().and_then(Aal::from_uri)
                    && !wanted.contains(&aal)
                {
                    wanted.push(aal);
                }
            }
        }
        AcrRequest { wanted }
    }

    /// The lowest level that satisfies the request (any listed value is acceptable).
    pub fn minimum(&self) -> Option<Aal> {
        self.wanted.iter().copied().min()
    }

    /// The `acr` to put in the ID token for a sign-in at `reached`: the first requested value
    /// it satisfies, else the level itself.
    pub fn claim(&self, reached: Aal) -> &'static str {
        self.wanted
            .iter()
            .find(|w| **w <= reached)
            .copied()
            .unwrap_or(reached)
            .uri()
    }
}

/// The level a sign-in must reach: the highest of the request's, the client's and the
/// account's rules (a staff role counts as the account's rule).
pub fn required(request: &AcrRequest, client_min: u8, account_min: u8) -> Aal {
    let from_rules = Aal::from_level(client_min.max(account_min) as i64).unwrap_or(Aal::One);
    request.minimum().unwrap_or(Aal::One).max(from_rules)
}

/// What to do about a sign-in that has used `amr` so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// It is strong enough.
    Satisfied,
    /// Ask for one of these factors (each would reach the target on its own).
    Ask(Vec<Factor>),
    /// No enrolled factor can reach the target.
    Unmet,
}

/// Which factor to ask for: only what is missing, never the factors already used.
pub fn next_factor(amr: &[String], target: Aal, enrolled: &[Factor]) -> Next {
    if Aal::from_amr(amr).is_some_and(|a| a >= target) {
        return Next::Satisfied;
    }
    let mut ask: Vec<Factor> = Vec::new();
    for f in enrolled {
        let reached = Aal::from_amr(&combine(amr, f.amr()));
        if reached.is_some_and(|a| a >= target) && !ask.contains(f) {
            ask.push(*f);
        }
    }
    if ask.is_empty() {
        Next::Unmet
    } else {
        Next::Ask(ask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn amr(values: &[&str]) -> Vec<String> {
        values.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn levels_follow_nist_800_63b() {
        assert_eq!(Aal::from_amr(&amr(&["pwd"])), Some(Aal::One));
        assert_eq!(Aal::from_amr(&amr(&["pwd", "otp", "mfa"])), Some(Aal::Two));
        assert_eq!(Aal::from_amr(&amr(&["swk", "user", "mfa"])), Some(Aal::Two));
        assert_eq!(
            Aal::from_amr(&amr(&["hwk", "user", "mfa"])),
            Some(Aal::Three)
        );
        assert_eq!(
            Aal::from_amr(&amr(&["pwd", "hwk", "user", "mfa"])),
            Some(Aal::Three)
        );
        assert_eq!(Aal::from_amr(&[]), None);
        assert_eq!(Aal::from_uri("urn:kizuna:aal:2"), Some(Aal::Two));
        assert_eq!(Aal::Three.uri(), "urn:kizuna:aal:3");
        assert_eq!(Aal::from_uri("aal2"), None);
    }

    #[test]
    fn combining_adds_mfa_once_two_factors_are_used() {
        assert_eq!(
            combine(&amr(&["pwd"]), &["otp"]),
            amr(&["pwd", "otp", "mfa"])
        );
        assert_eq!(
            combine(&amr(&["pwd", "otp", "mfa"]), &["hwk", "user"]),
            amr(&["pwd", "otp", "hwk", "user", "mfa"])
        );
        assert_eq!(combine(&[], &["swk", "user"]), amr(&["swk", "user", "mfa"]));
    }

    #[test]
    fn an_upstream_sign_in_is_a_first_factor_and_a_local_code_the_second() {
        assert_eq!(Aal::from_amr(&amr(&["fed"])), Some(Aal::One));
        assert_eq!(
            combine(&amr(&["fed"]), &["otp"]),
            amr(&["fed", "otp", "mfa"])
        );
        assert_eq!(Aal::from_amr(&amr(&["fed", "otp", "mfa"])), Some(Aal::Two));
        assert_eq!(
            Aal::from_amr(&combine(&amr(&["fed"]), &["pwd"])),
            Some(Aal::One),
            "an upstream sign-in and a password are not two factors"
        );
        assert_eq!(
            next_factor(&amr(&["fed"]), Aal::Two, &[Factor::Totp]),
            Next::Ask(vec![Factor::Totp])
        );
    }

    #[test]
    fn only_the_missing_factor_is_asked_for() {
        let all = [
            Factor::Totp,
            Factor::Passkey { hardware: false },
            Factor::Passkey { hardware: true },
            Factor::RecoveryCode,
        ];
        // Password only, AAL2 wanted: any second factor will do.
        assert_eq!(
            next_factor(&amr(&["pwd"]), Aal::Two, &all),
            Next::Ask(all.to_vec())
        );
        // Password and TOTP, AAL3 wanted: only the hardware-bound passkey.
        assert_eq!(
            next_factor(&amr(&["pwd", "otp", "mfa"]), Aal::Three, &all),
            Next::Ask(vec![Factor::Passkey { hardware: true }])
        );
        // A synced passkey, AAL3 wanted: a hardware-bound one.
        assert_eq!(
            next_factor(&amr(&["swk", "user", "mfa"]), Aal::Three, &all),
            Next::Ask(vec![Factor::Passkey { hardware: true }])
        );
        assert_eq!(
            next_factor(&amr(&["pwd", "otp", "mfa"]), Aal::Two, &all),
            Next::Satisfied
        );
        // Nothing enrolled can reach the level.
        assert_eq!(next_factor(&amr(&["pwd"]), Aal::Two, &[]), Next::Unmet);
        assert_eq!(
            next_factor(
                &amr(&["pwd"]),
                Aal::Three,
                &[Factor::Totp, Factor::RecoveryCode]
            ),
            Next::Unmet
        );
    }

    #[test]
    fn acr_values_and_essential_claims_set_the_requirement() {
        let req = AcrRequest::parse(
            &amr(&["urn:kizuna:aal:3", "urn:kizuna:aal:2", "unknown"]),
            None,
        );
        assert_eq!(req.wanted, vec![Aal::Three, Aal::Two]);
        assert_eq!(req.minimum(), Some(Aal::Two));
        assert_eq!(req.claim(Aal::Three), "urn:kizuna:aal:3");
        assert_eq!(req.claim(Aal::Two), "urn:kizuna:aal:2");
        let claims =
            json!({"id_token": {"acr": {"essential": true, "values": ["urn:kizuna:aal:2"]}}});
        let req = AcrRequest::parse(&[], Some(&claims));
        assert_eq!(req.minimum(), Some(Aal::Two));
        assert_eq!(req.claim(Aal::Three), "urn:kizuna:aal:2");
        let single = json!({"id_token": {"acr": {"essential": true, "value": "urn:kizuna:aal:3"}}});
        assert_eq!(
            AcrRequest::parse(&[], Some(&single)).minimum(),
            Some(Aal::Three)
        );
        assert_eq!(AcrRequest::default().claim(Aal::Two), "urn:kizuna:aal:2");
    }

    #[test]
    fn the_strictest_rule_wins() {
        let none = AcrRequest::default();
        assert_eq!(required(&none, 0, 0), Aal::One);
        assert_eq!(required(&none, 2, 0), Aal::Two);
        assert_eq!(required(&none, 0, 3), Aal::Three);
        let asks_three = AcrRequest {
            wanted: vec![Aal::Three],
        };
        assert_eq!(required(&asks_three, 2, 0), Aal::Three);
    }
}
