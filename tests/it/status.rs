//! `bkt vm status` against fakes answering with the outputs of one recorded
//! scene (fixtures/README.md): `tiny` running with a lease, `off` shut off.

use crate::harness::{URI, World, argv, closed_port, fixture, rdp_listener, virsh_argv};

/// The one virsh call of the common case, as the fake log shows it.
const BATCH: &str = "echo @@bkt leases; net-dhcp-leases default; echo @@bkt saved; list --all --name --with-managed-save; echo @@bkt domstats; domstats --raw --state --vcpu --balloon --block";
const TINY_MAC: &str = "52:54:00:b4:b3:60";

fn batch_call(uri: &str) -> Vec<String> {
    argv!["virsh", "-c", uri, BATCH]
}

/// A recorded status batch, its lease moved to loopback: status probes the
/// Remote Desktop port of every address it shows, and tests only ever talk
/// to loopback (on a port of their own: see [`refusing`]).
fn recorded(w: &World, file: &str, ip: &str) {
    w.rule("virsh", "-c * echo @@bkt leases; *")
        .out(&fixture(&format!("virsh/{file}")).replace("192.168.122.4", ip));
}

/// A world whose guests' Remote Desktop refuses at `ip`: nothing listens
/// on its port (not 3389, which something else on the machine may hold).
fn refusing(ip: &str) -> World {
    World::new().rdp_port(closed_port(ip))
}

/// tiny made by bkt (its MAC on record), plus a VM gone from libvirt and
/// one on another connection, in `w`.
fn world_of(w: World, ip: &str) -> World {
    recorded(&w, "status-batch-running.txt", ip);
    w.write_manifest(serde_json::json!({"vms": [
        {"name": "tiny", "type": "windows11", "disk": "/var/lib/libvirt/images/tiny.qcow2",
         "created": "2026-01-25", "rdp_enabled": true, "notes": "For Bambu Studio slicer",
         "uri": URI, "mac": TINY_MAC},
        {"name": "gone", "type": "windows11", "disk": "/g.qcow2", "created": "2026-01-25", "uri": URI},
        {"name": "elsewhere", "type": "windows11", "disk": "/e.qcow2", "created": "2026-01-25",
         "uri": "qemu:///session"}
    ]}));
    w
}

/// [`world_of`] where tiny's Remote Desktop refuses.
fn world(ip: &str) -> World {
    world_of(refusing(ip), ip)
}

/// The world of [`world`], libvirt answering the status batch as it did
/// when `STEM` was recorded.
fn world_at(stem: &str) -> World {
    let w = world("127.0.0.2");
    w.rule_first("virsh", "-c * echo @@bkt leases; *")
        .recorded(&format!("virsh/{stem}"));
    w
}

/// The recorded `domifaddr` batch, its part for tiny alone.
fn domifaddr_of_tiny(ip: &str) -> String {
    let out = fixture("virsh/batch-domifaddr.txt");
    let (tiny, _off) = out.split_once("@@bkt off\n").unwrap();
    tiny.replace("192.168.122.4", ip)
}

#[test]
fn table_of_every_vm_in_one_call() {
    let w = world("127.0.0.2");
    let r = w.bkt(&["vm", "status"]);
    r.success();
    assert_eq!(
        r.stdout(),
        "NAME  STATE     CPUS  MEMORY   DISK (used/size)  IP         RDP      AUTO-SAVE  NOTES
gone  missing   -     -        -                 -          off      off        (libvirt has no such VM; `bkt vm destroy gone` forgets it)
off   shut off  2     1 GiB    0/4 GiB           -          -        -          (not in manifest)
tiny  running   1     256 MiB  -                 127.0.0.2  refused  off        For Bambu Studio slicer
"
    );
    assert_eq!(w.calls(), [batch_call(URI)]);
}

#[test]
fn a_running_vm_made_by_hand_costs_one_more_call_for_all_such() {
    let w = refusing("127.0.0.2");
    recorded(&w, "status-batch-running.txt", "127.0.0.2");
    w.rule("virsh", "-c * echo @@bkt tiny; *")
        .out(&domifaddr_of_tiny("127.0.0.2"));
    let r = w.bkt(&["vm", "status"]);
    r.success();
    assert_eq!(
        r.stdout(),
        "NAME  STATE     CPUS  MEMORY   DISK (used/size)  IP         RDP      AUTO-SAVE  NOTES
off   shut off  2     1 GiB    0/4 GiB           -          -        -          (not in manifest)
tiny  running   1     256 MiB  -                 127.0.0.2  refused  -          (not in manifest)
"
    );
    assert_eq!(
        w.calls(),
        [
            batch_call(URI),
            virsh_argv(&["echo @@bkt tiny; domifaddr --source lease tiny"]),
        ]
    );
}

