//! `bkt vm start NAME`

use anyhow::{Context, Result};
use clap::Args;

use crate::names::VmName;
use crate::tools::virsh::DomState;
use crate::vm::checks::resources;
use crate::vm::ctx::Ctx;
use crate::vm::power::save;

/// Start a VM (already running is fine).
#[derive(Debug, Args)]
pub struct StartArgs {
    /// The VM's name.
    pub name: VmName,
}

pub fn run(ctx: &Ctx, args: StartArgs) -> Result<()> {
    let name = &args.name;
    let (state, _) = ctx.require(name)?;
    match state {
        DomState::Running | DomState::Blocked => {
            ctx.ui.line(format_args!("{name} is already running"));
            return Ok(());
        }
        DomState::Paused => {
            ctx.ui.line(format_args!(
                "{name} is paused; resume it with `{}`",
                ctx.virsh.resume(name).display()
            ));
            return Ok(());
        }
        _ => {}
    }
    // Warn (and go on) if this VM with the running ones is too much.
    if let Ok(stats) = ctx.domstats()
        && let Some(me) = stats.iter().find(|d| d.name == name.as_str())
    {
        let adding = resources::Adding {
            memory_bytes: me.memory_kib * 1024,
            vcpus: me.vcpus,
        };
        let host = ctx.host_size()?;
        resources::print(
            &ctx.ui,
            &resources::warnings(&stats, &host, Some((name.as_str(), adding)), &|d| {
                ctx.host.free_space(d)
            }),
        );
    }
    if save::is_saved(ctx, name)? {
        return save::restore(ctx, name);
    }
    ctx.libvirt(&ctx.virsh.start(name))
        .with_context(|| format!("cannot start {name}"))?;
    ctx.ui.line(format_args!("Started {name}"));
    Ok(())
}
