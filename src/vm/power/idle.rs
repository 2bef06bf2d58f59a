//! When a VM is in use, and the idle watcher's decisions. A VM is in use
//! while a client `bkt` started for it runs (it holds a lock), while this
//! machine holds an established TCP connection to the guest's Remote
//! Desktop port (clients started by hand), or while a SPICE client is
//! attached. SPICE is found the cheap way that needs no rights over QEMU:
//! an established connection to the port `virsh domdisplay` names, in the
//! kernel's TCP table. Asking QEMU (`info spice` through
//! `qemu-monitor-command`) would mark the domain as tainted and needs the
//! right to send monitor commands.

use std::net::{IpAddr, SocketAddr};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::manifest;
use crate::tools::virsh::DomState;
use crate::tools::{console_events, viewer};
use crate::units::AutoSave;
use crate::vm::ctx::Ctx;
use crate::vm::net;

/// The name of a VM's files on this machine (its in-use lock, its
/// watcher's lock, state and log, its apps cache): the VM and a digest of
/// its connection, `windows@1a2b3c4d5e6f7a8b`. A digest, not the URI with
/// its punctuation replaced, which made `qemu+ssh://host-a/system` and
/// `qemu+ssh://host.a/system` one name; the URI as `same_uri` reads it, so
/// `qemu:///system/` is `qemu:///system`.
pub fn key(ctx: &Ctx, name: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(manifest::uri_key(&ctx.uri).as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{name}@{hex}")
}

/// The VM's auto-save setting in the manifest (off for a VM bkt did not
/// make, or made before it could save).
pub fn setting(ctx: &Ctx, name: &str) -> Result<AutoSave> {
    let m = ctx.manifest.load()?;
    Ok(m.get(name, &ctx.uri)
        .and_then(|e| e.auto_save)
        .map_or(AutoSave::Off, AutoSave::from_secs))
}

/// What the watcher last noted, for `doctor` and `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The watcher's process (0 for a single `--once` step).
    pub pid: u32,
    /// When the VM was last seen in use (seconds since 1970).
    pub last_use: u64,
    /// When it last looked.
    pub checked: u64,
    /// What it saw then.
    pub seen: String,
}

/// What the VM's watcher last noted, if it left a state.
pub fn last_state(ctx: &Ctx, name: &str) -> Option<State> {
    let text = ctx.local.read_watch_state(&key(ctx, name))?;
    serde_json::from_str(&text).ok()
}

/// Why the VM is in use, or None when nothing uses it.
pub fn in_use(ctx: &Ctx, name: &str) -> Option<String> {
    if ctx.local.client_running(&key(ctx, name)) {
        return Some("a client or a command of bkt's is at work on it".into());
    }
    // A console libvirt handed over by fd has no TCP connection: the
    // watcher's graphics event stream counts its channels.
    if let Some(events) = ctx.local.read_console_events(&key(ctx, name))
        && console_events::open_channels(&events) > 0
    {
        return Some("a console is open (libvirt's graphics events)".into());
    }
    let conns = ctx.host.tcp_established();
    let port = ctx.local.settings.rdp_port;
    // Only when something talks to a Remote Desktop port is the guest's
    // address worth a lookup.
    if conns.iter().any(|(_, remote)| remote.port() == port)
        && let Ok(Some((ip, _))) = net::find_ip(ctx, name)
        && let Some(c) = rdp_connection(&conns, ip, port)
    {
        return Some(format!("a Remote Desktop connection from {}", c.ip()));
    }
    let display = ctx.try_libvirt_out(&ctx.virsh.domdisplay(name)).ok()?;
    let port = viewer::spice_port(&viewer::parse_domdisplay(&display)?)?;
    spice_attached(&conns, port).then(|| "a SPICE viewer is attached".to_string())
}

/// The local end of an established connection to `ip`'s Remote Desktop
/// (on `port`).
fn rdp_connection(conns: &[(SocketAddr, SocketAddr)], ip: IpAddr, port: u16) -> Option<SocketAddr> {
    conns
        .iter()
        .find(|(_, remote)| remote.ip() == ip && remote.port() == port)
        .map(|(local, _)| *local)
}

/// QEMU's end of a connection on the SPICE port (QEMU listens on
/// loopback, so both ends are in this machine's table).
fn spice_attached(conns: &[(SocketAddr, SocketAddr)], port: u16) -> bool {
    conns.iter().any(|(local, _)| local.port() == port)
}

/// What the watcher does at one look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The VM is not running (or gone, or saved): nothing to watch.
    Done(String),
    /// Something uses it: the idle time starts again.
    InUse(String),
    /// Unused for `idle` seconds; `left` more before it is saved.
    Wait { idle: u64, left: u64 },
    /// Unused for the whole window: save it (after one more look).
    Save { idle: u64 },
}

