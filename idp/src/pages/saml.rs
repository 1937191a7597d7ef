//! The SAML service-provider endpoints of each SAML upstream: `POST
//! /federation/saml/{alias}/acs` (the IdP's Response), `GET /federation/saml/{alias}/slo`
//! (logout both ways, HTTP-Redirect binding) and `GET /federation/saml/{alias}/metadata`
//! (Kizuna's SP metadata, which is also its entity id there).

use axum::Form;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use kizuna_core::web::ErrorPage;

use super::federation::{answered, signed_out};
use super::{internal_error, see_other};
use crate::Idp;
use crate::federation::saml::{acs, slo, sp};
use crate::federation::upstreams;

/// `POST /federation/saml/{alias}/acs`: the IdP's answer, checked, then handed to what the
/// sign-in was started for. No CSRF token can come from the IdP's page: the `RelayState`
/// bound to this browser's cookie and the `InResponseTo` stand in for it.
pub async fn acs(
    State(idp): State<Idp>,
    Path(alias): Path<String>,
    headers: HeaderMap,
    Form(params): Form<acs::PostParams>,
) -> Response {
    let result = acs::finish(&idp, &headers, &alias, &params).await;
    answered(&idp, &headers, result).await
}

/// `GET /federation/saml/{alias}/slo`: the IdP's LogoutResponse (on to the city service) or
/// its LogoutRequest (answered with Kizuna's LogoutResponse).
pub async fn slo(
    State(idp): State<Idp>,
    Path(alias): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    match slo::redirect_binding(&idp, &alias, query.as_deref().unwrap_or_default()).await {
        Ok(slo::Next::Returned(Some(url))) => see_other(&url, None),
        Ok(slo::Next::Answer(url)) => see_other(&url, None),
        Ok(slo::Next::Returned(None) | slo::Next::Done) => signed_out(),
        Err(e) if e.is_internal() => internal_error(),
        Err(e) => ErrorPage::new(
            StatusCode::BAD_REQUEST,
            "サインアウトの要求を確認できませんでした",
            "The sign-out message could not be verified",
        )
        .detail(e.to_string())
        .into_response(),
    }
}

/// `GET /federation/saml/{alias}/metadata`: Kizuna's SP metadata for this upstream.
pub async fn metadata(State(idp): State<Idp>, Path(alias): Path<String>) -> Response {
    match upstreams::find(&idp, &alias).await {
        Ok(Some(u)) if u.alias == alias => match sp::metadata(&idp, &u) {
            Some(metadata) => (
                [
                    (header::CONTENT_TYPE, "application/samlmetadata+xml"),
                    (header::CACHE_CONTROL, "public, max-age=300"),
                ],
                metadata,
            )
                .into_response(),
            None => ErrorPage::not_found().into_response(),
        },
        Ok(_) => ErrorPage::not_found().into_response(),
        Err(_) => internal_error(),
    }
}