#[test]
fn what_a_failed_domifaddr_batch_printed_still_counts() {
    // A domain that stopped since the stats makes its part fail, and with
    // it the whole call when it comes last (recorded: `off`, shut off).
    let w = refusing("127.0.0.2");
    recorded(&w, "status-batch-running.txt", "127.0.0.2");
    w.rule("virsh", "-c * echo @@bkt tiny; *")
        .out(&fixture("virsh/batch-domifaddr.txt").replace("192.168.122.4", "127.0.0.2"))
        .err(&fixture("virsh/batch-domifaddr.err"))
        .code(
            fixture("virsh/batch-domifaddr.code")
                .trim()
                .parse()
                .unwrap(),
        );
    let r = w.bkt(&["vm", "status", "--json"]);
    r.success();
    let v: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(v["vms"][1]["name"], "tiny");
    assert_eq!(v["vms"][1]["ip"], "127.0.0.2");
    assert_eq!(r.stderr(), "");
}

#[test]
fn a_vm_bkt_made_without_a_lease_yet_is_asked_about() {
    // Just started: libvirt has no lease for its MAC; maybe it never will
    // on `default` (a NIC moved elsewhere), so libvirt is asked.
    let w = world_at("status-batch-booting");
    w.rule("virsh", "-c * echo @@bkt tiny; *").out(&format!(
        "@@bkt tiny\n{}",
        fixture("virsh/domifaddr-lease-none.txt")
    ));
    let r = w.bkt(&["vm", "status", "tiny"]);
    r.success();
    // No address: RDP says what the manifest says.
    assert_eq!(
        r.stdout(),
        "NAME  STATE    CPUS  MEMORY   DISK (used/size)  IP  RDP  AUTO-SAVE  NOTES
tiny  running  1     256 MiB  -                 -   on   off        For Bambu Studio slicer
"
    );
    assert_eq!(
        w.calls(),
        [
            batch_call(URI),
            virsh_argv(&["echo @@bkt tiny; domifaddr --source lease tiny"]),
        ]
    );
}

#[test]
fn json_has_the_same_rows() {
    let w = world("127.0.0.2");
    let r = w.bkt(&["vm", "status", "--json"]);
    r.success();
    let v: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(v["uri"], URI);
    let vms = v["vms"].as_array().unwrap();
    assert_eq!(vms.len(), 3);
    assert_eq!(
        vms[2],
        serde_json::json!({
            "name": "tiny", "state": "running", "managed": true, "vcpus": 1,
            "memory_bytes": 268435456u64, "disk_allocated_bytes": null,
            "disk_capacity_bytes": null, "ip": "127.0.0.2", "rdp_port": "refused",
            "rdp_enabled": true, "notes": "For Bambu Studio slicer",
            "saved_bytes": null, "auto_save": "off"
        })
    );
    assert_eq!(vms[1]["disk_allocated_bytes"], 200704);
    assert_eq!(vms[1]["disk_capacity_bytes"], 4u64 << 30);
    assert_eq!(vms[0]["state"], "missing");
}

#[test]
fn rdp_port_that_answers() {
    // Listening before bkt runs: the kernel completes the connect without
    // an accept, so status's short probe gets its answer however busy the
    // machine is.
    let (l, port) = rdp_listener("127.0.0.3");
    let w = world_of(World::new().rdp_port(port), "127.0.0.3");
    let r = w.bkt(&["vm", "status", "tiny"]);
    r.success();
    assert!(
        r.stdout()
            .ends_with("  127.0.0.3  answers  off        For Bambu Studio slicer\n"),
        "{}",
        r.stdout()
    );
    drop(l);
}

