//! Registered devices: search, look up, register, suspend, resume and retire.

use serde::Serialize;

use kizuna_ca::devices::{self, Device, NewDevice};
use kizuna_ca::revoke::{self, Selector};
use kizuna_ca::store::CertRecord;

use super::require_in;
use crate::Console;
use crate::error::ConsoleError;
use crate::messages::Msg;
use crate::store::{self, CertSearch, DeviceSearch};
use kizuna_core::access::{Action, Caller, Reach};
use kizuna_core::audit::Tally;

pub async fn search_devices(
    c: &Console,
    who: &Caller,
    search: DeviceSearch,
) -> Result<Vec<Device>, ConsoleError> {
    let reach = who.require(Action::ViewDevices)?;
    Ok(store::devices(&c.idp.core.db, &reach, &search).await?)
}

#[derive(Debug, Serialize)]
pub struct DeviceView {
    pub device: Device,
    pub certificates: Vec<CertRecord>,
    /// Access tokens the device got with its certificates (RFC 8705): how many are alive,
    /// and when the newest was issued.
    pub tokens: Tally,
}

pub async fn device(c: &Console, who: &Caller, id: &str) -> Result<DeviceView, ConsoleError> {
    let missing = Msg::NoDevice { id: id.into() };
    let device = devices::get(&c.idp.core.db, id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(missing.clone().into()))?;
    require_in(who, Action::ViewDevices, Some(&device.org_id), missing)?;
    let certificates = store::certificates(
        &c.idp.core.db,
        &Reach::Orgs([device.org_id.clone()].into()),
        &CertSearch {
            device_id: Some(device.id.clone()),
            ..CertSearch::default()
        },
    )
    .await?;
    let selector = Selector::Device {
        org_id: device.org_id.clone(),
        device_id: device.id.clone(),
    };
    let tokens = revoke::tokens_of(&c.ca, &selector).await?;
    Ok(DeviceView {
        device,
        certificates,
        tokens,
    })
}

pub async fn create_device(
    c: &Console,
    who: &Caller,
    new: NewDevice,
) -> Result<Device, ConsoleError> {
    require_in(
        who,
        Action::ManageDevices,
        Some(&new.org_id),
        Msg::NoOrg {
            id: new.org_id.clone(),
        },
    )?;
    Ok(devices::create(&c.idp.core.db, who.actor.clone(), new).await?)
}

/// What can happen to a registered device (its certificates follow: held, released,
/// revoked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChange {
    Suspend,
    Resume,
    Retire,
}

pub async fn change_device(
    c: &Console,
    who: &Caller,
    id: &str,
    change: DeviceChange,
) -> Result<devices::StatusChange, ConsoleError> {
    let missing = Msg::NoDevice { id: id.into() };
    let device = devices::get(&c.idp.core.db, id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(missing.clone().into()))?;
    require_in(
        who,
        Action::RevokeCertificates,
        Some(&device.org_id),
        missing,
    )?;
    let actor = who.actor.clone();
    Ok(match change {
        DeviceChange::Suspend => devices::suspend(&c.ca, id, actor).await?,
        DeviceChange::Resume => devices::resume(&c.ca, id, actor).await?,
        DeviceChange::Retire => devices::retire(&c.ca, id, actor).await?,
    })
}
