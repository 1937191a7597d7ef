//! One-time enrollment tokens that installers give devices: create, list and void.

use kizuna_ca::enroll::tokens::{self as enroll_tokens, CreatedToken, TokenRecord, TokenSpec};

use crate::Console;
use crate::error::ConsoleError;
use crate::store;
use kizuna_core::access::{Action, Caller};

pub async fn create_enrollment_token(
    c: &Console,
    who: &Caller,
    spec: TokenSpec,
) -> Result<CreatedToken, ConsoleError> {
    who.require_in(
        Action::ManageDevices,
        Some(&spec.org_id),
        &format!("organization {}", spec.org_id),
    )?;
    if spec.count != 1 {
        return Err(ConsoleError::Invalid(
            "the console creates one token at a time; use `kizuna enroll tokens` for batches"
                .into(),
        ));
    }
    let mut created = enroll_tokens::create(&c.ca, who.actor.clone(), &spec, &mut |_| {}).await?;
    created
        .pop()
        .ok_or_else(|| ConsoleError::Internal("no token was created".into()))
}

pub async fn enrollment_tokens(
    c: &Console,
    who: &Caller,
    org_id: &str,
) -> Result<Vec<TokenRecord>, ConsoleError> {
    who.require_in(
        Action::ManageDevices,
        Some(org_id),
        &format!("organization {org_id}"),
    )?;
    Ok(enroll_tokens::list(&c.idp.core.db, Some(org_id), None, store::PAGE).await?)
}

pub async fn void_enrollment_token(
    c: &Console,
    who: &Caller,
    id: &str,
) -> Result<TokenRecord, ConsoleError> {
    let what = format!("enrollment token {id}");
    let token = enroll_tokens::get(&c.idp.core.db, id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(what.clone()))?;
    who.require_in(Action::ManageDevices, Some(&token.org_id), &what)?;
    Ok(enroll_tokens::void(&c.idp.core.db, who.actor.clone(), id).await?)
}
