//! `bkt vm watch NAME` (hidden): the idle watcher. `connect` starts it
//! detached once its client exits; it looks at the VM now and then and
//! saves it to disk when nothing has used it for the VM's auto-save time.
//! One per VM (a lock); it ends when the VM stops, is saved, or its
//! auto-save is turned off. `--once` takes a single look (tests drive the
//! decisions that way, with the clock in `BKT_VM_NOW`).

use std::time::Duration;

use anyhow::Result;
use clap::Args;

use crate::interrupt;
use crate::names::VmName;
use crate::units::AutoSave;
use crate::vm::ctx::Ctx;
use crate::vm::power::idle::{self, Decision, State};
use crate::vm::power::save;

/// A duration in the words of the setting: `4m20s`, `0s`.
fn dur(secs: u64) -> String {
    match secs {
        0 => "0s".into(),
        s => AutoSave::from_secs(s).to_string(),
    }
}

/// What one look did.
struct Look {
    /// Watching ends.
    done: bool,
    said: String,
    /// What was seen, for the log: the same twice in a row is one line
    /// ("unused for 2m", "unused for 3m" are one thing seen).
    seen: String,
    /// The auto-save setting it went by (it may change while watching).
    window: AutoSave,
}

/// One look: decide, act, note the state.
fn look(ctx: &Ctx, name: &str, pid: u32) -> Result<Look> {
    let k = idle::key(ctx, name);
    let window = idle::setting(ctx, name)?;
    let looked = |done, said: String, seen: &str| Look {
        done,
        seen: if seen.is_empty() {
            said.clone()
        } else {
            seen.to_string()
        },
        said,
        window,
    };
    let state = ctx.domstate(name)?.map(|(s, _)| s);
    let now = ctx.local.now();
    let last_use = idle::last_state(ctx, name).map_or(now, |s| s.last_use);
    let running = state.is_some_and(|s| s.is_active());
    let seen = if running {
        idle::in_use(ctx, name)
    } else {
        None
    };
    let note = |last_use: u64, seen: &str| {
        let s = State {
            pid,
            last_use,
            checked: now,
            seen: seen.to_string(),
        };
        ctx.local
            .write_watch_state(&k, &serde_json::to_string(&s).expect("plain data"))
    };
    match idle::decide(state, seen, last_use, now, window) {
        Decision::Done(why) => Ok(looked(true, format!("{name}: {why}; nothing to watch"), "")),
        Decision::InUse(why) => {
            note(now, &why)?;
            Ok(looked(false, format!("{name}: in use ({why})"), ""))
        }
        Decision::Wait { idle, left } => {
            note(last_use, "unused")?;
            let words = format!(
                "{name}: unused for {}; saved in {} unless used",
                dur(idle),
                dur(left)
            );
            Ok(looked(false, words, "unused"))
        }
        Decision::Save { idle } => {
            // One more look right before: a user who just connected must
            // not lose what they type.
            if let Some(why) = idle::in_use(ctx, name) {
                note(now, &why)?;
                return Ok(looked(false, format!("{name}: in use ({why})"), ""));
            }
            ctx.ui.line(format_args!(
                "{name}: unused for {}; saving it to disk",
                dur(idle)
            ));
            save::save(ctx, name)?;
            Ok(looked(
                true,
                format!("{name}: saved; nothing more to watch"),
                "",
            ))
        }
    }
}

/// How often the watcher looks: a tenth of the window, between 2 and 30
/// seconds.
fn interval(window: AutoSave) -> Duration {
    let secs = match window {
        AutoSave::Off => 30,
        AutoSave::After(w) => (w.as_secs() / 10).clamp(2, 30),
    };
    Duration::from_secs(secs)
}

/// The idle watcher `connect` starts (internal).
#[derive(Debug, Args)]
#[command(hide = true)]
pub struct WatchArgs {
    pub name: VmName,
    /// Look once, act, and exit.
    #[arg(long)]
    pub once: bool,
}

