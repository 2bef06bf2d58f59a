//! `bkt vm doctor` against fakes.

use crate::harness::{URI, World, argv, closed_port, fixture, rdp_listener};
use crate::normalize;

/// A host where everything answers, with one running VM `t1` whose disk
/// and definition live in the world, and whose address is on loopback
/// with its Remote Desktop on `port`.
fn world(ip: &str, port: u16) -> World {
    let w = World::new().env("DISPLAY", ":42").rdp_port(port);
    w.install_fake("swtpm");
    w.rule("swtpm", "--version")
        .out(&fixture("tools/swtpm-version.txt"));
    w.install_fake("virt-viewer");
    w.install_fake("xfreerdp3");
    w.rule("xfreerdp3", "/version")
        .out(&fixture("freerdp/xfreerdp3-version.txt"));
    let disk = w.p("images/t1.qcow2");
    std::fs::write(&disk, "disk").unwrap();
    let stats = fixture("virsh/domstats-running-and-shutoff.txt")
        .replace("/var/lib/libvirt/images/t1.qcow2", &disk)
        .replace("/var/lib/libvirt/images/t2.qcow2", &w.p("images/t2.qcow2"));
    w.rule("virsh", "* domstats *").out(&stats);
    w.libvirt_up();
    w.rule("virsh", "* dumpxml --inactive t1")
        .out(&fixture("virsh/dumpxml-windows-running.xml"));
    w.rule("virsh", "* dumpxml --inactive t2")
        .out("<domain><name>t2</name><os><type>hvm</type></os></domain>\n");
    w.rule("virsh", "* domifaddr t1 --source lease")
        .out(&fixture("virsh/domifaddr-lease.txt").replace("192.168.122.4", ip));
    w.write_manifest(
        serde_json::json!({"vms": [{"name": "t1", "type": "windows11",
        "disk": disk, "created": "2026-01-25", "uri": URI}]}),
    );
    w
}

#[test]
fn a_healthy_vm_and_an_unfit_one() {
    let (_rdp, port) = rdp_listener("127.0.0.60");
    let w = world("127.0.0.60", port);
    w.rule("virsh", "* qemu-agent-command t1 *")
        .out("{\"return\":{}}\n");
    let r = w.bkt(&["vm", "doctor"]);
    r.failure();
    let out = normalize(&w, &r.stdout());
    assert!(
        out.starts_with("Host\n  ✓ KVM            $TMP/kvm is usable\n"),
        "{out}"
    );
    assert!(out.contains("  ⚠ network        libvirt network \"default\" is active but does not start on boot\n    fix: virsh -c qemu:///system net-autostart default\n"), "{out}");
    assert!(out.contains("  ✓ swtpm          swtpm 0.7.1\n  ✓ tools          virsh 11.3.0, virt-install 4.1.0, qemu-img 10.0.2\n  ✓ RDP client     xfreerdp3 (FreeRDP 3.10.3)\n  ✓ SPICE viewer   virt-viewer\n"), "{out}");
    assert!(
        out.contains(&format!(
            "VM t1
  ✓ defined        running
  ✓ firmware       UEFI with Secure Boot
  ✓ TPM            TPM 2.0 emulator (tpm-crb)
  ✓ disk           $TMP/images/t1.qcow2 (200 KiB of 8 GiB allocated)
  ✓ manifest       agrees with libvirt
  ✓ auto-save      off
  ✓ IP             127.0.0.60 (lease)
  ✓ RDP            127.0.0.60:{port} answers
  ✓ guest agent    answers
"
        )),
        "{out}"
    );
    assert!(
        out.contains(
            "VM t2
  ✓ defined        shut off
  ✗ firmware       not UEFI with Secure Boot: Windows 11 will not install
    fix: recreate it with `bkt vm create windows`
  ✗ TPM            no TPM 2.0: Windows 11 requires one
    fix: recreate it with `bkt vm create windows`
  ✗ disk           $TMP/images/t2.qcow2 is missing
    fix: restore it from a backup; the VM cannot start without it
  ⚠ manifest       not in bkt's manifest (bkt did not create it)
"
        ),
        "{out}"
    );
    assert_eq!(r.stderr(), "error: 3 checks failed\n");
}

/// `t1` with auto-save on, checked alone; the world's runtime files are
/// in its cache.
fn auto_save_world(ip: &str, port: u16) -> World {
    let w = world(ip, port);
    let disk = w.p("images/t1.qcow2");
    w.write_manifest(
        serde_json::json!({"vms": [{"name": "t1", "type": "windows11",
        "disk": disk, "created": "2026-01-25", "uri": URI, "auto_save": 900}]}),
    );
    w.rule("virsh", "* qemu-agent-command t1 *")
        .out("{\"return\":{}}\n");
    std::fs::create_dir_all(w.path("home/.cache/bkt/vm")).unwrap();
    w
}

