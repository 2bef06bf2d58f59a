//! Saving idle VMs to disk: `stop --save`, the restore in `start`, the
//! refusals, `config --auto-save`, and the idle watcher's decisions, one
//! look at a time (`watch --once`) with the clock in `BKT_VM_NOW`.

use std::fs::{self, File};
use std::net::{TcpListener, TcpStream};

use crate::harness::{URI, World, fixture, mentions, poll_until, rdp_listener, virsh_argv};

fn running(w: &World) {
    w.rule("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-running.txt"));
}

/// A world whose saves go to `save/`, with `windows` in the manifest.
fn world(auto_save: Option<u64>) -> World {
    let w = World::new();
    let save = w.p("save");
    let w = w.env("BKT_VM_SAVE_DIR", &save);
    fs::create_dir_all(w.path("save")).unwrap();
    let mut entry = serde_json::json!({
        "name": "windows", "type": "windows11", "disk": w.p("images/windows.qcow2"),
        "created": "2026-11-28", "uri": URI,
    });
    if let Some(s) = auto_save {
        entry["auto_save"] = s.into();
    }
    w.write_manifest(serde_json::json!({"vms": [entry], "files": []}));
    w
}

/// The digest in the names of a VM's files for `qemu:///system`: the
/// first 16 hex digits of its SHA-256 (`printf qemu:///system | sha256sum`).
pub const SYSTEM: &str = "1021ab2bc87a43a7";

/// What the fake managedsave leaves: libvirt's saved image, 3 MiB.
fn saving_works(w: &World) {
    w.rule("virsh", "* managedsave windows")
        .out(&fixture("virsh/managedsave.txt"))
        .sh(&format!(
            "/usr/bin/truncate -s 3M '{}'\n",
            w.p("save/windows.save")
        ));
}

fn seconds(text: &str) -> String {
    regex::Regex::new(r"in \d+s")
        .unwrap()
        .replace_all(text, "in Ns")
        .into_owned()
}

#[test]
fn stop_save_saves_the_memory_and_says_how_to_get_it_back() {
    let w = world(None);
    running(&w);
    w.rule("virsh", "* dominfo windows")
        .out(&fixture("virsh/dominfo-running.txt"));
    saving_works(&w);
    let r = w.bkt(&["vm", "stop", "windows", "--save"]);
    r.success();
    assert_eq!(
        seconds(&r.stdout()),
        "Saved windows to disk (3 MiB) in Ns: its memory is the host's again\n  \
         `bkt vm start windows` or `bkt vm connect windows` restores it where it was\n"
    );
    assert_eq!(
        w.calls(),
        [
            virsh_argv(&["domstate", "--reason", "windows"]),
            virsh_argv(&["dominfo", "windows"]),
            virsh_argv(&["managedsave", "windows"]),
        ]
    );
}

#[test]
fn stop_save_of_a_vm_that_is_off_or_saved_already_does_nothing() {
    let w = world(None);
    w.rule("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-saved.txt"));
    w.rule("virsh", "* dominfo windows")
        .out(&fixture("virsh/dominfo-saved.txt"))
        .times(1);
    w.rule("virsh", "* dominfo windows")
        .out(&fixture("virsh/dominfo-shutoff.txt"));
    let r = w.bkt(&["vm", "stop", "windows", "--save"]);
    r.success();
    assert_eq!(r.stdout(), "windows is already saved to disk\n");
    let r = w.bkt(&["vm", "stop", "windows", "--save"]);
    r.success();
    assert_eq!(
        r.stdout(),
        "windows is shut off; there is nothing to save\n"
    );
    assert!(!w.calls().iter().any(|c| mentions(c, "managedsave")));
}

#[test]
fn stop_save_without_room_for_the_memory_changes_nothing() {
    let w = world(None);
    running(&w);
    // The recorded dominfo, with a petabyte of memory in use.
    w.rule("virsh", "* dominfo windows")
        .out(&fixture("virsh/dominfo-running.txt").replace(
            "Used memory:    2097152 KiB",
            "Used memory:    1099511627776 KiB",
        ));
    let r = w.bkt(&["vm", "stop", "windows", "--save"]);
    r.failure();
    let save = w.p("save");
    let stderr = regex::Regex::new(r"\([0-9.]+ [KMGT]iB free\)")
        .unwrap()
        .replace(&r.stderr(), "(N free)")
        .into_owned();
    assert_eq!(
        stderr,
        format!(
            "error: cannot save windows to disk: its memory (1024 TiB) does not fit in {save} (N free)\n\
             hint: free some space there, or shut it down instead: bkt vm stop windows\n"
        )
    );
    assert!(!w.calls().iter().any(|c| mentions(c, "managedsave")));
}

