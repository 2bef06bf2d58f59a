//! `bkt vm start NAME`

use anyhow::{Context, Result};

use crate::tools::virsh::DomState;
use crate::vm::{Ctx, libvirt_error};

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
    ctx.virsh
        .start(name)
        .run()
        .map_err(libvirt_error)
        .with_context(|| format!("cannot start {name}"))?;
    println!("Started {name}");
    Ok(())
}
