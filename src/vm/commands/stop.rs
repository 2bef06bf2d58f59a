//! `bkt vm stop NAME`: ACPI shutdown, then wait until the domain is off;
//! pull the plug with `--force`; or save its memory to disk with `--save`.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use crate::names::VmName;
use crate::vm::ctx::Ctx;
use crate::vm::power::{self, save};

/// Shut a VM down gracefully (ACPI), waiting until it is off.
#[derive(Debug, Args)]
#[command(
    long_about = "Shut a VM down gracefully (ACPI power button), waiting until it is off.\n\n\
    If the guest has not powered off after --timeout seconds, the VM is left running and \
    the command fails; --force powers it off at once, like pulling the plug.\n\n\
    --save writes the VM's memory to disk (libvirt's managed save) and frees it; `status` \
    shows the VM as saved, and `start` or `connect` restores it where it was."
)]
pub struct StopArgs {
    /// The VM's name.
    pub name: VmName,
    /// Seconds to wait for the guest to power off.
    #[arg(long, default_value_t = 180, value_name = "SECONDS")]
    pub timeout: u64,
    /// Power off at once instead (unsaved work in the guest is lost).
    #[arg(long, conflicts_with = "save")]
    pub force: bool,
    /// Save the VM's memory to disk instead of shutting Windows down:
    /// the host gets the memory back, and the next start or connect
    /// restores it where it was, in seconds.
    #[arg(long)]
    pub save: bool,
}

pub fn run(ctx: &Ctx, args: StopArgs) -> Result<()> {
    let StopArgs {
        ref name,
        timeout,
        force,
        save,
    } = args;
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
