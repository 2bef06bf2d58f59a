//! Which RDP client this machine has, and whether it can open its window in
//! this session: `$BKT_VM_RDP_CLIENT` when set, else FreeRDP 3, FreeRDP 2,
//! Remmina, in `rdp::CANDIDATES` order. Shared by `connect` and `doctor`.

use crate::tools::rdp::{self, Client, Flavor};
use crate::vm::ctx::Ctx;

/// The client programs to look for, and whether the user forced one.
fn candidates(ctx: &Ctx) -> (Vec<String>, bool) {
    match &ctx.local.settings.rdp_client {
        Some(c) => (vec![c.clone()], true),
        None => (
            rdp::CANDIDATES.iter().map(|s| s.to_string()).collect(),
            false,
        ),
    }
}

/// Whether a client can open its window here: an X11 one (x...) needs
/// DISPLAY, a Wayland one (wl...) WAYLAND_DISPLAY.
fn runs_in_this_session(ctx: &Ctx, program: &str) -> bool {
    let base = program.rsplit('/').next().unwrap_or(program);
    if base.starts_with('x') {
        ctx.local.settings.display
    } else if base.starts_with("wl") {
        ctx.local.settings.wayland
    } else {
        true
    }
}

/// `program` as a [`Client`], when it is installed: its version (from
/// `/version`, when it tells) decides the FreeRDP dialect, else its name.
fn probe(ctx: &Ctx, program: String) -> Option<Client> {
    if !ctx.local.has_program(&program) {
        return None;
    }
    let base = program.rsplit('/').next().unwrap_or(&program).to_string();
    if base == "remmina" {
        return Some(Client {
            program,
            flavor: Flavor::Remmina,
            version: None,
        });
    }
    let version = ctx
        .local
        .exec_unchecked(&rdp::version_cmd(&program))
        .ok()
        .and_then(|o| rdp::parse_version(&o.stdout));
    let flavor = version
        .as_deref()
        .and_then(rdp::flavor_of)
        .unwrap_or(if base.ends_with('3') {
            Flavor::FreeRdp3
        } else {
            Flavor::FreeRdp2
        });
    Some(Client {
        program,
        flavor,
        version,
    })
}

/// The RDP client to use: `$BKT_VM_RDP_CLIENT`, else the first candidate on
/// PATH that can run in this session.
pub fn find(ctx: &Ctx) -> Option<Client> {
    let (candidates, forced) = candidates(ctx);
    candidates
        .into_iter()
        .filter(|p| forced || runs_in_this_session(ctx, p))
        .find_map(|p| probe(ctx, p))
}

/// The client `connect` would prefer if the session allowed it: the first
/// one installed, display or not (what `doctor` reports).
pub fn installed(ctx: &Ctx) -> Option<Client> {
    candidates(ctx).0.into_iter().find_map(|p| probe(ctx, p))
}

/// The client for a RemoteApp window: `$BKT_VM_RDP_CLIENT` when it is a
/// FreeRDP, else `xfreerdp3`, then `xfreerdp` (2 or 3), when this session
/// has an X display (XWayland on Wayland). Err(what is installed instead,
/// if anything) when there is none.
pub fn find_remoteapp(ctx: &Ctx) -> Result<Client, Option<Client>> {
    let forced = ctx.local.settings.rdp_client.is_some();
    let (candidates, _) = if forced {
        candidates(ctx)
    } else {
        (
            rdp::REMOTEAPP_CANDIDATES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            false,
        )
    };
    let found = candidates
        .into_iter()
        .filter(|p| forced || runs_in_this_session(ctx, p))
        .find_map(|p| probe(ctx, p));
    match found {
        Some(c) if c.flavor != Flavor::Remmina => Ok(c),
        Some(c) => Err(Some(c)),
        None => Err(installed(ctx)),
    }
}