#[test]
fn a_failed_save_says_the_vm_still_runs() {
    let w = world(None);
    running(&w);
    w.rule("virsh", "* dominfo windows")
        .out(&fixture("virsh/dominfo-running.txt"));
    w.rule("virsh", "* managedsave windows")
        .err(&fixture("virsh/managedsave-not-running.txt"))
        .code(1);
    let r = w.bkt(&["vm", "stop", "windows", "--save"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        format!(
            "saving windows's memory (2 GiB) to disk …\n\
             error: cannot save windows to disk; it is still running\n\
             caused by: `virsh -c {URI} managedsave windows` failed (exit status: 1)\n--- stderr\n{}",
            fixture("virsh/managedsave-not-running.txt")
        )
    );
}

#[test]
fn save_and_force_exclude_each_other() {
    let w = world(None);
    let r = w.bkt(&["vm", "stop", "windows", "--save", "--force"]);
    assert_eq!(r.code(), 2);
    assert!(r.stderr().contains("cannot be used with"), "{}", r.stderr());
    assert!(w.calls().is_empty());
}

#[test]
fn start_restores_a_saved_vm_and_sets_its_clock() {
    let w = world(None);
    for _ in 0..3 {
        w.rule("virsh", "* domstate --reason windows")
            .out(&fixture("virsh/domstate-reason-saved.txt"))
            .times(1);
        w.rule("virsh", "* domstate --reason windows")
            .out(&fixture("virsh/domstate-reason-restored.txt"))
            .times(1);
    }
    w.rule("virsh", "* domstats *").out("");
    w.rule("virsh", "* dominfo windows")
        .out(&fixture("virsh/dominfo-saved.txt"));
    w.rule("virsh", "* start windows")
        .out("Domain 'windows' started\n\n");
    w.rule("virsh", "* domtime windows --sync").out("").times(1);
    w.rule("virsh", "* domtime windows --sync")
        .err(&fixture("virsh/domtime-sync-no-agent.txt"))
        .code(1)
        .times(1);
    // Any other failure is shown as virsh said it (here the recorded
    // answer of a call to a VM that is not running).
    w.rule("virsh", "* domtime windows --sync")
        .err(&fixture("virsh/managedsave-not-running.txt"))
        .code(1);
    let r = w.bkt(&["vm", "start", "windows"]);
    r.success();
    assert_eq!(
        seconds(&r.stdout()),
        "Restored windows from disk in Ns\nSet windows's clock from the host's\n"
    );
    assert_eq!(
        w.calls()[2..],
        [
            virsh_argv(&["dominfo", "windows"]),
            virsh_argv(&["start", "windows"]),
            virsh_argv(&["domstate", "--reason", "windows"]),
            virsh_argv(&["domtime", "windows", "--sync"]),
        ]
    );
    // No guest agent: said, and the start still succeeds.
    let r = w.bkt(&["vm", "start", "windows"]);
    r.success();
    assert_eq!(
        seconds(&r.stdout()),
        "Restored windows from disk in Ns\nwindows's clock is behind by the time it was saved \
         until Windows sets it again (the guest agent did not answer; the virtio guest tools \
         install it)\n"
    );
    let r = w.bkt(&["vm", "start", "windows"]);
    r.success();
    assert_eq!(
        seconds(&r.stdout()),
        "Restored windows from disk in Ns\ncould not set windows's clock: error: Requested \
         operation is not valid: domain is not running\n"
    );
}

#[test]
fn an_unusable_saved_image_is_said_not_hidden() {
    // libvirt discards a damaged saved image and boots afresh: start then
    // says so, and sets no clock.
    let w = world(None);
    w.rule("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-saved.txt"))
        .times(1);
    w.rule("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-running.txt"));
    w.rule("virsh", "* domstats *").out("");
    w.rule("virsh", "* dominfo windows")
        .out(&fixture("virsh/dominfo-saved.txt"));
    w.rule("virsh", "* start windows")
        .out(&fixture("virsh/start-unusable-save.txt"));
    let r = w.bkt(&["vm", "start", "windows"]);
    r.success();
    assert_eq!(
        r.stdout(),
        "windows's saved memory could not be used (libvirt discarded it): Windows booted \
         afresh, as after a power cut; work that was not saved in it is lost\n"
    );
    assert!(!w.calls().iter().any(|c| mentions(c, "domtime")));
}

