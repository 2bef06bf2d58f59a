//! `bkt vm stop NAME`: ACPI shutdown, then wait until the domain is off;
//! pull the plug with `--force`; or save its memory to disk with `--save`.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::names::VmName;
use crate::vm::ctx::Ctx;
use crate::vm::power::{self, save};

pub fn run(ctx: &Ctx, name: &VmName, timeout: u64, force: bool, save: bool) -> Result<()> {
    let (state, _) = ctx.require(name)?;
    if !state.is_active() {
        if save::is_saved(ctx, name)? {
            ctx.ui.line(format_args!("{name} is already saved to disk"));
        } else if save {
            ctx.ui
                .line(format_args!("{name} is shut off; there is nothing to save"));
        } else {
            ctx.ui.line(format_args!("{name} is already shut off"));
        }
        return Ok(());
    }
    if save {
        return save::save(ctx, name);
    }
    if force {
        ctx.libvirt(&ctx.virsh.destroy(name))
            .with_context(|| format!("cannot power off {name}"))?;
        ctx.ui.line(format_args!("{name} is powered off (forced)"));
        return Ok(());
    }
    power::shut_down(ctx, name, state, Duration::from_secs(timeout))
}