#[test]
fn one_vm_and_unknown_vm() {
    let w = world("127.0.0.2");
    let r = w.bkt(&["vm", "status", "tiny"]);
    r.success();
    assert_eq!(r.stdout().lines().count(), 2);
    assert!(r.stdout().lines().nth(1).unwrap().starts_with("tiny "));
    w.rule("virsh", "-q -c * list --all --name")
        .out(&fixture("virsh/list-all-name.txt"));
    let r = w.bkt(&["vm", "status", "nope"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: no VM named \"nope\" on qemu:///system (the VMs there are: tiny, off)\n"
    );
}

#[test]
fn nothing_yet() {
    let w = World::new();
    recorded(&w, "status-batch-empty.txt", "127.0.0.2");
    let r = w.bkt(&["vm", "status"]);
    r.success();
    assert_eq!(
        r.stdout(),
        "No VMs on qemu:///system. Create one with: bkt vm create windows --iso PATH\n"
    );
    assert_eq!(w.calls(), [batch_call(URI)]);
}

#[test]
fn no_default_network_is_no_lease_and_no_error() {
    let w = world_at("status-batch-no-network");
    let r = w.bkt(&["vm", "status"]);
    r.success();
    assert_eq!(
        r.stdout(),
        "NAME  STATE     CPUS  MEMORY   DISK (used/size)  IP  RDP  AUTO-SAVE  NOTES
gone  missing   -     -        -                 -   off  off        (libvirt has no such VM; `bkt vm destroy gone` forgets it)
off   shut off  2     1 GiB    0/4 GiB           -   -    -          (not in manifest)
tiny  shut off  1     256 MiB  -                 -   on   off        For Bambu Studio slicer
"
    );
    assert_eq!(r.stderr(), "");
    assert_eq!(w.calls(), [batch_call(URI)]);
}

#[test]
fn no_libvirtd_is_explained() {
    let w = world_at("status-batch-no-libvirtd");
    let r = w.bkt(&["vm", "status"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        format!(
            "error: cannot list the VMs
caused by: `virsh -c qemu:///system '{BATCH}'` failed (exit status: 1)
--- stderr
{}hint: libvirt is not reachable: start it (`sudo systemctl start libvirtd`, or `virtqemud` on modular hosts) or check --connect / LIBVIRT_DEFAULT_URI
",
            fixture("virsh/status-batch-no-libvirtd.err")
        )
    );
}

#[test]
fn corrupt_manifest_is_an_error_naming_the_file() {
    let w = refusing("127.0.0.2");
    recorded(&w, "status-batch-running.txt", "127.0.0.2");
    std::fs::create_dir_all(w.manifest_path().parent().unwrap()).unwrap();
    std::fs::write(w.manifest_path(), "[]").unwrap();
    let r = w.bkt(&["vm", "status"]);
    r.failure();
    assert_eq!(
        r.stderr()
            .replace(&w.dir.path().display().to_string(), "$TMP"),
        "error: the manifest $TMP/home/.config/bootc/vms.json is not valid (fix or move it aside; bkt will not overwrite it)\ncaused by: invalid type: sequence, expected struct Manifest at line 1 column 0\n"
    );
}

#[test]
fn uri_and_manifest_overrides() {
    let w = World::new()
        .env("LIBVIRT_DEFAULT_URI", "qemu:///session")
        .env("BKT_VM_MANIFEST", "/nonexistent/m.json");
    recorded(&w, "status-batch-empty.txt", "127.0.0.2");
    w.bkt(&["vm", "status"]).success();
    w.bkt(&["vm", "status", "--connect", "test:///default"])
        .success();
    assert_eq!(
        w.calls(),
        [batch_call("qemu:///session"), batch_call("test:///default")]
    );
}

#[test]
fn verbose_prints_each_command() {
    let w = World::new();
    recorded(&w, "status-batch-empty.txt", "127.0.0.2");
    let r = w.bkt(&["vm", "status", "-v"]);
    r.success();
    assert_eq!(r.stderr(), format!("+ virsh -c qemu:///system '{BATCH}'\n"));
}

#[test]
fn a_vm_saved_to_disk_shows_as_saved_with_its_image() {
    let w = World::new();
    let save = w.p("save");
    let w = w.env("BKT_VM_SAVE_DIR", &save);
    std::fs::create_dir_all(w.path("save")).unwrap();
    std::fs::File::create(w.path("save/tiny.save"))
        .unwrap()
        .set_len(93 << 20)
        .unwrap();
    recorded(&w, "status-batch-saved.txt", "127.0.0.2");
    w.write_manifest(serde_json::json!({"vms": [
        {"name": "tiny", "type": "windows11", "disk": "", "created": "2026-01-25",
         "uri": URI, "mac": TINY_MAC, "auto_save": 900}
    ]}));
    let r = w.bkt(&["vm", "status"]);
    r.success();
    assert_eq!(
        r.stdout(),
        "NAME  STATE           CPUS  MEMORY   DISK (used/size)  IP  RDP  AUTO-SAVE  NOTES
off   shut off        2     1 GiB    0/4 GiB           -   -    -          (not in manifest)
tiny  saved (93 MiB)  1     256 MiB  -                 -   off  15m
"
    );
    let r = w.bkt(&["vm", "status", "tiny", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(v["vms"][0]["state"], "saved");
    assert_eq!(v["vms"][0]["saved_bytes"], 93u64 << 20);
    assert_eq!(v["vms"][0]["auto_save"], "15m");
    // A lease that outlives the save is no address: no probe of it.
    assert_eq!(w.calls(), [batch_call(URI), batch_call(URI)]);
}

/// An address column that holds no address (an escape sequence, hand-typed
/// into the recorded batch) is no address: the row shows none, and nothing
/// of it reaches the terminal.
#[test]
fn a_row_that_is_no_address_shows_none() {
    let w = refusing("127.0.0.2");
    recorded(&w, "status-batch-running.txt", "127.0.0.2");
    w.rule("virsh", "-c * echo @@bkt tiny; *")
        .out(&domifaddr_of_tiny("\x1b]0;owned\x07\x1b[2J"));
    let r = w.bkt(&["vm", "status"]);
    r.success();
    assert_eq!(
        r.stdout(),
        "NAME  STATE     CPUS  MEMORY   DISK (used/size)  IP  RDP  AUTO-SAVE  NOTES
off   shut off  2     1 GiB    0/4 GiB           -   -    -          (not in manifest)
tiny  running   1     256 MiB  -                 -   -    -          (not in manifest)
"
    );
    assert_eq!(r.stderr(), "");
}
