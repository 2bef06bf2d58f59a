//! `bkt vm enable-rdp NAME`: turn on Remote Desktop in an installed
//! Windows with a script CD and one double-click (see `rdp::setup`).

use std::time::Duration;

use anyhow::Result;

use crate::names::VmName;
use crate::vm::ctx::Ctx;
use crate::vm::rdp::setup as rdp_setup;

pub fn run(ctx: &Ctx, name: &VmName, timeout: u64) -> Result<()> {
    ctx.require(name)?;
    rdp_setup::enable(ctx, name, Duration::from_secs(timeout))
}
