//! Identity assurance in the authorization flow: `acr` values naming an IAL and an AAL
//! together (OpenID Connect Core §3.1.2.1 `acr_values`, §5.5.1.1 essential `acr`), the
//! client's minimum IAL, and sending a person below it to proofing and back.

use serde_json::Value;

use super::{Ial, level};
use crate::Idp;
use crate::authorize::flow::{Step, error_redirect, keep};
use crate::authorize::pending::Pending;
use crate::authorize::request::AuthorizationRequest;
use crate::clients::Client;
use crate::error::OAuthError;
use crate::mfa::policy::Aal;
use crate::sessions::Session;

/// `urn:kizuna:ial:<i>:aal:<a>`: identity level `i` reached and a sign-in at level `a`.
pub fn acr_uri(ial: Ial, aal: Aal) -> String {
    format!("urn:kizuna:ial:{}:aal:{}", ial.level(), aal.level())
}

/// Every combined value, for discovery.
pub fn acr_values() -> Vec<String> {
    let mut all = Vec::new();
    for ial in [Ial::One, Ial::Two, Ial::Three] {
        for aal in [Aal::One, Aal::Two, Aal::Three] {
            all.push(acr_uri(ial, aal));
        }
    }
    all
}

pub fn parse_acr(uri: &str) -> Option<(Ial, Aal)> {
    let rest = uri.strip_prefix("urn:kizuna:ial:")?;
    let (ial, aal) = rest.split_once(":aal:")?;
    Some((
        Ial::from_level(ial.parse().ok()?)?,
        Aal::from_level(aal.parse().ok()?)?,
    ))
}

/// The combined levels a request lists (from `acr_values`, then an `acr` claim request), in
/// its order of preference. Any listed value is acceptable, as for AAL values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IalRequest {
    pub wanted: Vec<(Ial, Aal)>,
}

impl IalRequest {
    pub fn parse(acr_values: &[String], claims: Option<&Value>) -> IalRequest {
        let from_claims = claims
            .and_then(|c| c.get("id_token"))
            .and_then(|c| c.get("acr"))
            .map(|acr| {
                let mut listed: Vec<Value> = acr
                    .get("values")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                listed.extend(acr.get("value").cloned());
                listed
            })
            .unwrap_or_default();
        let mut wanted = Vec::new();
        let listed = acr_values
            .iter()
            .map(String::as_str)
            .chain(from_claims.iter().filter_map(Value::as_str));
        for v in listed {
            if let Some(pair) = parse_acr(v)
                && !wanted.contains(&pair)
            {
                wanted.push(pair);
            }
        }
        IalRequest { wanted }
    }

    pub fn of(req: &AuthorizationRequest) -> IalRequest {
        IalRequest::parse(&req.acr_values, req.claims.as_ref())
    }

    /// The lowest identity level any listed value accepts.
    pub fn min_ial(&self) -> Option<Ial> {
        self.wanted.iter().map(|(i, _)| *i).min()
    }

    /// The lowest sign-in level any listed value accepts.
    pub fn min_aal(&self) -> Option<Aal> {
        self.wanted.iter().map(|(_, a)| *a).min()
    }

    /// The first listed value the person and sign-in satisfy.
    pub fn claim(&self, ial: Ial, aal: Aal) -> Option<String> {
        self.wanted
            .iter()
            .find(|(i, a)| *i <= ial && *a <= aal)
            .map(|(i, a)| acr_uri(*i, *a))
    }
}

/// The sign-in level the request's combined values require (added to the AAL rules).
pub fn requested_aal(req: &AuthorizationRequest) -> Option<Aal> {
    IalRequest::of(req).min_aal()
}

