//! `bkt vm start NAME`

use anyhow::{Context, Result};

use crate::tools::virsh::DomState;
use crate::vm::{Ctx, libvirt_error, preflight, resources};

pub fn run(ctx: &Ctx, name: &str) -> Result<()> {
    let (state, _) = ctx.require(name)?;
    match state {
        DomState::Running | DomState::Blocked => {
            println!("{name} is already running");
            return Ok(());
        }
        DomState::Paused => {
            println!(
                "{name} is paused; resume it with `virsh -c {} resume {name}`",
                ctx.uri
            );
            return Ok(());
        }
        _ => {}
    }
    // Warn (and go on) if this VM with the running ones is too much.
    if let Ok(stats) = ctx.domstats()
        && let Some(me) = stats.iter().find(|d| d.name == name)
    {
        let adding = resources::Adding {
            memory_bytes: me.memory_kib * 1024,
            vcpus: me.vcpus,
        };
        let host = crate::vm::Host::detect()?;
        resources::print(&resources::warnings(
            &stats,
            &host,
            Some((name, adding)),
            &preflight::free_space,
        ));
    }
    ctx.virsh
        .start(name)
        .run()
        .map_err(libvirt_error)
        .with_context(|| format!("cannot start {name}"))?;
    println!("Started {name}");
    Ok(())
}