fn check(w: &World, label: &str) -> serde_json::Value {
    let r = w.bkt(&["vm", "doctor", "t1", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    let checks = v["vms"][0]["checks"].as_array().unwrap().clone();
    checks
        .into_iter()
        .find(|c| c["label"] == label)
        .unwrap_or(serde_json::Value::Null)
}

#[test]
fn auto_save_and_its_watcher() {
    let w = auto_save_world("127.0.0.62", closed_port("127.0.0.62"));
    let state = w.path(&format!(
        "home/.cache/bkt/vm/t1@{}.watch.json",
        crate::save::SYSTEM
    ));
    let lock = w.path(&format!(
        "home/.cache/bkt/vm/t1@{}.watch.lock",
        crate::save::SYSTEM
    ));
    assert_eq!(
        check(&w, "auto-save"),
        serde_json::json!({"level": "pass", "label": "auto-save", "detail": "after 15m unused"})
    );
    // Running, and nothing watches it.
    assert_eq!(
        check(&w, "watcher"),
        serde_json::json!({"level": "warn", "label": "watcher",
            "detail": "none: nothing saves t1 when idle (it was not started by bkt vm connect)",
            "fix": "start one: bkt vm config t1 --auto-save 15m"})
    );
    // A watcher that died: its state is there, its lock is free.
    std::fs::write(
        &state,
        r#"{"pid":4242,"last_use":1,"checked":2,"seen":"unused"}"#,
    )
    .unwrap();
    assert_eq!(
        check(&w, "watcher")["detail"],
        "stale: the watcher (pid 4242) ended without cleaning up; nothing saves t1 when idle"
    );
    // A live one holds the lock.
    let held = std::fs::File::create(&lock).unwrap();
    held.lock().unwrap();
    assert_eq!(
        check(&w, "watcher"),
        serde_json::json!({"level": "pass", "label": "watcher",
            "detail": "running (last seen: unused)"})
    );
}

#[test]
fn auto_save_without_room_for_the_memory_is_a_warning() {
    let w = auto_save_world("127.0.0.63", closed_port("127.0.0.63"));
    // The recorded domstats, with a petabyte of memory.
    let disk = w.p("images/t1.qcow2");
    let stats = fixture("virsh/domstats-running-and-shutoff.txt")
        .replace("/var/lib/libvirt/images/t1.qcow2", &disk)
        .replace("balloon.maximum=2097152", "balloon.maximum=1099511627776");
    w.rule_first("virsh", "* domstats *").out(&stats);
    let c = check(&w, "auto-save");
    assert_eq!(c["level"], "warn");
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .starts_with("after 15m unused, but its memory (1024 TiB) does not fit in /var/lib/libvirt/qemu/save ("),
        "{c}"
    );
    assert_eq!(
        c["fix"],
        "free space there, or turn it off: bkt vm config t1 --auto-save off"
    );
}

#[test]
fn one_vm_as_json() {
    let port = closed_port("127.0.0.61");
    let w = world("127.0.0.61", port);
    w.rule("virsh", "* qemu-agent-command t1 *")
        .err("error: Guest agent is not responding: QEMU guest agent is not connected\n")
        .code(1);
    let r = w.bkt(&["vm", "doctor", "t1", "--json"]);
    r.success();
    let v: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["vms"].as_array().unwrap().len(), 1);
    let checks = v["vms"][0]["checks"].as_array().unwrap();
    let rdp = checks.iter().find(|c| c["label"] == "RDP").unwrap();
    assert_eq!(rdp["level"], "warn");
    assert_eq!(
        rdp["detail"],
        format!("127.0.0.61:{port} refused: Remote Desktop is off")
    );
    let agent = checks.iter().find(|c| c["label"] == "guest agent").unwrap();
    assert_eq!(agent["level"], "warn");
    assert!(
        agent["fix"]
            .as_str()
            .unwrap()
            .contains("virtio-win-guest-tools")
    );
}

#[test]
fn libvirt_down_fails_the_host() {
    let w = World::new();
    std::fs::write(w.path("kvm"), "").unwrap();
    w.rule("virsh", "* version")
        .err("error: failed to connect to the hypervisor\n")
        .code(1);
    let r = w.bkt(&["vm", "doctor", "--json"]);
    r.failure();
    let v: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(v["ok"], false);
    let libvirt = v["host"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["label"] == "libvirt")
        .unwrap();
    assert_eq!(libvirt["level"], "fail");
    assert!(v["vms"].as_array().unwrap().is_empty());
}

/// A host without a display (doctor over ssh): libvirt down, so only the
/// host checks run.
fn no_display() -> World {
    let w = World::new();
    std::fs::write(w.path("kvm"), "").unwrap();
    w.rule("virsh", "* version")
        .err("error: failed to connect to the hypervisor\n")
        .code(1);
    w
}

fn rdp_client_line(w: &World) -> String {
    let r = w.bkt(&["vm", "doctor"]);
    r.failure();
    r.stdout()
        .lines()
        .find(|l| l.contains("RDP client"))
        .unwrap_or_else(|| panic!("{}", r.stdout()))
        .to_string()
}

