//! `bkt vm stop NAME`: ACPI shutdown, then wait until the domain is off; or
//! pull the plug with `--force`.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::names::VmName;
use crate::vm::ctx::{Ctx, libvirt_error};
use crate::vm::power;

pub fn run(ctx: &Ctx, name: &VmName, timeout: u64, force: bool) -> Result<()> {
    let (state, _) = ctx.require(name)?;
    if !state.is_active() {
        println!("{name} is already shut off");
        return Ok(());
    }
    if force {
        ctx.virsh
            .destroy(name)
            .run()
            .map_err(libvirt_error)
            .with_context(|| format!("cannot power off {name}"))?;
        println!("{name} is powered off (forced)");
        return Ok(());
    }
    power::shut_down(ctx, name, state, Duration::from_secs(timeout))
}