#[test]
fn snapshots_refuse_a_saved_vm() {
    let w = world(None);
    w.rule("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-saved.txt"));
    w.rule("virsh", "* dominfo windows")
        .out(&fixture("virsh/dominfo-saved.txt"));
    for (args, what) in [
        (vec!["create", "windows", "clean"], "take a snapshot"),
        (
            vec!["revert", "windows", "clean", "--yes"],
            "revert it to a snapshot",
        ),
    ] {
        let mut argv = vec!["vm", "snapshot"];
        argv.extend(args);
        let r = w.bkt(&argv);
        r.failure();
        assert_eq!(
            r.stderr(),
            format!(
                "error: windows is saved to disk (its memory waits in libvirt's saved image, which \
                 expects the disk as it is); cannot {what} now\n\
                 hint: start it and shut Windows down, then try again: bkt vm start windows && \
                 bkt vm stop windows\n"
            )
        );
    }
    assert!(
        w.calls()
            .iter()
            .all(|c| c[..3] == ["virsh", "-c", URI] && (c[3] == "domstate" || c[3] == "dominfo")),
        "{:?}",
        w.calls()
    );
}

#[test]
fn config_shows_and_changes_auto_save() {
    let w = world(Some(900));
    w.rule("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-shutoff.txt"));
    let r = w.bkt(&["vm", "config", "windows"]);
    r.success();
    // An entry written before bkt kept share and clipboard: files, on.
    assert_eq!(
        r.stdout(),
        "auto-save   15m (no watcher now: the next connect starts one)\n\
         share       files (run shares the directory of each file it opens, nothing else)\n\
         clipboard   on\n"
    );
    let r = w.bkt(&["vm", "config", "windows", "--auto-save", "1h30m"]);
    r.success();
    assert_eq!(r.stdout(), "windows: saved to disk after 1h30m unused\n");
    assert_eq!(w.manifest()["vms"][0]["auto_save"], 5400);
    let r = w.bkt(&["vm", "config", "windows", "--json"]);
    r.success();
    let v: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"name": "windows", "auto_save": 5400, "watcher": false,
            "share": "files", "clipboard": true})
    );
    let r = w.bkt(&["vm", "config", "windows", "--auto-save", "off"]);
    r.success();
    assert_eq!(r.stdout(), "windows: auto-save is off\n");
    assert_eq!(w.manifest()["vms"][0]["auto_save"], 0);
    assert_eq!(
        w.bkt(&["vm", "config", "windows"]).stdout(),
        "auto-save   off\nshare       files (run shares the directory of each file it opens, \
         nothing else)\nclipboard   on\n"
    );
}

