//! Idle VMs give their memory back, on the real stack: the Windows-shaped
//! VM (UEFI variables, TPM 2.0) survives `stop --save` and `start`; the
//! tiny guest with a 20 s auto-save is not saved while a connection to its
//! port 3389 is held, is saved once it is dropped, and `connect` restores
//! it and reaches its port.

use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::guests::{Xvfb, define_tiny, wait_until_up};
use crate::harness::*;
use crate::windows::small_vm;

fn image(name: &str) -> std::path::PathBuf {
    Path::new("/var/lib/libvirt/qemu/save").join(format!("{name}.save"))
}

#[test]
#[ignore = "needs the real virt stack: run scripts/test-all.sh"]
fn a_windows_shaped_vm_survives_save_and_restore() {
    let name = "e2e-savewin";
    let env = Env::new("save_windows", &[name]);
    let (_, nvram, tpm) = small_vm(&env, name);
    let permall = tpm.join("tpm2/tpm2-00.permall");
    assert!(permall.exists(), "{}", permall.display());

    let (stdout, _) = text(&env.bkt(&["vm", "stop", name, "--save"]));
    assert!(
        stdout.starts_with(&format!("Saved {name} to disk (")),
        "{stdout}"
    );
    assert_eq!(domstate(name), "shut off (saved)");
    assert!(image(name).exists());
    assert!(
        !Path::new(&format!("/run/libvirt/qemu/{name}.pid")).exists(),
        "QEMU is gone: its memory is the host's"
    );
    assert!(permall.exists() && Path::new(&nvram).exists());
    // status says so, with the image's size and the VM's auto-save.
    let v: serde_json::Value =
        serde_json::from_str(&ok(&env.bkt(&["vm", "status", name, "--json"]))).unwrap();
    let row = &v["vms"][0];
    assert_eq!(row["state"], "saved", "{v}");
    assert_eq!(row["saved_bytes"], fs::metadata(image(name)).unwrap().len());
    assert_eq!(row["auto_save"], "15m", "new VMs get 15 minutes");

    // A snapshot now would not match the saved memory.
    let out = env.bkt(&["vm", "snapshot", "create", name, "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("is saved to disk"),
        "{}",
        text(&out).1
    );

    let (stdout, _) = text(&env.bkt(&["vm", "start", name]));
    assert!(
        stdout.starts_with(&format!("Restored {name} from disk in ")),
        "{stdout}"
    );
    assert_eq!(domstate(name), "running (restored)");
    assert!(
        !image(name).exists(),
        "libvirt drops the image once restored"
    );
    // Its TPM came back with it: the emulator runs with the same state.
    assert!(permall.exists());
    let xml = ok(&virsh(&["dumpxml", name]));
    assert!(
        xml.contains("<backend type='emulator' version='2.0'"),
        "{xml}"
    );
    let swtpm_pid = fs::read_dir("/run/libvirt/qemu/swtpm")
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| {
            let f = e.file_name().to_string_lossy().into_owned();
            f.contains(name) && f.ends_with(".pid")
        })
        .expect("a running swtpm for the restored VM");
    let pid = fs::read_to_string(swtpm_pid.path()).unwrap();
    assert!(Path::new(&format!("/proc/{}", pid.trim())).exists());

    // Saved again, destroy takes the saved memory along.
    ok(&env.bkt(&["vm", "stop", name, "--save"]));
    let (stdout, _) = text(&env.bkt(&["vm", "destroy", name, "--yes"]));
    assert!(
        stdout.contains(&format!(
            "  • removed        saved memory {}",
            image(name).display()
        )),
        "{stdout}"
    );
    assert!(!image(name).exists());
    assert!(!defined(name));
}