/// The identity level a sign-in for this client must show: the client's minimum and the
/// request's.
pub fn required_ial(client_min: u8, request: &IalRequest) -> Option<Ial> {
    let from_client = Ial::from_level(client_min as i64);
    match (from_client, request.min_ial()) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// The `acr` of a code: a combined value when the request asked for one (or the client has
/// an IAL rule), else the AAL value the MFA rules give.
pub async fn acr_claim(
    idp: &Idp,
    req: &AuthorizationRequest,
    session: &Session,
) -> Result<String, sqlx::Error> {
    let request = IalRequest::of(req);
    let client_min = idp
        .clients
        .assurance(&idp.core.db, &req.client_id)
        .await?
        .min_ial;
    if request.wanted.is_empty() && client_min == 0 {
        return Ok(req.acr_request().claim(session.aal()).to_string());
    }
    let mut conn = idp.core.db.conn().await?;
    let ial = level(&mut conn, &session.user_id).await?;
    Ok(request
        .claim(ial, session.aal())
        .unwrap_or_else(|| acr_uri(ial, session.aal())))
}

/// The IAL check of a signed-in request: nothing when the person's level is enough; else the
/// identity page listing the providers the client allows (`Step::Proofing`), or an error to
/// the client when none can reach the level or nothing can be asked (`prompt=none`).
pub async fn check(
    idp: &Idp,
    client: &Client,
    session: &Session,
    pending: &Pending,
    pending_id: Option<String>,
) -> Result<Option<Step>, OAuthError> {
    let req = &pending.request;
    let settings = idp
        .clients
        .assurance(&idp.core.db, &client.client_id)
        .await?;
    let Some(target) = required_ial(settings.min_ial, &IalRequest::of(req)) else {
        return Ok(None);
    };
    let mut conn = idp.core.db.conn().await?;
    if level(&mut conn, &session.user_id).await? >= target {
        return Ok(None);
    }
    drop(conn);
    let refuse = |error: OAuthError| {
        Ok(Some(Step::Redirect(error_redirect(
            idp,
            &req.redirect_uri,
            req.state.as_deref(),
            &error,
        ))))
    };
    if req.has_prompt("none") {
        return refuse(OAuthError::login_required(format!(
            "identity proofing to IAL{} is needed",
            target.level()
        )));
    }
    if offered(idp, &settings.proofing_providers, target).is_empty() {
        return refuse(OAuthError::unmet_authentication_requirements(format!(
            "no proofing provider this client allows reaches IAL{}",
            target.level()
        )));
    }
    Ok(Some(Step::Proofing(keep(idp, pending, pending_id).await?)))
}

/// The providers a person may use for a client (its list, or every configured one) that can
/// reach `target` and that a person can start.
pub fn offered<'a>(
    idp: &'a Idp,
    allowed: &[String],
    target: Ial,
) -> Vec<&'a dyn super::ProofingProvider> {
    idp.assurance
        .providers
        .iter()
        .map(|p| p.as_ref())
        .filter(|p| allowed.is_empty() || allowed.contains(&p.id()))
        .filter(|p| p.ceiling() >= target && p.start_path().is_some())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn combined_acr_values_round_trip() {
        assert_eq!(acr_uri(Ial::Three, Aal::Two), "urn:kizuna:ial:3:aal:2");
        assert_eq!(
            parse_acr("urn:kizuna:ial:2:aal:1"),
            Some((Ial::Two, Aal::One))
        );
        assert_eq!(parse_acr("urn:kizuna:ial:4:aal:1"), None);
        assert_eq!(parse_acr("urn:kizuna:aal:2"), None);
        assert_eq!(acr_values().len(), 9);
    }

    #[test]
    fn the_request_lists_acceptable_combinations() {
        let req = IalRequest::parse(
            &["urn:kizuna:ial:3:aal:2".into(), "urn:kizuna:aal:2".into()],
            Some(
                &json!({"id_token": {"acr": {"essential": true, "value": "urn:kizuna:ial:2:aal:3"}}}),
            ),
        );
        assert_eq!(
            req.wanted,
            vec![(Ial::Three, Aal::Two), (Ial::Two, Aal::Three)]
        );
        assert_eq!(req.min_ial(), Some(Ial::Two));
        assert_eq!(req.min_aal(), Some(Aal::Two));
        assert_eq!(
            req.claim(Ial::Three, Aal::Two).as_deref(),
            Some("urn:kizuna:ial:3:aal:2")
        );
        assert_eq!(req.claim(Ial::One, Aal::Three), None);
        assert_eq!(required_ial(3, &IalRequest::default()), Some(Ial::Three));
        assert_eq!(required_ial(0, &IalRequest::default()), None);
        assert_eq!(required_ial(1, &req), Some(Ial::Two));
    }
}
