//! `bkt vm status` against fakes.

use crate::harness::{URI, World, fixture};

fn world() -> World {
    let w = World::new();
    w.rule("virsh", "* domstats *")
        .out(&fixture("virsh/domstats-three.txt"));
    // The recorded lease address, moved to loopback: status probes port 3389
    // of every address it shows, and tests only ever talk to loopback.
    w.rule("virsh", "-c * echo @@bkt *")
        .out(&fixture("virsh/batch-domifaddr.txt").replace("192.168.122.4", "127.0.0.2"));
    w.write_manifest(serde_json::json!({"vms": [
        {"name": "t1", "type": "windows11", "disk": "/var/lib/libvirt/images/t1.qcow2",
         "created": "2026-01-25", "rdp_enabled": true, "notes": "For Bambu Studio slicer", "uri": URI},
        {"name": "gone", "type": "windows11", "disk": "/g.qcow2", "created": "2026-01-25", "uri": URI},
        {"name": "elsewhere", "type": "windows11", "disk": "/e.qcow2", "created": "2026-01-25",
         "uri": "qemu:///session"}
    ]}));
    w
}

#[test]
fn table_of_every_vm_in_two_calls() {
    let w = world();
    let r = w.bkt(&["vm", "status"]);
    r.success();
    assert_eq!(
        r.stdout(),
        "NAME  STATE     CPUS  MEMORY   DISK (used/size)  IP         RDP      NOTES
gone  missing   -     -        -                 -          off      (libvirt has no such VM; `bkt vm destroy gone` forgets it)
t1    running   1     2 GiB    0/8 GiB           -          on       For Bambu Studio slicer
t2    shut off  2     1 GiB    0/4 GiB           -          -        (not in manifest)
tiny  running   1     256 MiB  -                 127.0.0.2  refused  (not in manifest)
"
    );
    assert_eq!(
        w.call_lines(),
        [
            format!("virsh -c {URI} domstats --raw --state --vcpu --balloon --block"),
            format!(
                "virsh -c {URI} echo @@bkt tiny; domifaddr --source lease tiny; echo @@bkt t1; domifaddr --source lease t1"
            ),
        ]
    );
}

#[test]
fn json_has_the_same_rows() {
    let w = world();
    let r = w.bkt(&["vm", "status", "--json"]);
    r.success();
    let v: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(v["uri"], URI);
    let vms = v["vms"].as_array().unwrap();
    assert_eq!(vms.len(), 4);
    assert_eq!(
        vms[1],
        serde_json::json!({
            "name": "t1", "state": "running", "managed": true, "vcpus": 1,
            "memory_bytes": 2147483648u64, "disk_allocated_bytes": 204800,
            "disk_capacity_bytes": 8589934592u64, "ip": null, "rdp_port": null, "rdp_enabled": true,
            "notes": "For Bambu Studio slicer"
        })
    );
    assert_eq!(vms[3]["ip"], "127.0.0.2");
    assert_eq!(vms[3]["rdp_port"], "refused");
    assert_eq!(vms[0]["state"], "missing");
}

#[test]
fn rdp_port_that_answers() {
    let w = World::new();
    let l = std::net::TcpListener::bind("127.0.0.3:3389").unwrap();
    w.rule("virsh", "* domstats *")
        .out(&fixture("virsh/domstats-three.txt"));
    w.rule("virsh", "-c * echo @@bkt *")
        .out(&fixture("virsh/batch-domifaddr.txt").replace("192.168.122.4", "127.0.0.3"));
    let r = w.bkt(&["vm", "status", "tiny"]);
    r.success();
    assert!(
        r.stdout()
            .contains("  127.0.0.3  answers  (not in manifest)"),
        "{}",
        r.stdout()
    );
    drop(l);
}

#[test]
fn one_vm_and_unknown_vm() {
    let w = world();
    let r = w.bkt(&["vm", "status", "tiny"]);
    r.success();
    assert_eq!(r.stdout().lines().count(), 2);
    assert!(r.stdout().lines().nth(1).unwrap().starts_with("tiny "));
    w.rule("virsh", "-q -c * list --all --name")
        .out("t1\nt2\ntiny\n\n");
    let r = w.bkt(&["vm", "status", "nope"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: no VM named \"nope\" on qemu:///system (the VMs there are: t1, t2, tiny)\n"
    );
}

#[test]
fn nothing_yet() {
    let w = World::new();
    w.rule("virsh", "* domstats *").out("");
    let r = w.bkt(&["vm", "status"]);
    r.success();
    assert_eq!(
        r.stdout(),
        "No VMs on qemu:///system. Create one with: bkt vm create windows --iso PATH\n"
    );
    assert_eq!(w.call_lines().len(), 1);
}

#[test]
fn corrupt_manifest_is_an_error_naming_the_file() {
    let w = World::new();
    w.rule("virsh", "* domstats *")
        .out(&fixture("virsh/domstats-three.txt"));
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
    w.rule("virsh", "* domstats *").out("");
    w.bkt(&["vm", "status"]).success();
    w.bkt(&["vm", "status", "--connect", "test:///default"])
        .success();
    assert_eq!(
        w.call_lines(),
        [
            "virsh -c qemu:///session domstats --raw --state --vcpu --balloon --block",
            "virsh -c test:///default domstats --raw --state --vcpu --balloon --block",
        ]
    );
}

#[test]
fn verbose_prints_each_command() {
    let w = World::new();
    w.rule("virsh", "* domstats *").out("");
    let r = w.bkt(&["vm", "status", "-v"]);
    r.success();
    assert_eq!(
        r.stderr(),
        "+ virsh -c qemu:///system domstats --raw --state --vcpu --balloon --block\n"
    );
}