#[test]
#[ignore = "needs the real virt stack: run scripts/test-all.sh"]
fn an_idle_guest_is_saved_unless_a_connection_holds_it_and_connect_restores_it() {
    let name = "e2e-idle";
    let env = Env::new("idle_save", &[name]);
    // Its port 3389 keeps a connection open, as Remote Desktop does.
    define_tiny(&env, name, 1, " bkt.rdp=hold");
    let ip = wait_until_up(&env, name);
    fs::write(
        env.manifest(),
        serde_json::json!({"vms": [{"name": name, "type": "windows11", "disk": "",
            "created": "2026-11-28", "uri": URI, "rdp_user": "anna"}], "files": []})
        .to_string(),
    )
    .unwrap();
    // NAME@ the first 16 hex digits of the SHA-256 of qemu:///system.
    let log = env
        .cache()
        .join(format!("bkt/vm/{name}@1021ab2bc87a43a7.watch.log"));
    let watch_log = || fs::read_to_string(&log).unwrap_or_default();

    // A Remote Desktop client started by hand: a connection to 3389.
    let held = TcpStream::connect((ip.as_str(), 3389)).unwrap();
    let (stdout, _) = text(&env.bkt(&["vm", "config", name, "--auto-save", "20s"]));
    assert_eq!(
        stdout,
        format!(
            "{name}: saved to disk after 20s unused\n{name} is saved to disk after 20s unused \
             (bkt vm config {name} --auto-save off turns that off)\n"
        )
    );
    in_use_until_dropped(
        name,
        &format!("{name}: in use (a Remote Desktop connection from "),
        held,
        &watch_log,
    );
    let said = watch_log();
    assert!(said.contains(&format!("{name}: unused for ")), "{said}");
    assert!(said.contains("saving it to disk"), "{said}");

    // connect restores it and reaches its port (a stand-in client notes
    // that it was started).
    let bin = env.work.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    let started = env.work.path().join("client-started");
    let client = bin.join("xfreerdp3");
    fs::write(
        &client,
        format!(
            "#!/bin/sh\ncase \"$*\" in */version*) echo 'This is FreeRDP version 3.10.3 (n/a)'; \
             exit 0 ;; esac\necho \"$*\" >'{}'\ncat >/dev/null\n",
            started.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&client, fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = env.bkt_env(
        &env.manifest(),
        &["vm", "connect", name, "--rdp", "--timeout", "120"],
        &[
            ("PATH", &path),
            ("DISPLAY", ":99"),
            ("BKT_VM_RDP_PASSWORD", "not-a-real-password"),
            ("BKT_VM_RDP_CLIENT", "xfreerdp3"),
        ],
    );
    let (stdout, _) = text(&out);
    ok(&out);
    assert!(
        stdout.starts_with(&format!(
            "{name} is saved to disk; restoring it\nRestored {name} from disk in "
        )),
        "{stdout}"
    );
    assert!(
        fs::read_to_string(&started)
            .unwrap()
            .starts_with(&format!("/v:{ip} /u:anna ")),
        "the client was started for the restored guest"
    );
    assert_eq!(domstate(name), "running (restored)");
    // connect left a watcher behind again; turning auto-save off ends it.
    assert!(
        stdout.ends_with(&format!(
            "{name} is saved to disk after 20s unused (bkt vm config {name} --auto-save off \
             turns that off)\n"
        )),
        "{stdout}"
    );
    ok(&env.bkt(&["vm", "config", name, "--auto-save", "off"]));
    // Generous: under a machine busy with builds a virsh call of the
    // watcher's has been seen to wait seconds for the disk.
    let ended = format!("{name}: auto-save is off; nothing to watch");
    let since = Instant::now();
    while !watch_log().trim_end().ends_with(&ended) && since.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(200));
    }
    if !watch_log().trim_end().ends_with(&ended) {
        // What the last watcher is doing: its children and where it waits.
        let log = watch_log();
        let pid = log
            .rsplit_once("watching (pid ")
            .and_then(|(_, rest)| rest.split(',').next())
            .unwrap_or_default()
            .to_string();
        let ps = run(
            "ps",
            &[
                "-o",
                "pid,ppid,pgid,sid,stat,etime,wchan:20,cmd",
                "-p",
                &pid,
                "--ppid",
                &pid,
            ],
        );
        // Each of its threads: the system call it waits in, and the kernel
        // stack.
        let mut threads = String::new();
        for t in fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let p = t.path();
            let read = |f: &str| fs::read_to_string(p.join(f)).unwrap_or_default();
            threads.push_str(&format!(
                "thread {:?} {}syscall {}{}\n",
                t.file_name(),
                read("comm"),
                read("syscall"),
                read("stack")
            ));
        }
        panic!(
            "the watcher did not end:\n{log}\n$ ps -p {pid} --ppid {pid}\n{}\n{threads}",
            String::from_utf8_lossy(&ps.stdout)
        );
    }
    ok(&env.bkt(&["vm", "destroy", name, "--yes"]));
    assert!(!defined(name));
}