pub fn run(ctx: &Ctx, args: WatchArgs) -> Result<()> {
    let (name, once) = (&args.name, args.once);
    let k = idle::key(ctx, name);
    if once {
        let l = look(ctx, name, 0)?;
        ctx.ui.line(l.said);
        if l.done {
            ctx.local.remove_watch_state(&k);
        }
        return Ok(());
    }
    interrupt::catch();
    interrupt::ignore_hangup();
    let Some(_lock) = ctx.local.lock_watcher(&k, Duration::from_secs(3))? else {
        ctx.ui
            .line(format_args!("{name}: another watcher is running"));
        return Ok(());
    };
    ctx.ui.line(format_args!(
        "{name}: watching (pid {}, auto-save {})",
        std::process::id(),
        idle::setting(ctx, name)?
    ));
    let mut events = console_events(ctx, name, &k);
    let mut seen_last = String::new();
    let res = loop {
        // A stream that ended (libvirtd restarted, say) starts again; what
        // happened in between is not known, so the count starts afresh.
        if let Some(st) = events.as_ref().and_then(|e| e.try_wait().ok().flatten()) {
            ctx.ui.line(format_args!(
                "{name}: the graphics event stream ended ({st}); starting it again"
            ));
            events = console_events(ctx, name, &k);
        }
        let l = match look(ctx, name, std::process::id()) {
            Ok(l) => l,
            Err(e) => break Err(e),
        };
        if l.seen != seen_last || l.done {
            ctx.ui.line(l.said);
            seen_last = l.seen;
        }
        if l.done {
            break Ok(());
        }
        let until = std::time::Instant::now() + interval(l.window);
        while std::time::Instant::now() < until && !interrupt::happened() {
            std::thread::sleep(Duration::from_millis(200));
        }
        if interrupt::happened() {
            ctx.ui.line(format_args!("{name}: stopped (signal)"));
            break Ok(());
        }
    };
    drop(events);
    ctx.local.remove_watch_state(&k);
    res
}