/// The decision from what was seen: the VM's state (None: no such VM),
/// what uses it, when it was last in use, now, and the window.
pub fn decide(
    state: Option<DomState>,
    in_use: Option<String>,
    last_use: u64,
    now: u64,
    window: AutoSave,
) -> Decision {
    let window = match (state, window) {
        (None, _) => return Decision::Done("the VM is gone".into()),
        (Some(s), _) if !matches!(s, DomState::Running | DomState::Blocked) => {
            return Decision::Done(format!("the VM is {}", s.label()));
        }
        (_, AutoSave::Off) => return Decision::Done("auto-save is off".into()),
        (_, AutoSave::After(w)) => w.as_secs(),
    };
    if let Some(why) = in_use {
        return Decision::InUse(why);
    }
    let idle = now.saturating_sub(last_use);
    if idle >= window {
        Decision::Save { idle }
    } else {
        Decision::Wait {
            idle,
            left: window - idle,
        }
    }
}

/// Count the VM as in use while bkt itself works on it (a snapshot, the
/// enable-rdp script, a question to the guest agent, the watch of an
/// install): the idle watcher must not save it from under that work. The
/// same lock as a client's; dropping the value lets go (and the kernel
/// does when the process ends, however it ends).
pub fn busy(ctx: &Ctx, name: &str) -> Option<std::fs::File> {
    ctx.local.hold_in_use(&key(ctx, name))
}

/// Run a client with the VM counted as in use until it exits; then make
/// sure the idle watcher takes over (a failure there is a warning: the
/// client's own outcome is what the command reports).
pub fn in_use_while<T>(ctx: &Ctx, name: &str, client: impl FnOnce() -> Result<T>) -> Result<T> {
    let in_use = busy(ctx, name);
    let res = client();
    drop(in_use);
    if let Err(e) = ensure_watcher(ctx, name) {
        ctx.ui.note(format_args!(
            "{} {name} will not be saved when idle: {e:#}",
            console::style("⚠").yellow()
        ));
    }
    res
}

/// After `connect` or `run` (or a change of the setting): make sure a
/// watcher runs for a VM whose auto-save is on, and say so.
pub fn ensure_watcher(ctx: &Ctx, name: &str) -> Result<()> {
    let window = setting(ctx, name)?;
    if window == AutoSave::Off || !ctx.domstate(name)?.is_some_and(|(s, _)| s.is_active()) {
        return Ok(());
    }
    // Always one more: it waits a moment for a watcher that is ending (it
    // just saved the VM this command restored) and leaves at once when a
    // live one holds the lock.
    ctx.local.spawn_watcher(&ctx.uri, name, &key(ctx, name))?;
    ctx.ui.line(format_args!(
        "{name} is saved to disk after {window} unused (bkt vm config {name} --auto-save off \
         turns that off)"
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const W: AutoSave = AutoSave::After(Duration::from_secs(900));

    #[test]
    fn decisions() {
        let running = Some(DomState::Running);
        assert_eq!(
            decide(None, None, 0, 100, W),
            Decision::Done("the VM is gone".into())
        );
        assert_eq!(
            decide(Some(DomState::ShutOff), None, 0, 100, W),
            Decision::Done("the VM is shut off".into())
        );
        assert_eq!(
            decide(Some(DomState::Paused), None, 0, 100, W),
            Decision::Done("the VM is paused".into())
        );
        assert_eq!(
            decide(running, None, 0, 100, AutoSave::Off),
            Decision::Done("auto-save is off".into())
        );
        assert_eq!(
            decide(running, Some("x".into()), 0, 10_000, W),
            Decision::InUse("x".into()),
            "in use wins over any idle time"
        );
        assert_eq!(
            decide(Some(DomState::Blocked), None, 1000, 1899, W),
            Decision::Wait { idle: 899, left: 1 }
        );
        assert_eq!(
            decide(running, None, 1000, 1900, W),
            Decision::Save { idle: 900 }
        );
        assert_eq!(
            decide(running, None, 2000, 1000, W),
            Decision::Wait { idle: 0, left: 900 },
            "a clock that went back counts as no idle time"
        );
    }

    #[test]
    fn connections_that_mean_in_use() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let conns = [
            (a("192.168.122.1:50000"), a("192.168.122.4:3389")),
            (a("127.0.0.1:5901"), a("127.0.0.1:40000")),
        ];
        let guest: IpAddr = "192.168.122.4".parse().unwrap();
        let other: IpAddr = "192.168.122.5".parse().unwrap();
        assert_eq!(
            rdp_connection(&conns, guest, 3389),
            Some(a("192.168.122.1:50000"))
        );
        assert_eq!(rdp_connection(&conns, other, 3389), None);
        assert_eq!(rdp_connection(&conns, guest, 3390), None);
        assert!(spice_attached(&conns, 5901));
        assert!(!spice_attached(&conns, 5900));
    }
}