/// A console libvirt hands over by fd (`virt-viewer --attach`: no TCP
/// connection anywhere) keeps the guest running past its idle window; once
/// it closes, the guest is saved.
#[test]
#[ignore = "needs the real virt stack: run scripts/test-all.sh"]
fn a_console_libvirt_hands_over_keeps_an_idle_guest_running_until_it_closes() {
    let name = "e2e-console";
    let env = Env::new("idle_console", &[name]);
    define_tiny(&env, name, 1, "");
    wait_until_up(&env, name);
    fs::write(
        env.manifest(),
        serde_json::json!({"vms": [{"name": name, "type": "windows11", "disk": "",
            "created": "2026-11-28", "uri": URI}], "files": []})
        .to_string(),
    )
    .unwrap();
    let log = env
        .cache()
        .join(format!("bkt/vm/{name}@1021ab2bc87a43a7.watch.log"));
    let watch_log = || fs::read_to_string(&log).unwrap_or_default();
    // The watcher first: its event stream sees consoles that open after it.
    ok(&env.bkt(&["vm", "config", name, "--auto-save", "20s"]));
    wait_for("the watcher's first look", Duration::from_secs(120), || {
        watch_log()
            .contains(&format!("{name}: unused for "))
            .then_some(())
    });
    let x = Xvfb::start();
    let viewer = Stopped(
        std::process::Command::new("virt-viewer")
            .args(["--connect", URI, "--attach", name])
            .env("DISPLAY", &x.display)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("virt-viewer"),
    );
    // No TCP connection holds it: the console is all there is.
    in_use_until_dropped(
        name,
        &format!("{name}: in use (a console is open (libvirt's graphics events))"),
        viewer,
        &watch_log,
    );
    // In use while the console was open, saved after it closed.
    let said = watch_log();
    let seen = said.find("in use (a console is open (libvirt's graphics events))");
    let saving = said.find("saving it to disk");
    assert!(seen.is_some() && seen < saving, "{said}");
    ok(&env.bkt(&["vm", "destroy", name, "--yes"]));
    assert!(!defined(name));
}

/// With auto-save at 20 s: the watcher says `in_use` while `holder` (a
/// connection, a console) lives, and the guest runs through a whole window
/// and two looks more; once `holder` is dropped the watcher saves the guest
/// and ends.
fn in_use_until_dropped<H>(name: &str, in_use: &str, holder: H, watch_log: &dyn Fn() -> String) {
    wait_for(
        "the watcher to see it in use",
        Duration::from_secs(120),
        || watch_log().contains(in_use).then_some(()),
    );
    // A duration the test is about (the idle window), not a wait for an
    // event: the guest must stay up all through it.
    let held_since = Instant::now();
    while held_since.elapsed() < Duration::from_secs(25) {
        assert_eq!(domstate(name), "running (booted)", "{}", watch_log());
        std::thread::sleep(Duration::from_secs(1));
    }
    drop(holder);
    wait_for(
        "the watcher to save the guest once unused",
        Duration::from_secs(90),
        || (domstate(name) == "shut off (saved)").then_some(()),
    );
    // The state flips before `virsh managedsave` returns to the watcher:
    // its last words come a moment later.
    wait_for("the watcher to end", Duration::from_secs(120), || {
        watch_log()
            .trim_end()
            .ends_with(&format!("{name}: saved; nothing more to watch"))
            .then_some(())
    });
}
