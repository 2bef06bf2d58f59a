//! `bkt vm snapshot` against fakes, with the NVRAM and TPM state as files in
//! the test's world.

use crate::harness::{URI, World, fixture};
use crate::normalize;

const UUID: &str = "176de74e-5347-414d-8a93-ba0478fba4fa";

/// A shut-off VM whose disk, NVRAM and TPM state live under the world.
fn world() -> World {
    let w = World::new();
    let swtpm = w.p("swtpm");
    let w = w.env("BKT_VM_SWTPM_DIR", &swtpm);
    let xml = fixture("virsh/dumpxml-windows-running.xml")
        .replace(
            "/var/lib/libvirt/images/t1.qcow2",
            &w.p("images/windows.qcow2"),
        )
        .replace(
            "/var/lib/libvirt/qemu/nvram/t1_VARS.fd",
            &w.p("nvram/windows_VARS.fd"),
        )
        .replace("<name>t1</name>", "<name>windows</name>");
    let xml = regex::Regex::new("<uuid>[^<]*</uuid>")
        .unwrap()
        .replace(&xml, format!("<uuid>{UUID}</uuid>").as_str())
        .into_owned();
    w.rule("virsh", "* dumpxml --inactive windows").out(&xml);
    std::fs::create_dir_all(w.path("nvram")).unwrap();
    std::fs::write(w.path("nvram/windows_VARS.fd"), "vars-1").unwrap();
    std::fs::create_dir_all(w.path(&format!("swtpm/{UUID}/tpm2"))).unwrap();
    std::fs::write(
        w.path(&format!("swtpm/{UUID}/tpm2/tpm2-00.permall")),
        "tpm-1",
    )
    .unwrap();
    std::fs::write(w.path("images/windows.qcow2"), "disk").unwrap();
    w
}

fn off(w: &World) {
    w.rule("virsh", "* domstate --reason windows")
        .out("shut off (shutdown)\n");
}

fn snapshots(w: &World, names: &[&str]) {
    let mut out = names.join("\n");
    out.push_str("\n\n");
    w.rule("virsh", "* snapshot-list windows --name")
        .out(&out)
        .times(1);
}

/// Take snapshot `snap` of a VM whose snapshots are `existing`; the rules
/// it needs are used up after.
fn take(w: &World, snap: &str, existing: &[&str]) {
    snapshots(w, existing);
    w.rule(
        "virsh",
        &format!("* snapshot-create-as --domain windows --name {snap} *"),
    )
    .out(&format!("Domain snapshot {snap} created\n"))
    .times(1);
    w.bkt(&["vm", "snapshot", "create", "windows", snap])
        .success();
}

#[test]
fn create_takes_all_three_parts() {
    let w = world();
    off(&w);
    snapshots(&w, &[]);
    w.rule("virsh", "* snapshot-create-as *")
        .out("Domain snapshot clean created\n");
    let r = w.bkt(&[
        "vm",
        "snapshot",
        "create",
        "windows",
        "clean",
        "--description",
        "fresh install",
    ]);
    r.success();
    assert_eq!(
        normalize(&w, &r.stdout()),
        format!(
            "Snapshot clean of windows taken
  • disk           internal qcow2 snapshot (libvirt)
  • NVRAM          $TMP/nvram/windows_VARS.fd
  • TPM state      $TMP/swtpm/{UUID}
  • kept in        $TMP/images/windows.snapshots/clean
"
        )
    );
    let dir = w.path("images/windows.snapshots/clean");
    assert_eq!(
        std::fs::read_to_string(dir.join("nvram.fd")).unwrap(),
        "vars-1"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("tpm/tpm2/tpm2-00.permall")).unwrap(),
        "tpm-1"
    );
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("snapshot.json")).unwrap()).unwrap();
    assert_eq!(meta["description"], "fresh install");
    assert!(w.call_lines().contains(&format!(
        "virsh -c {URI} snapshot-create-as --domain windows --name clean --description fresh install --atomic"
    )));
}

#[test]
fn a_failed_disk_snapshot_keeps_nothing() {
    let w = world();
    off(&w);
    snapshots(&w, &[]);
    w.rule("virsh", "* snapshot-create-as *")
        .err("error: operation failed: internal snapshots of a VM with pflash based firmware require QCOW2 nvram format\n")
        .code(1);
    let r = w.bkt(&["vm", "snapshot", "create", "windows", "clean"]);
    r.failure();
    assert!(r.stderr().starts_with("error: snapshot clean of windows failed; nothing was kept\ncaused by: taking the disk snapshot\n"), "{}", r.stderr());
    // The directory this run made goes too, and with it its record.
    assert!(!w.path("images/windows.snapshots").exists());
    assert_eq!(w.manifest()["files"], serde_json::json!([]));
}

