//! `bkt vm enable-rdp` against fakes: the script ISO goes in, the user's
//! double-click is played by a listener opening on loopback, and the drive
//! gets its medium back.

use crate::harness::{URI, World, argv, closed_port, fixture, mentions, rdp_listener, virsh_argv};

/// A VM in `state` at `ip`, whose Remote Desktop would be on `port`.
fn world(ip: &str, port: u16, state: &str) -> World {
    let w = World::new().rdp_port(port);
    w.install_fake("xorriso");
    // The fake xorriso writes the ISO to stdout (`-o -`), and notes the
    // staging directory it was given: its name, mode and files.
    w.rule("xorriso", "-as mkisofs *").sh(&format!(
        "for a; do last=$a; done\n/usr/bin/stat -c '%n %a' \"$last\" >>\"{staged}\"\n/bin/ls \"$last\" >>\"{staged}\"\nprintf 'an ISO'\n",
        staged = w.p("staged.txt")
    ));
    w.rule("virsh", "* dumpxml --inactive windows")
        .out(&crate::harness::windows_running_xml(&w));
    w.rule("virsh", "* domstate --reason windows")
        .out(&format!("{state}\n"));
    w.rule("virsh", "* change-media *")
        .out("Successfully updated media.\n");
    w.rule("virsh", "* domifaddr windows --source lease")
        .out(&fixture("virsh/domifaddr-lease.txt").replace("192.168.122.4", ip));
    w.write_manifest(
        serde_json::json!({"vms": [{"name": "windows", "type": "windows11",
        "disk": w.p("images/windows.qcow2"), "created": "2026-01-25", "uri": URI}]}),
    );
    w
}

#[test]
fn the_script_cd_goes_in_and_comes_out() {
    // Remote Desktop already answers: the user was quick.
    let (_rdp, port) = rdp_listener("127.0.0.70");
    let w = world("127.0.0.70", port, "running (booted)");
    let r = w.bkt(&["vm", "enable-rdp", "windows"]);
    r.success();
    let iso = w.p("images/windows-enable-rdp.iso");
    let calls = w.calls();
    let xorriso = calls.iter().find(|c| c[0] == "xorriso").unwrap();
    let options = argv![
        "xorriso", "-as", "mkisofs", "-quiet", "-V", "BKT_RDP", "-J", "-R", "-o", "-"
    ];
    assert!(
        xorriso.starts_with(&options) && xorriso.len() > options.len(),
        "{xorriso:?}"
    );
    // Staged in a private directory with an unpredictable name, gone after.
    let staged = std::fs::read_to_string(w.path("staged.txt")).unwrap();
    let re =
        regex::Regex::new(r"^(/\S+/bkt-enable-rdp-\S{6,}) 700\nenable-rdp.cmd\nenable-rdp.ps1\n$")
            .unwrap();
    let dir = re.captures(&staged).unwrap_or_else(|| panic!("{staged}"))[1].to_string();
    assert!(!dir.ends_with(&format!("-{}", std::process::id())));
    assert!(!std::path::Path::new(&dir).exists());
    assert!(
        calls.contains(&argv![
            "virsh",
            "-c",
            URI,
            "change-media",
            "windows",
            "sda",
            iso,
            "--update",
            "--config",
            "--live"
        ]),
        "{calls:?}"
    );
    assert_eq!(
        calls.last().unwrap(),
        &virsh_argv(&[
            "change-media",
            "windows",
            "sda",
            "/tmp/win.iso",
            "--update",
            "--config",
            "--live"
        ])
    );
    assert!(
        !w.path("images/windows-enable-rdp.iso").exists(),
        "the ISO is deleted"
    );
    assert_eq!(w.manifest()["vms"][0]["rdp_enabled"], true);
    assert!(
        r.stdout().contains(
            "  2. Double-click enable-rdp.cmd and answer Yes when Windows asks for permission\n"
        ),
        "{}",
        r.stdout()
    );
    assert!(r.stdout().ends_with(&format!("Remote Desktop is on (127.0.0.70:{port}); the script CD was removed.\nConnect with: bkt vm connect windows\n")), "{}", r.stdout());
}

#[test]
fn a_timeout_still_takes_the_cd_out() {
    let port = closed_port("127.0.0.71");
    let w = world("127.0.0.71", port, "running (booted)");
    let r = w.bkt(&["vm", "enable-rdp", "windows", "--timeout", "1"]);
    r.failure();
    assert!(r.stderr().contains(&format!("error: Remote Desktop did not answer within 1s (127.0.0.71:{port}: refused)\nhint: run enable-rdp.cmd in Windows as described")), "{}", r.stderr());
    assert_eq!(
        w.last_call(),
        virsh_argv(&[
            "change-media",
            "windows",
            "sda",
            "/tmp/win.iso",
            "--update",
            "--config",
            "--live"
        ])
    );
    assert!(!w.path("images/windows-enable-rdp.iso").exists());
    assert_ne!(w.manifest()["vms"][0]["rdp_enabled"], true);
}