#[test]
fn an_rdp_client_is_named_without_a_display() {
    // FreeRDP 2 prints no version without a display: only its error.
    let w = no_display();
    w.install_fake("xfreerdp");
    w.rule("xfreerdp", "/version")
        .err(&fixture("freerdp/xfreerdp2-version-no-display.txt"))
        .code(1);
    assert_eq!(
        rdp_client_line(&w),
        "  ✓ RDP client     xfreerdp (version unknown without a display)"
    );
    assert!(w.calls().contains(&argv!["xfreerdp", "/version"]));

    // FreeRDP 3 tells its version all the same.
    let w = no_display();
    w.install_fake("xfreerdp");
    w.install_fake("xfreerdp3");
    w.rule("xfreerdp3", "/version")
        .out(&fixture("freerdp/xfreerdp3-version.txt"));
    assert_eq!(
        rdp_client_line(&w),
        "  ✓ RDP client     xfreerdp3 (FreeRDP 3.10.3)"
    );

    // With a display, a FreeRDP 2 that does not tell is named by its name.
    let w = no_display().env("DISPLAY", ":42");
    w.install_fake("xfreerdp");
    w.rule("xfreerdp", "/version").code(1);
    assert_eq!(
        rdp_client_line(&w),
        "  ✓ RDP client     xfreerdp (FreeRDP 2)"
    );

    // Nothing installed.
    let w = no_display();
    assert_eq!(
        rdp_client_line(&w),
        "  ⚠ RDP client     none found: `connect` will use SPICE only"
    );
}

#[test]
fn a_freerdp_without_md4_in_the_last_log_is_a_warning() {
    let (_rdp, port) = rdp_listener("127.0.3.20");
    let w = auto_save_world("127.0.3.20", port);
    assert_eq!(check(&w, "RDP client"), serde_json::Value::Null);
    // Recorded from Debian's xfreerdp3 3.10.3 at an NLA login.
    std::fs::write(
        w.path("home/.cache/bkt/vm/t1-rdp-20261207T183612Z-4242.log"),
        fixture("freerdp/xfreerdp3-nla-md4.txt"),
    )
    .unwrap();
    let c = check(&w, "RDP client");
    let cnf = w.p("home/.cache/bkt/vm/openssl-legacy.cnf");
    assert_eq!(
        c,
        serde_json::json!({
            "label": "RDP client",
            "level": "warn",
            "detail": format!(
                "its last log ({}) says its OpenSSL lacks MD4, which NTLM logins need",
                w.p("home/.cache/bkt/vm/t1-rdp-20261207T183612Z-4242.log")
            ),
            "fix": format!(
                "if logins fail, load OpenSSL's legacy provider: OPENSSL_CONF={cnf} bkt vm connect t1, \
                 or use FreeRDP 2: BKT_VM_RDP_CLIENT=xfreerdp bkt vm connect t1"
            ),
        })
    );
    assert!(
        std::fs::read_to_string(&cnf)
            .unwrap()
            .contains("[legacy_sect]\nactivate = 1\n")
    );
    // The last session's log is what counts: a later one without the line
    // (the client run with the legacy provider) ends the warning.
    std::fs::write(
        w.path("home/.cache/bkt/vm/t1-rdp-20261207T183613Z-17.log"),
        "",
    )
    .unwrap();
    assert_eq!(check(&w, "RDP client"), serde_json::Value::Null);
}

/// The guest agent says t1's address is an escape sequence (hand-typed,
/// not recorded: no agent of ours says this): the IP check fails, showing
/// it escaped, and no port is probed.
#[test]
fn an_agent_answer_that_is_no_address_fails_the_ip_check() {
    let w = world("127.0.0.62", closed_port("127.0.0.62"));
    w.rule_first("virsh", "* domifaddr t1 --source lease")
        .out(&fixture("virsh/domifaddr-lease-none.txt"));
    w.rule("virsh", "* domifaddr t1 --source agent").out(
        " Name       MAC address          Protocol     Address\n\
         -------------------------------------------------------------------------------\n \
         Ethernet   52:54:00:b4:b3:60    ipv4         \x1b]0;owned\x07/24\n\n",
    );
    w.rule("virsh", "* qemu-agent-command t1 *")
        .out("{\"return\":{}}\n");
    let r = w.bkt(&["vm", "doctor", "t1"]);
    r.failure();
    let out = r.stdout();
    assert!(
        out.contains(
            "  ✗ IP             the guest gave something that is not an address: \
             \"\\x1b]0;owned\\x07/24\"\n    fix: the guest agent says what programs in \
             Windows make it say: look at what is installed there\n  ✓ guest agent    answers\n"
        ),
        "{out}"
    );
    assert!(!out.contains('\x1b'), "{out}");
    assert!(!out.contains("RDP            "), "{out}");
}
