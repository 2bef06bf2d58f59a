//! Turning a VM on and off: the ACPI shutdown that waits until the guest
//! is off (`stop`, and `snapshot` before it takes one), and bringing a VM to
//! running from whatever state it is in (`connect`).

pub mod idle;
pub mod save;

use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::tools::virsh::DomState;
use crate::ui::{HintExt, secs};
use crate::vm::ctx::Ctx;
use crate::vm::wait::poll_until;

/// How often the state is polled while waiting.
const POLL: Duration = Duration::from_millis(500);
/// A guest that is still booting drops the ACPI event: send it again this
/// often while waiting.
const RESEND: Duration = Duration::from_secs(10);

/// Press the (ACPI) power button and wait up to `timeout` for the guest to
/// power off; a paused guest is resumed first (it cannot see the button).
pub fn shut_down(ctx: &Ctx, name: &str, state: DomState, timeout: Duration) -> Result<()> {
    if state == DomState::Paused {
        ctx.libvirt(&ctx.virsh.resume(name))
            .with_context(|| format!("cannot resume {name} to shut it down"))?;
        ctx.ui.line(format_args!(
            "{name} was paused; resumed it to shut it down"
        ));
    }
    let shutdown = ctx.virsh.shutdown(name);
    ctx.libvirt(&shutdown)
        .with_context(|| format!("cannot ask {name} to shut down"))?;
    let spinner = ctx.ui.spinner(&format!("waiting for {name} to shut down"));
    let mut last_sent = Instant::now();
    let ended = poll_until(Some(Instant::now() + timeout), POLL, &spinner, "", || {
        match ctx.domstate(name)? {
            None => return Ok(Some(format!("{name} is gone (it was transient)"))),
            // Saved to disk meanwhile (the idle watcher, or someone's
            // `virsh managedsave`): off, but not powered off. Windows still
            // runs in the saved image, which expects the disk as it is: a
            // snapshot or revert now would not match it.
            Some((DomState::ShutOff, reason)) if reason == "saved" => {
                return Err(anyhow::anyhow!(
                    "{name} was saved to disk while waiting for it to shut down; it is not \
                     powered off (its memory waits in libvirt's saved image)"
                ))
                .hint(format!(
                    "start it and shut Windows down, then try again: bkt vm start {name} && \
                     bkt vm stop {name}"
                ));
            }
            Some((s, reason)) if !s.is_active() => {
                return Ok(Some(format!(
                    "{name} is shut off ({reason}) after {}",
                    secs(spinner.elapsed())
                )));
            }
            Some(_) => {}
        }
        if last_sent.elapsed() >= RESEND {
            // Best effort: the first request may have been lost during boot.
            let _ = ctx.try_libvirt(&shutdown);
            last_sent = Instant::now();
        }
        Ok(None)
    });
    spinner.clear();
    match ended? {
        Some(said) => {
            ctx.ui.line(format_args!("{said}"));
            Ok(())
        }
        None => Err(anyhow::anyhow!(
            "{name} did not shut down within {}s; it is still running",
            timeout.as_secs()
        ))
        .hint(format!(
            "the guest is ignoring the ACPI power button (busy, or at a prompt); try again \
             with a longer --timeout, shut it down from inside, or `bkt vm stop {name} --force` \
             (unsaved work in the guest is lost)"
        )),
    }
}

/// Bring the VM to running: start it if off, restore it if saved to disk,
/// resume it if paused, wake it if suspended. Returns whether it was not running before (so the guest is
/// still booting).
pub fn ensure_running(ctx: &Ctx, name: &str, state: DomState) -> Result<bool> {
    let cmd = match state {
        DomState::Running | DomState::Blocked | DomState::ShuttingDown => return Ok(false),
        DomState::Paused => {
            ctx.ui.line(format_args!("{name} is paused; resuming it"));
            ctx.virsh.resume(name)
        }
        DomState::Suspended => {
            ctx.ui.line(format_args!("{name} is suspended; waking it"));
            ctx.virsh.dompmwakeup(name)
        }
        DomState::ShutOff if save::is_saved(ctx, name)? => {
            ctx.ui
                .line(format_args!("{name} is saved to disk; restoring it"));
            save::restore(ctx, name)?;
            return Ok(true);
        }
        DomState::ShutOff | DomState::Crashed | DomState::NoState => {
            ctx.ui
                .line(format_args!("{name} is {}; starting it", state.label()));
            ctx.virsh.start(name)
        }
    };
    ctx.libvirt(&cmd)
        .with_context(|| format!("cannot start {name}"))?;
    Ok(true)
}