#[test]
fn a_shut_off_vm_gets_the_cd_then_starts() {
    let w = world(
        "127.0.0.72",
        closed_port("127.0.0.72"),
        "shut off (shutdown)",
    );
    w.rule("virsh", "* start windows")
        .out("Domain 'windows' started\n");
    let r = w.bkt(&["vm", "enable-rdp", "windows", "--timeout", "1"]);
    r.failure();
    let calls = w.calls();
    let iso = w.p("images/windows-enable-rdp.iso");
    let change = argv![
        "virsh",
        "-c",
        URI,
        "change-media",
        "windows",
        "sda",
        iso,
        "--update",
        "--config"
    ];
    let attach = calls.iter().position(|c| c.starts_with(&change)).unwrap();
    let start = calls
        .iter()
        .position(|c| *c == virsh_argv(&["start", "windows"]))
        .unwrap();
    assert!(attach < start, "{calls:?}");
    assert_eq!(calls[attach], change, "no --live on a shut-off VM");
    assert!(r.stdout().starts_with("windows is shut off; starting it\n"));
}

#[test]
fn no_cd_drive_no_iso() {
    let w = World::new();
    w.install_fake("xorriso");
    w.rule("virsh", "* domstate --reason tiny")
        .out(&fixture("virsh/domstate-reason-running.txt"));
    w.rule("virsh", "* dumpxml --inactive tiny")
        .out("<domain><name>tiny</name><devices></devices></domain>\n");
    let r = w.bkt(&["vm", "enable-rdp", "tiny"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: tiny has no CD-ROM drive to put the script in\nhint: add one in virt-manager (Add Hardware → Storage → CDROM device), then retry\n"
    );
    assert!(!w.calls().iter().any(|c| c[0] == "xorriso"));
}

/// A file already at the script ISO's path (a planted one, or left by a
/// killed run) is never overwritten, and nothing goes into the drive.
#[test]
fn an_existing_script_iso_is_never_overwritten() {
    let w = world("127.0.0.72", closed_port("127.0.0.72"), "running (booted)");
    let iso = w.path("images/windows-enable-rdp.iso");
    std::fs::write(&iso, "not ours").unwrap();
    let r = w.bkt(&["vm", "enable-rdp", "windows"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        format!(
            "error: building the script ISO\ncaused by: creating {iso}\ncaused by: File exists (os error 17)\nhint: if {iso} is left from an earlier run that was killed, delete it and retry\n",
            iso = iso.display()
        )
    );
    assert_eq!(std::fs::read_to_string(&iso).unwrap(), "not ours");
    assert!(!w.calls().iter().any(|c| mentions(c, "change-media")));
}

#[test]
fn enable_rdp_keeps_the_vm_in_use_while_the_user_runs_the_script() {
    let (_rdp, port) = rdp_listener("127.0.0.71");
    let w = world("127.0.0.71", port, "running (booted)");
    crate::save::auto_save_on(&w);
    // The script CD goes in, and waits there until the test lets it go.
    w.rule_first("virsh", "* change-media windows sda *enable-rdp.iso *")
        .out("Successfully updated media.\n")
        .sh(&w.hold())
        .times(1);
    crate::save::in_use_while_held(
        &w,
        &["vm", "enable-rdp", "windows"],
        "the script CD never went in",
    );
    w.rule("virsh", "* domdisplay --type spice windows")
        .out("spice://127.0.0.1:1\n");
    // Done, it lets go (the listener here stands for nobody connected).
    assert_eq!(
        crate::save::look(&w, 5060),
        "windows: unused for 1m; saved in 14m unless used\n"
    );
    assert!(!w.calls().iter().any(|c| mentions(c, "managedsave")));
}

#[test]
fn only_this_connections_vm_is_marked_remote_desktop_on() {
    let (_rdp, port) = rdp_listener("127.0.0.72");
    let w = world("127.0.0.72", port, "running (booted)");
    let mut m = w.manifest();
    let mut other = m["vms"][0].clone();
    other["uri"] = "qemu:///session".into();
    m["vms"] = serde_json::json!([other, m["vms"][0]]);
    w.write_manifest(m);
    w.bkt(&["vm", "enable-rdp", "windows"]).success();
    let m = w.manifest();
    assert_eq!(
        (&m["vms"][0]["uri"], &m["vms"][0]["rdp_enabled"]),
        (&"qemu:///session".into(), &false.into())
    );
    assert_eq!(
        (&m["vms"][1]["uri"], &m["vms"][1]["rdp_enabled"]),
        (&URI.into(), &true.into())
    );
}
