//! Every console action, as one function each: check the caller's role and scope, validate
//! the input, call the domain function. The pages and the admin API both call these, so a
//! page and its API call always allow, refuse and audit the same way. One module per
//! resource; this one re-exports them and holds what they share.

mod audit;
mod certificates;
mod clients;
mod dashboard;
mod devices;
mod enrollment;
mod orgs;
mod reviews;
mod upstreams;
mod users;

pub use audit::{audit_entry, search_audit, verify_audit};
pub use certificates::{Target, certificate, plan_revocation, revoke, search_certificates, unhold};
pub use clients::{
    ClientChange, ClientPage, change_client, client, client_assurance, client_consent_terms,
    client_linkages, client_page, client_quota, create_client, edit_client, list_clients,
    rotate_client_secret, set_client_assurance, set_client_consent_terms, set_client_linkage,
    set_client_quota,
};
pub use dashboard::dashboard;
pub use devices::{DeviceChange, change_device, create_device, device, search_devices};
pub use enrollment::{create_enrollment_token, enrollment_tokens, void_enrollment_token};
pub use orgs::{
    client_scopes, create_org, list_orgs, org, set_client_scopes, set_consent_lifetime,
    set_org_status, update_org,
};
pub use reviews::{bulk_disable, review};
pub use upstreams::{
    UpstreamChange, UpstreamView, change_upstream, create_upstream, edit_upstream, list_upstreams,
    upstream,
};
pub use users::{
    change_role, end_sessions, proofing, record_proofing, reset_factors, search_users,
    set_user_status, user,
};

use kizuna_core::access::{Action, Caller, Denied};
use kizuna_core::web::Lang;

use crate::error::ConsoleError;
use crate::messages::Msg;
use crate::store::MAX_SEARCH;

/// Refuses search text longer than [`MAX_SEARCH`]; empty means no filter.
pub fn search_text(text: Option<String>) -> Result<Option<String>, ConsoleError> {
    match text.map(|t| t.trim().to_string()).filter(|t| !t.is_empty()) {
        Some(t) if t.chars().count() > MAX_SEARCH => Err(ConsoleError::Invalid(
            Msg::SearchTooLong {
                length: t.chars().count().to_string(),
                max: MAX_SEARCH.to_string(),
            }
            .into(),
        )),
        other => Ok(other),
    }
}

/// Refuses unless the caller may take `action` on something of `org`, as
/// [`Caller::require_in`] does; what is out of reach is refused as `missing`, the console's
/// words for the thing not found.
pub fn require_in(
    who: &Caller,
    action: Action,
    org: Option<&str>,
    missing: Msg,
) -> Result<(), ConsoleError> {
    who.require_in(action, org, &missing.render(Lang::En))
        .map_err(|denied| match denied {
            Denied::NotFound(_) => ConsoleError::NotFound(missing.into()),
            other => other.into(),
        })
}
