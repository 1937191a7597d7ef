//! The identity provider as the server's [`Authenticator`]: other feature crates accept
//! Kizuna access tokens through it.

use kizuna_core::auth::{AuthFuture, Authenticator, Principal};

use crate::Idp;
use crate::tokens;
use crate::users;

impl Authenticator for Idp {
    fn authenticate<'a>(&'a self, token: &'a str) -> AuthFuture<'a> {
        Box::pin(async move {
            let claims = tokens::check_access_token(self, token).await.ok()?.ok()?;
            let org_id = if claims.sub == claims.client_id {
                self.clients
                    .get(&self.core.db, &claims.client_id)
                    .await
                    .ok()??
                    .org_id
                    .clone()
            } else {
                let mut conn = self.core.db.conn().await.ok()?;
                let user = users::find(&mut conn, &claims.sub).await.ok()??;
                if user.status != "active" {
                    return None;
                }
                user.org_id
            };
            Some(Principal {
                subject: claims.sub,
                client_id: claims.client_id,
                scopes: claims
                    .scope
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
                org_id,
            })
        })
    }
}
