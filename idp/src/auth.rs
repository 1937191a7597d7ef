//! The identity provider as the server's [`Authenticator`]: every management API (the admin
//! API, the CA API, the device registry) resolves its callers here, from Kizuna access
//! tokens, into one [`Caller`] the shared role table (`kizuna_core::access`) decides on.

use kizuna_core::access::{ADMIN_SCOPE, Caller, ROLE_SCOPE_PREFIX, Role, is_management_scope};
use kizuna_core::auth::{AuthFuture, Authenticator, Refused};

use crate::Idp;
use crate::mfa::policy::Aal;
use crate::tokens::{self, AccessClaims};
use crate::users;

impl Authenticator for Idp {
    fn authenticate<'a>(&'a self, token: &'a str) -> AuthFuture<'a> {
        Box::pin(async move {
            let claims = tokens::check_access_token(self, token)
                .await
                .map_err(|_| Refused::Unavailable)?
                .map_err(|_| Refused::InvalidToken)?;
            let scopes: Vec<&str> = claims.scope.split(' ').filter(|s| !s.is_empty()).collect();
            if claims.sub == claims.client_id {
                let client = self
                    .clients
                    .get(&self.core.db, &claims.client_id)
                    .await
                    .map_err(|_| Refused::Unavailable)?
                    .filter(|c| c.is_active())
                    .ok_or(Refused::InvalidToken)?;
                let caller = Caller::client(
                    &client.client_id,
                    &client.name,
                    client.org_id.as_deref(),
                    scopes.iter().copied(),
                );
                if !scopes.iter().any(|s| is_management_scope(s)) {
                    return Err(Refused::InsufficientScope(format!(
                        "the token needs {ADMIN_SCOPE}, a {ROLE_SCOPE_PREFIX}<role> scope or a kizuna: scope of the API"
                    )));
                }
                return Ok(caller);
            }
            person(self, &claims, &scopes).await
        })
    }
}

/// A person's token acts with the roles they hold now (all of them with `kizuna:admin`, only
/// the named ones with `kizuna:role:<role>`), and only when the sign-in behind it reached the
/// level those roles need (`console.min_aal`, `console.city_admin_aal`).
async fn person(idp: &Idp, claims: &AccessClaims, scopes: &[&str]) -> Result<Caller, Refused> {
    let all = scopes.contains(&ADMIN_SCOPE);
    let named: Vec<Role> = scopes
        .iter()
        .filter_map(|s| s.strip_prefix(ROLE_SCOPE_PREFIX)?.parse().ok())
        .collect();
    if !all && named.is_empty() {
        return Err(Refused::InsufficientScope(format!(
            "the token lacks {ADMIN_SCOPE} (or a {ROLE_SCOPE_PREFIX}<role> scope)"
        )));
    }
    let mut conn = idp.core.db.conn().await.map_err(|_| Refused::Unavailable)?;
    let user = users::find(&mut conn, &claims.sub)
        .await
        .map_err(|_| Refused::Unavailable)?
        .filter(|u| u.status == "active")
        .ok_or(Refused::InvalidToken)?;
    let roles: Vec<(Role, String)> = users::assignments(&mut conn, &user.id)
        .await
        .map_err(|_| Refused::Unavailable)?
        .into_iter()
        .filter(|(role, _)| all || named.contains(role))
        .collect();
    if roles.is_empty() {
        return Err(Refused::NoRights(
            "this account holds no staff role the token may use".into(),
        ));
    }
    let needed = idp.core.levels.needed(&roles);
    if token_aal(claims) < needed {
        return Err(Refused::InsufficientUserAuthentication(needed));
    }
    Ok(Caller::person(&user.id, &user.username, roles))
}

/// The level the sign-in behind an access token reached, from its `acr` (either Kizuna form).
pub(crate) fn token_aal(claims: &AccessClaims) -> u8 {
    let acr = claims.acr.as_deref().unwrap_or("");
    Aal::from_uri(acr)
        .or_else(|| crate::assurance::flow::parse_acr(acr).map(|(_, aal)| aal))
        .unwrap_or(Aal::One)
        .level()
}