#[test]
fn running_vm_is_refused_or_stopped_with_consent() {
    let w = world();
    w.rule("virsh", "* domstate --reason windows")
        .out("running (booted)\n");
    snapshots(&w, &[]);
    let r = w.bkt(&["vm", "snapshot", "create", "windows", "clean"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: windows is running; snapshots are taken with the VM shut off (a live snapshot would leave out the UEFI variables, which are in raw NVRAM here, and the TPM state)\nhint: shut it down first (bkt vm stop windows), or pass --yes to do it now\n"
    );
    assert!(
        !w.call_lines()
            .iter()
            .any(|c| c.contains("snapshot-create") || c.contains("shutdown"))
    );

    let w = world();
    w.rule("virsh", "* domstate --reason windows")
        .out("running (booted)\n")
        .times(3);
    off(&w);
    snapshots(&w, &[]);
    w.rule("virsh", "* shutdown windows --mode acpi")
        .out("Domain 'windows' is being shutdown\n");
    w.rule("virsh", "* snapshot-create-as *")
        .out("Domain snapshot clean created\n");
    let r = w.bkt(&["vm", "snapshot", "create", "windows", "clean", "--yes"]);
    r.success();
    assert!(
        r.stdout()
            .starts_with("windows is shut off (shutdown) after "),
        "{}",
        r.stdout()
    );
    let calls = w.call_lines();
    let shut = calls
        .iter()
        .position(|c| c.contains(" shutdown windows"))
        .unwrap();
    let snap = calls
        .iter()
        .position(|c| c.contains("snapshot-create-as"))
        .unwrap();
    assert!(shut < snap);
}

#[test]
fn bad_input_changes_nothing() {
    let w = world();
    off(&w);
    w.rule("virsh", "* snapshot-list windows --name")
        .out("clean\n\n");
    let r = w.bkt(&["vm", "snapshot", "create", "windows", "clean"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: windows already has a snapshot named \"clean\"; choose another name or delete it first\n"
    );
    let r = w.bkt(&["vm", "snapshot", "create", "windows", "a/b"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: invalid snapshot name \"a/b\": use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit\n"
    );
    let r = w.bkt(&["vm", "snapshot", "revert", "windows", "nope", "--yes"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: windows has no snapshot named \"nope\" (it has: clean)\n"
    );
    let r = w.bkt(&["vm", "snapshot", "delete", "windows", "nope"]);
    r.failure();
    assert!(!w.call_lines().iter().any(|c| c.contains("snapshot-create")
        || c.contains("snapshot-delete")
        || c.contains("snapshot-revert")));
    assert!(!w.path("images/windows.snapshots").exists());

    w.rule("virsh", "* domstate --reason nope")
        .err("error: failed to get domain 'nope'\n")
        .code(1);
    w.domains(&["windows"]);
    let r = w.bkt(&["vm", "snapshot", "list", "nope"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: no VM named \"nope\" on qemu:///system (the VMs there are: windows)\n"
    );
}

#[test]
fn revert_restores_nvram_and_tpm_and_delete_frees() {
    let w = world();
    off(&w);
    snapshots(&w, &[]);
    w.rule("virsh", "* snapshot-create-as *")
        .out("Domain snapshot clean created\n");
    w.bkt(&["vm", "snapshot", "create", "windows", "clean"])
        .success();
    std::fs::write(w.path("nvram/windows_VARS.fd"), "vars-2").unwrap();
    let permall = w.path(&format!("swtpm/{UUID}/tpm2/tpm2-00.permall"));
    std::fs::write(&permall, "tpm-2").unwrap();
    std::fs::write(w.path(&format!("swtpm/{UUID}/tpm2/new")), "x").unwrap();

    w.rule("virsh", "* snapshot-list windows --name")
        .out("clean\n\n");
    w.rule("virsh", "* snapshot-revert windows clean")
        .out("Domain snapshot clean reverted\n");
    let r = w.bkt(&["vm", "snapshot", "revert", "windows", "clean"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: refusing to revert windows without confirmation; nothing was changed\nhint: run it on a terminal, or pass --yes: bkt vm snapshot revert windows clean --yes\n"
    );
    assert_eq!(
        std::fs::read_to_string(w.path("nvram/windows_VARS.fd")).unwrap(),
        "vars-2"
    );

    let r = w.bkt(&["vm", "snapshot", "revert", "windows", "clean", "--yes"]);
    r.success();
    assert_eq!(
        r.stdout(),
        "Reverted windows to clean (disk, NVRAM and TPM state); it is shut off\n"
    );
    assert_eq!(
        std::fs::read_to_string(w.path("nvram/windows_VARS.fd")).unwrap(),
        "vars-1"
    );
    assert_eq!(std::fs::read_to_string(&permall).unwrap(), "tpm-1");
    assert!(!w.path(&format!("swtpm/{UUID}/tpm2/new")).exists());

    w.rule("virsh", "* snapshot-current windows --name")
        .out("clean\n\n");
    let r = w.bkt(&["vm", "snapshot", "list", "windows"]);
    r.success();
    assert!(
        r.stdout()
            .starts_with("  NAME   CREATED               SIZE       DESCRIPTION\n* clean  "),
        "{}",
        r.stdout()
    );
    assert!(
        r.stdout()
            .ends_with("(* = the snapshot the VM currently derives from)\n")
    );

    w.rule("virsh", "* snapshot-delete windows clean")
        .out("Domain snapshot clean deleted\n");
    let r = w.bkt(&["vm", "snapshot", "delete", "windows", "clean"]);
    r.success();
    assert!(!w.path("images/windows.snapshots").exists());
}

#[test]
fn a_disk_only_snapshot_is_not_reverted() {
    let w = world();
    off(&w);
    w.rule("virsh", "* snapshot-list windows --name")
        .out("manual\n\n");
    let r = w.bkt(&["vm", "snapshot", "revert", "windows", "manual", "--yes"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: snapshot manual of windows has no saved NVRAM and TPM state (it was not taken by bkt); reverting only its disk could leave Windows at a BitLocker recovery screen\n"
    );
    assert!(!w.call_lines().iter().any(|c| c.contains("snapshot-revert")));
}

#[test]
fn destroy_takes_the_snapshots_along() {
    let w = world();
    off(&w);
    snapshots(&w, &[]);
    w.rule("virsh", "* snapshot-create-as *")
        .out("Domain snapshot clean created\n");
    w.bkt(&["vm", "snapshot", "create", "windows", "clean"])
        .success();
    w.rule("virsh", "* undefine windows *")
        .out("Domain 'windows' has been undefined\n");
    let r = w.bkt(&["vm", "destroy", "windows", "--yes"]);
    r.success();
    assert!(
        normalize(&w, &r.stdout())
            .contains("  • removed        snapshots $TMP/images/windows.snapshots\n")
    );
    assert!(!w.path("images/windows.snapshots").exists());
}

#[test]
fn not_enough_space_for_the_copies_changes_nothing() {
    let w = world();
    off(&w);
    snapshots(&w, &[]);
    // A sparse NVRAM file far larger than any free space here.
    let nv = std::fs::OpenOptions::new()
        .write(true)
        .open(w.path("nvram/windows_VARS.fd"))
        .unwrap();
    nv.set_len(15 << 40).unwrap();
    let r = w.bkt(&["vm", "snapshot", "create", "windows", "clean"]);
    r.failure();
    assert!(
        r.stderr()
            .starts_with("error: not enough space for the snapshot: 15 TiB needed in "),
        "{}",
        r.stderr()
    );
    assert!(!w.call_lines().iter().any(|c| c.contains("snapshot-create")));
    assert!(!w.path("images/windows.snapshots").exists());
}

/// The snapshot directory of the world's VM, as the manifest records it.
fn root_record(w: &World) -> serde_json::Value {
    serde_json::json!({
        "vm": "windows",
        "uri": URI,
        "path": w.p("images/windows.snapshots"),
    })
}

#[test]
fn the_snapshot_directory_is_recorded_until_the_last_snapshot_goes() {
    let w = world();
    // A VM bkt did not make: the record stands on its own.
    w.write_manifest(serde_json::json!({ "vms": [], "files": [] }));
    off(&w);
    take(&w, "clean", &[]);
    assert_eq!(w.manifest()["files"], serde_json::json!([root_record(&w)]));
    take(&w, "second", &["clean"]);
    assert_eq!(w.manifest()["files"], serde_json::json!([root_record(&w)]));
    assert_eq!(w.manifest()["vms"], serde_json::json!([]));

    w.rule("virsh", "* snapshot-delete windows *")
        .out("Domain snapshot deleted\n");
    snapshots(&w, &["clean", "second"]);
    w.bkt(&["vm", "snapshot", "delete", "windows", "clean"])
        .success();
    assert!(w.path("images/windows.snapshots/second").exists());
    assert_eq!(w.manifest()["files"], serde_json::json!([root_record(&w)]));
    snapshots(&w, &["second"]);
    w.bkt(&["vm", "snapshot", "delete", "windows", "second"])
        .success();
    assert!(!w.path("images/windows.snapshots").exists());
    assert_eq!(w.manifest()["files"], serde_json::json!([]));
}
