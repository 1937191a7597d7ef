//! One-time enrollment tokens that installers give devices: create, list and void.

use kizuna_ca::enroll::tokens::{self as enroll_tokens, CreatedToken, TokenRecord, TokenSpec};

use super::require_in;
use crate::Console;
use crate::error::ConsoleError;
use crate::messages::Msg;
use crate::store;
use kizuna_core::access::{Action, Caller};

pub async fn create_enrollment_token(
    c: &Console,
    who: &Caller,
    spec: TokenSpec,
) -> Result<CreatedToken, ConsoleError> {
    require_in(
        who,
        Action::ManageDevices,
        Some(&spec.org_id),
        Msg::NoOrg {
            id: spec.org_id.clone(),
        },
    )?;
    if spec.count != 1 {
        return Err(ConsoleError::Invalid(
            Msg::OneTokenAtATime {
                command: "kizuna enroll tokens".into(),
            }
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
    require_in(
        who,
        Action::ManageDevices,
        Some(org_id),
        Msg::NoOrg { id: org_id.into() },
    )?;
    Ok(enroll_tokens::list(&c.idp.core.db, Some(org_id), None, store::PAGE).await?)
}

pub async fn void_enrollment_token(
    c: &Console,
    who: &Caller,
    id: &str,
) -> Result<TokenRecord, ConsoleError> {
    let missing = Msg::NoEnrollmentToken { id: id.into() };
    let token = enroll_tokens::get(&c.idp.core.db, id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(missing.clone().into()))?;
    require_in(who, Action::ManageDevices, Some(&token.org_id), missing)?;
    Ok(enroll_tokens::void(&c.idp.core.db, who.actor.clone(), id).await?)
}