/// The VM's graphics events, kept in `KEY.consoles` for
/// [`idle::in_use`] while the watcher runs. Without them (virsh cannot
/// start) the watcher goes on with what it sees in the kernel's tables.
fn console_events(ctx: &Ctx, name: &str, k: &str) -> Option<crate::exec::Tied> {
    match ctx
        .local
        .start_console_events(k, &ctx.virsh.domain_events(name))
    {
        Ok(t) => Some(t),
        Err(e) => {
            ctx.ui.line(format_args!(
                "{name}: consoles handed over by libvirt are not seen: {e:#}"
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_at_a_tenth_of_the_window() {
        let w = |s| AutoSave::After(Duration::from_secs(s));
        assert_eq!(interval(w(20)), Duration::from_secs(2));
        assert_eq!(interval(w(10)), Duration::from_secs(2));
        assert_eq!(interval(w(120)), Duration::from_secs(12));
        assert_eq!(interval(w(900)), Duration::from_secs(30));
        assert_eq!(dur(0), "0s");
        assert_eq!(dur(260), "4m20s");
    }

    // The save decision against the fake host and libvirt (ctx/fake.rs):
    // what one look sees -> saved or not, and what it notes.

    use crate::vm::ctx::fake::{Fake, virsh_fixture as fixture};

    /// The fake's clock (`BKT_VM_NOW`).
    const NOW: u64 = 1767312000;

    /// `w` running, auto-save after 15 minutes, last used `ago` seconds
    /// ago (None: never noted), nothing attached unless the test says so.
    fn running_w(ago: Option<u64>) -> Fake {
        let f = Fake::new();
        f.ctx
            .manifest
            .update(|m| {
                let mut e = crate::manifest::VmEntry::for_tests("w");
                e.auto_save = Some(900);
                m.vms.push(e);
                Ok(())
            })
            .unwrap();
        if let Some(ago) = ago {
            let s = State {
                pid: 1,
                last_use: NOW - ago,
                checked: NOW - 60,
                seen: "unused".into(),
            };
            let k = idle::key(&f.ctx, "w");
            let json = serde_json::to_string(&s).unwrap();
            f.ctx.local.write_watch_state(&k, &json).unwrap();
        }
        f.libvirt
            .ok("domstate", "running (booted)\n")
            .ok("dominfo w", &fixture("dominfo-running.txt"))
            .ok("managedsave w", "");
        f
    }

    fn noted(f: &Fake) -> State {
        let k = idle::key(&f.ctx, "w");
        serde_json::from_str(&f.ctx.local.read_watch_state(&k).unwrap()).unwrap()
    }

    fn saved(f: &Fake) -> bool {
        f.libvirt
            .calls()
            .iter()
            .any(|c| c.starts_with("managedsave"))
    }

    #[test]
    fn unused_past_the_window_it_is_saved() {
        let f = running_w(Some(1000));
        f.libvirt.fails("domdisplay", 1, "error: no graphics\n");
        let l = look(&f.ctx, "w", 1).unwrap();
        assert!(l.done);
        assert!(saved(&f));
        let calls = f.libvirt.calls();
        assert_eq!(
            calls.iter().filter(|c| c.starts_with("domdisplay")).count(),
            2,
            "one more look right before saving: {calls:#?}"
        );
        assert!(
            f.said().contains("w: unused for 16m40s; saving it to disk"),
            "{}",
            f.said()
        );
        assert_eq!(l.said, "w: saved; nothing more to watch");
    }

    #[test]
    fn within_the_window_it_waits_and_notes_the_last_use() {
        let f = running_w(Some(300));
        f.libvirt.fails("domdisplay", 1, "error: no graphics\n");
        let l = look(&f.ctx, "w", 7).unwrap();
        assert!(!l.done);
        assert!(!saved(&f));
        assert_eq!(l.said, "w: unused for 5m; saved in 10m unless used");
        let s = noted(&f);
        assert_eq!((s.pid, s.last_use, s.checked), (7, NOW - 300, NOW));
    }

    #[test]
    fn a_first_look_starts_the_window_now() {
        let f = running_w(None);
        f.libvirt.fails("domdisplay", 1, "error: no graphics\n");
        let l = look(&f.ctx, "w", 1).unwrap();
        assert!(!saved(&f));
        assert!(l.said.contains("saved in 15m"), "{}", l.said);
        assert_eq!(noted(&f).last_use, NOW);
    }

    #[test]
    fn a_remote_desktop_connection_to_the_guest_keeps_it() {
        let f = running_w(Some(1000));
        let a = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
        f.libvirt.ok(
            "domifaddr w --source lease",
            &fixture("domifaddr-lease.txt"),
        );
        let ip = crate::tools::virsh::parse_domifaddr(&fixture("domifaddr-lease.txt")).unwrap();
        let guest = ip.iter().find(|i| i.is_ipv4()).unwrap().to_string();
        f.host
            .established(&[(a("192.0.2.1:50000"), a(&format!("{guest}:3389")))]);
        let l = look(&f.ctx, "w", 1).unwrap();
        assert!(!l.done);
        assert!(!saved(&f));
        assert!(
            l.said
                .contains("in use (a Remote Desktop connection from 192.0.2.1)"),
            "{}",
            l.said
        );
        assert_eq!(noted(&f).last_use, NOW, "the window starts again");
    }

    #[test]
    fn a_viewer_that_attaches_before_the_save_keeps_it() {
        let f = running_w(Some(1000));
        let a = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
        f.host
            .established(&[(a("127.0.0.1:5900"), a("127.0.0.1:40000"))]);
        // Not attached at the first look, attached at the one before saving.
        f.libvirt
            .once("domdisplay", 1, "error: no graphics\n")
            .ok("domdisplay", &fixture("domdisplay-spice.txt"));
        let l = look(&f.ctx, "w", 1).unwrap();
        assert!(!saved(&f));
        assert!(!l.done);
        assert!(l.said.contains("a SPICE viewer is attached"), "{}", l.said);
    }

    #[test]
    fn a_vm_that_is_off_is_not_watched() {
        let f = Fake::new();
        f.libvirt.ok("domstate", "shut off (shutdown)\n");
        let l = look(&f.ctx, "w", 1).unwrap();
        assert!(l.done);
        assert!(!saved(&f));
        assert_eq!(l.said, "w: the VM is shut off; nothing to watch");
    }
}
