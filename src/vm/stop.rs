//! `bkt vm stop NAME`: ACPI shutdown, then poll until the domain is off.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::tools::virsh::DomState;
use crate::ui::{HintExt, Spinner, secs};
use crate::vm::{Ctx, libvirt_error};

/// How often the state is polled while waiting.
const POLL: Duration = Duration::from_millis(500);
/// A guest that is still booting drops the ACPI event: send it again this
/// often while waiting.
const RESEND: Duration = Duration::from_secs(10);

pub fn run(ctx: &Ctx, name: &str, timeout: u64, force: bool) -> Result<()> {
    let (state, _) = ctx.require(name)?;
    if !state.is_active() {
        println!("{name} is already shut off");
        return Ok(());
    }
    if state == DomState::Paused && !force {
        // A paused guest cannot see the power button.
        ctx.virsh
            .resume(name)
            .run()
            .map_err(libvirt_error)
            .with_context(|| format!("cannot resume {name} to shut it down"))?;
        println!("{name} was paused; resumed it to shut it down");
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
    let shutdown = ctx.virsh.shutdown(name);
    shutdown
        .run()
        .map_err(libvirt_error)
        .with_context(|| format!("cannot ask {name} to shut down"))?;
    let spinner = Spinner::new(&format!("waiting for {name} to shut down"));
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let mut last_sent = Instant::now();
    loop {
        match ctx.domstate(name)? {
            None => {
                spinner.clear();
                println!("{name} is gone (it was transient)");
                return Ok(());
            }
            Some((s, reason)) if !s.is_active() => {
                let took = spinner.elapsed();
                spinner.clear();
                println!("{name} is shut off ({reason}) after {}", secs(took));
                return Ok(());
            }
            Some(_) => {}
        }
        if Instant::now() >= deadline {
            spinner.clear();
            let err: Result<()> = Err(anyhow::anyhow!(
                "{name} did not shut down within {timeout}s; it is still running"
            ));
            return err.hint(format!(
                "the guest is ignoring the ACPI power button (busy, or at a prompt); try again \
                 with a longer --timeout, shut it down from inside, or `bkt vm stop {name} --force` \
                 (unsaved work in the guest is lost)"
            ));
        }
        if last_sent.elapsed() >= RESEND {
            // Best effort: the first request may have been lost during boot.
            let _ = shutdown.run();
            last_sent = Instant::now();
        }
        std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
    }
}