#[test]
fn config_refuses_bad_times_and_vms_bkt_did_not_make() {
    let w = world(Some(900));
    let before = w.manifest();
    let r = w.bkt(&["vm", "config", "windows", "--auto-save", "5s"]);
    assert_eq!(r.code(), 2);
    assert!(
        r.stderr().contains(
            "invalid duration \"5s\": at least 10s (saving takes a moment; off turns it off)"
        ),
        "{}",
        r.stderr()
    );
    assert!(w.calls().is_empty());
    w.rule("virsh", "* domstate --reason hand")
        .out(&fixture("virsh/domstate-reason-running.txt"));
    let r = w.bkt(&["vm", "config", "hand", "--auto-save", "20m"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        format!(
            "error: hand was not made by bkt on {URI} (it is not in the manifest), so bkt keeps \
             no settings for it\nhint: bkt vm status lists the VMs bkt made\n"
        )
    );
    assert_eq!(w.manifest(), before);
}

/// One look of the watcher at `now`.
pub fn look(w: &World, now: u64) -> String {
    let mut c = w.command(&["vm", "watch", "windows", "--once"]);
    c.env("BKT_VM_NOW", now.to_string());
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// What the watcher says of a VM a bkt command is at work on.
pub const IN_USE_BY_BKT: &str =
    "windows: in use (a client or a command of bkt's is at work on it)\n";

/// `bkt ARGS` until its held fake call begins (`what` names it if it
/// never does); a look then says the VM is in use; the call let go, the
/// command ends well.
pub fn in_use_while_held(w: &World, args: &[&str], what: &str) {
    let child = w.command(args).spawn().unwrap();
    w.wait_held(what);
    assert_eq!(look(w, 5000), IN_USE_BY_BKT);
    w.release();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `windows`, the manifest's first VM, is saved after 15 minutes unused.
pub fn auto_save_on(w: &World) {
    let mut m = w.manifest();
    m["vms"][0]["auto_save"] = 900.into();
    w.write_manifest(m);
}

fn state(w: &World) -> Option<serde_json::Value> {
    let p = w.path(&format!("home/.cache/bkt/vm/windows@{SYSTEM}.watch.json"));
    fs::read_to_string(p)
        .ok()
        .map(|t| serde_json::from_str(&t).unwrap())
}

/// Nothing uses the VM: no client lock, no connection to its Remote
/// Desktop (its address is one nothing listens on), its SPICE port
/// unattached.
pub fn unused(w: &World) {
    w.rule("virsh", "* domifaddr windows --source lease")
        .out(&fixture("virsh/domifaddr-lease.txt").replace("192.168.122.4", "127.0.0.42"));
    w.rule("virsh", "* domdisplay --type spice windows")
        .out("spice://127.0.0.1:1\n");
}

#[test]
fn the_watcher_saves_a_vm_unused_for_its_whole_window() {
    let w = world(Some(900));
    running(&w);
    unused(&w);
    w.rule("virsh", "* dominfo windows")
        .out(&fixture("virsh/dominfo-running.txt"));
    saving_works(&w);
    assert_eq!(
        look(&w, 1000),
        "windows: unused for 0s; saved in 15m unless used\n"
    );
    assert_eq!(state(&w).unwrap()["last_use"], 1000);
    assert_eq!(
        look(&w, 1600),
        "windows: unused for 10m; saved in 5m unless used\n"
    );
    assert!(!w.calls().iter().any(|c| mentions(c, "managedsave")));
    assert_eq!(
        seconds(&look(&w, 1900)),
        "windows: unused for 15m; saving it to disk\n\
         Saved windows to disk (3 MiB) in Ns: its memory is the host's again\n  \
         `bkt vm start windows` or `bkt vm connect windows` restores it where it was\n\
         windows: saved; nothing more to watch\n"
    );
    assert!(
        state(&w).is_none(),
        "a watcher that is done leaves no state"
    );
    assert_eq!(
        w.calls()
            .into_iter()
            .filter(|c| mentions(c, "managedsave"))
            .collect::<Vec<_>>(),
        [virsh_argv(&["managedsave", "windows"])]
    );
}

#[test]
fn a_client_bkt_started_keeps_the_vm_in_use() {
    let w = world(Some(900));
    running(&w);
    unused(&w);
    assert!(look(&w, 1000).starts_with("windows: unused for 0s"));
    // What connect holds while its client runs: a shared lock.
    let lock = File::create(w.path(&format!("home/.cache/bkt/vm/windows@{SYSTEM}.inuse"))).unwrap();
    lock.lock_shared().unwrap();
    assert_eq!(look(&w, 5000), IN_USE_BY_BKT);
    assert_eq!(
        state(&w).unwrap()["last_use"],
        5000,
        "the idle time starts again"
    );
    drop(lock);
    assert_eq!(
        look(&w, 5060),
        "windows: unused for 1m; saved in 14m unless used\n"
    );
}

#[test]
fn a_remote_desktop_connection_keeps_the_vm_in_use() {
    let (listener, port) = rdp_listener("127.0.0.43");
    let w = world(Some(900)).rdp_port(port);
    running(&w);
    w.rule("virsh", "* domifaddr windows --source lease")
        .out(&fixture("virsh/domifaddr-lease.txt").replace("192.168.122.4", "127.0.0.43"));
    w.rule("virsh", "* domdisplay --type spice windows")
        .out("spice://127.0.0.1:1\n");
    let client = TcpStream::connect(("127.0.0.43", port)).unwrap();
    let (_server, _) = listener.accept().unwrap();
    assert_eq!(
        look(&w, 1000),
        "windows: in use (a Remote Desktop connection from 127.0.0.1)\n"
    );
    drop(client);
    drop(_server);
    // The connection is gone (the kernel may keep it in TIME_WAIT, which is
    // not established).
    assert_eq!(
        look(&w, 1100),
        "windows: unused for 1m40s; saved in 13m20s unless used\n"
    );
}

#[test]
fn a_spice_viewer_keeps_the_vm_in_use_even_at_the_last_look() {
    let w = world(Some(900));
    running(&w);
    w.rule("virsh", "* domifaddr windows --source lease")
        .out(&fixture("virsh/domifaddr-lease-none.txt"));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Unattached at the first look of the last round, attached at the
    // look right before saving.
    w.rule("virsh", "* domdisplay --type spice windows")
        .out("spice://127.0.0.1:1\n")
        .times(2);
    w.rule("virsh", "* domdisplay --type spice windows")
        .out(&format!("spice://127.0.0.1:{port}\n"));
    let _client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (_server, _) = listener.accept().unwrap();
    assert!(look(&w, 1000).starts_with("windows: unused for 0s"));
    assert_eq!(
        look(&w, 1900),
        "windows: in use (a SPICE viewer is attached)\n"
    );
    assert!(!w.calls().iter().any(|c| mentions(c, "managedsave")));
    assert_eq!(state(&w).unwrap()["last_use"], 1900);
}

#[test]
fn the_watcher_ends_when_the_vm_is_off_gone_or_its_auto_save_is_off() {
    let w = world(Some(900));
    w.rule("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-shutoff.txt"))
        .times(1);
    crate::lifecycle::nosuch(&w, "windows");
    assert_eq!(
        look(&w, 1000),
        "windows: the VM is shut off; nothing to watch\n"
    );
    assert_eq!(
        look(&w, 1000),
        "windows: the VM is gone; nothing to watch\n"
    );
    let w = world(Some(0));
    running(&w);
    assert_eq!(
        look(&w, 1000),
        "windows: auto-save is off; nothing to watch\n"
    );
}

#[test]
fn one_watcher_per_vm_and_it_cleans_up_when_it_ends() {
    let w = world(Some(900));
    w.rule("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-shutoff.txt"));
    // The watcher's event stream, which runs until the watcher ends it.
    w.rule("virsh", "* event --domain windows --all --loop")
        .sh("while :; do /bin/sleep 0.1; done\n");
    let dir = w.path("home/.cache/bkt/vm");
    let lock_path = dir.join(format!("windows@{SYSTEM}.watch.lock"));
    let lock = File::create(&lock_path).unwrap();
    let inode = || std::os::unix::fs::MetadataExt::ino(&fs::metadata(&lock_path).unwrap());
    let first = inode();
    lock.lock().unwrap();
    let r = w.bkt(&["vm", "watch", "windows"]);
    r.success();
    assert_eq!(r.stdout(), "windows: another watcher is running\n");
    assert!(w.calls().is_empty());
    drop(lock);
    let r = w.bkt(&["vm", "watch", "windows"]);
    r.success();
    let out = regex::Regex::new(r"pid \d+")
        .unwrap()
        .replace(&r.stdout(), "pid N")
        .into_owned();
    assert_eq!(
        out,
        "windows: watching (pid N, auto-save 15m)\nwindows: the VM is shut off; nothing to watch\n"
    );
    // Its lock file stays, the same file: a watcher waiting for the lock
    // and the next one to open it lock one file, never two.
    assert_eq!(inode(), first);

    // A watcher that is just ending (it saved the VM that a connect at once
    // restored) lets go within a moment: the next one waits for it.
    let lock = File::create(&lock_path).unwrap();
    lock.lock().unwrap();
    let next = w.command(&["vm", "watch", "windows"]).spawn().unwrap();
    // It opened the lock file, so it is trying the lock we hold.
    let lock_path = fs::canonicalize(&lock_path).unwrap();
    poll_until("the next watcher never opened its lock", || {
        fs::read_dir(format!("/proc/{}/fd", next.id()))
            .into_iter()
            .flatten()
            .flatten()
            .any(|fd| fs::read_link(fd.path()).is_ok_and(|t| t == lock_path))
    });
    drop(lock);
    let out = next.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("windows: watching (pid "),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn vms_of_one_name_on_two_connections_share_no_file_and_no_setting() {
    // Once one file name: the URIs with their punctuation replaced. (Two
    // sockets of this machine: another machine is reached only over ssh.)
    const A: &str = "qemu+unix:///system?socket=/run/a-b";
    const B: &str = "qemu+unix:///system?socket=/run/a.b";
    let w = world(None);
    let entry = |uri: &str| {
        serde_json::json!({"name": "windows", "type": "windows11",
            "disk": "/w.qcow2", "created": "2026-11-28", "uri": uri, "auto_save": 900})
    };
    w.write_manifest(serde_json::json!({"vms": [entry(A), entry(B)], "files": []}));
    // A setting changed on B is B's alone.
    w.rule("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-shutoff.txt"))
        .times(1);
    let r = w.bkt(&["vm", "-c", B, "config", "windows", "--auto-save", "1h"]);
    r.success();
    let m = w.manifest();
    assert_eq!(
        (&m["vms"][0]["uri"], &m["vms"][0]["auto_save"]),
        (&A.into(), &900.into())
    );
    assert_eq!(
        (&m["vms"][1]["uri"], &m["vms"][1]["auto_save"]),
        (&B.into(), &3600.into())
    );
    running(&w);
    unused(&w);
    let look_on = |uri: &str, now: u64| {
        let mut c = w.command(&["vm", "-c", uri, "watch", "windows", "--once"]);
        c.env("BKT_VM_NOW", now.to_string());
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let dir = w.path("home/.cache/bkt/vm");
    // A client of the VM on A (the first 16 hex digits of A's SHA-256).
    let lock = File::create(dir.join("windows@e5dd6b8c50800cfb.inuse")).unwrap();
    lock.lock_shared().unwrap();
    assert_eq!(look_on(A, 1000), IN_USE_BY_BKT);
    assert_eq!(
        look_on(B, 1000),
        "windows: unused for 0s; saved in 1h unless used\n"
    );
    drop(lock);
    // Each its own state.
    assert!(dir.join("windows@e5dd6b8c50800cfb.watch.json").exists());
    assert!(dir.join("windows@169f3e4194afc2cd.watch.json").exists());
    assert_eq!(
        look_on(A, 1060),
        "windows: unused for 1m; saved in 14m unless used\n"
    );
}

/// Where a fixture is, for a fake that reads it.
fn fixture_path(rel: &str) -> String {
    format!("{}/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"))
}

/// The watcher's graphics event stream, as its `virsh event` wrote it.
fn consoles(w: &World) -> std::path::PathBuf {
    w.path(&format!("home/.cache/bkt/vm/windows@{SYSTEM}.consoles"))
}

#[test]
fn a_console_libvirt_hands_over_keeps_the_vm_in_use() {
    let w = world(Some(900));
    running(&w);
    unused(&w);
    // What the stream wrote while `virt-viewer --attach` opened and then
    // closed its channels (no TCP connection to see).
    fs::write(consoles(&w), fixture("virsh/event-graphics-attach.txt")).unwrap();
    assert_eq!(
        look(&w, 1000),
        "windows: in use (a console is open (libvirt's graphics events))\n"
    );
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(consoles(&w))
        .unwrap();
    std::io::Write::write_all(&mut f, fixture("virsh/event-graphics-close.txt").as_bytes())
        .unwrap();
    assert_eq!(
        look(&w, 1060),
        "windows: unused for 1m; saved in 14m unless used\n"
    );
}

#[test]
fn the_watcher_keeps_a_graphics_event_stream_for_its_life_and_no_longer() {
    let w = world(Some(900)).env("BKT_VM_NOW", "1000");
    running(&w);
    unused(&w);
    // The stream: the channels of a console open, then it runs on.
    w.rule("virsh", "* event --domain windows --all --loop")
        .sh(&format!(
            "echo $$ >\"$FAKE_DIR/events.pid\"\n/bin/cat \"{}\"\nwhile :; do /bin/sleep 0.1; done\n",
            fixture_path("virsh/event-graphics-attach.txt")
        ));
    let mut watcher = w.command(&["vm", "watch", "windows"]).spawn().unwrap();
    poll_until("the stream never wrote", || {
        fs::read_to_string(consoles(&w))
            .is_ok_and(|t| t == fixture("virsh/event-graphics-attach.txt"))
    });
    assert_eq!(
        look(&w, 1000),
        "windows: in use (a console is open (libvirt's graphics events))\n"
    );
    let stream: i32 = fs::read_to_string(w.path("events.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // However the watcher ends (here killed, so nothing of its own runs),
    // the stream ends with it.
    watcher.kill().unwrap();
    watcher.wait().unwrap();
    poll_until("the stream outlived the watcher", || {
        // Gone, or a zombie its new parent has yet to reap.
        fs::read_to_string(format!("/proc/{stream}/stat")).map_or(true, |s| {
            s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z'))
        })
    });
    assert!(
        w.calls().contains(&virsh_argv(&[
            "event", "--domain", "windows", "--all", "--loop"
        ])),
        "{:?}",
        w.calls()
    );
}
