//! `bkt vm snapshot` against fakes, with the NVRAM and TPM state as files in
//! the test's world.

use crate::harness::{URI, World, argv, fixture, has_args, mentions, virsh_argv};
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
    w.nothing_saved();
    w
}

fn off(w: &World) {
    w.rule("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-shutoff-shutdown.txt"));
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
    assert!(w.calls().contains(&virsh_argv(&[
        "snapshot-create-as",
        "--domain",
        "windows",
        "--name",
        "clean",
        "--description",
        "fresh install",
        "--atomic"
    ])));
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
fn a_snapshot_someone_else_took_meanwhile_keeps_nothing() {
    // snapshot-list had no `clean`; by the time of the disk snapshot,
    // another virsh had taken one by that name (recorded: its error on
    // stderr, an empty line on stdout, exit 1).
    let w = world();
    off(&w);
    snapshots(&w, &[]);
    w.rule("virsh", "* snapshot-create-as *")
        .recorded("virsh/snapshot-create-duplicate");
    let r = w.bkt(&["vm", "snapshot", "create", "windows", "clean"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        format!(
            "error: snapshot clean of windows failed; nothing was kept\ncaused by: taking the disk snapshot\ncaused by: `virsh -c {URI} snapshot-create-as --domain windows --name clean --atomic` failed (exit status: 1)\n--- stderr\n{}",
            fixture("virsh/snapshot-create-duplicate.err")
        )
    );
    assert!(!w.path("images/windows.snapshots").exists());
    assert_eq!(w.manifest()["files"], serde_json::json!([]));
}

#[test]
fn running_vm_is_refused_or_stopped_with_consent() {
    let w = world();
    w.rule("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-running.txt"));
    snapshots(&w, &[]);
    let r = w.bkt(&["vm", "snapshot", "create", "windows", "clean"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: windows is running; snapshots are taken with the VM shut off (a live snapshot would leave out the UEFI variables, which are in raw NVRAM here, and the TPM state)\nhint: shut it down first (bkt vm stop windows), or pass --yes to do it now\n"
    );
    assert!(
        !w.calls()
            .iter()
            .any(|c| mentions(c, "snapshot-create") || mentions(c, "shutdown"))
    );

    let w = world();
    w.rule("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-running.txt"))
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
    let calls = w.calls();
    let shut = calls
        .iter()
        .position(|c| has_args(c, &["shutdown", "windows"]))
        .unwrap();
    let snap = calls
        .iter()
        .position(|c| has_args(c, &["snapshot-create-as"]))
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
    assert_eq!(r.code(), 2);
    assert_eq!(
        r.stderr(),
        "error: invalid value 'a/b' for '<SNAP>': invalid snapshot name \"a/b\": use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit\n\nFor more information, try '--help'.\n"
    );
    let r = w.bkt(&["vm", "snapshot", "revert", "windows", "nope", "--yes"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: windows has no snapshot named \"nope\" (it has: clean)\n"
    );
    let r = w.bkt(&["vm", "snapshot", "delete", "windows", "nope"]);
    r.failure();
    assert!(!w.calls().iter().any(|c| mentions(c, "snapshot-create")
        || mentions(c, "snapshot-delete")
        || mentions(c, "snapshot-revert")));
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
    take(&w, "clean", &[]);
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
    assert!(!w.calls().iter().any(|c| mentions(c, "snapshot-revert")));
}

#[test]
fn destroy_takes_the_snapshots_along() {
    let w = world();
    off(&w);
    take(&w, "clean", &[]);
    w.rule("virsh", "-q -c * list --all --uuid").out("\n");
    w.rule("virsh", "* undefine *")
        .out("Domain 'windows' has been undefined\n");
    w.rule("virsh", "* vol-delete *")
        .err(&fixture("virsh/vol-delete-not-a-volume.txt"))
        .code(1);
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
    assert!(!w.calls().iter().any(|c| mentions(c, "snapshot-create")));
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

const NVRAM: &str = "nvram/windows_VARS.fd";

fn permall() -> String {
    format!("swtpm/{UUID}/tpm2/tpm2-00.permall")
}

/// A VM with snapshot `clean` taken (NVRAM `vars-1`, TPM `tpm-1`) and all
/// three parts changed since (`vars-2`, `tpm-2` and a new TPM file). The
/// rules of the snapshot's creation are used up; `snapshot-list` now says
/// `clean`.
fn taken() -> World {
    let w = world();
    w.rule("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-shutoff-shutdown.txt"))
        .times(1);
    take(&w, "clean", &[]);
    std::fs::write(w.path(NVRAM), "vars-2").unwrap();
    std::fs::write(w.path(&permall()), "tpm-2").unwrap();
    std::fs::write(w.path(&format!("swtpm/{UUID}/tpm2/new")), "x").unwrap();
    w.rule("virsh", "* snapshot-list windows --name")
        .out("clean\n\n");
    std::fs::write(w.path("log"), "").unwrap();
    w
}

fn running(w: &World) {
    w.rule("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-running.txt"));
}

/// Running, and `virsh destroy` powers it off.
fn running_until_powered_off(w: &World) {
    running(w);
    w.rule("virsh", "* destroy windows")
        .out("Domain 'windows' destroyed\n");
}

/// The files of a directory, sorted, `.` files included.
fn listing(w: &World, rel: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(w.path(rel))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// The live NVRAM holds `nvram`, the TPM state `tpm` and exactly the
/// files `tpm_files`.
#[track_caller]
fn live_parts(w: &World, nvram: &str, tpm: &str, tpm_files: &[&str]) {
    assert_eq!(std::fs::read_to_string(w.path(NVRAM)).unwrap(), nvram);
    assert_eq!(std::fs::read_to_string(w.path(&permall())).unwrap(), tpm);
    assert_eq!(listing(w, &format!("swtpm/{UUID}/tpm2")), tpm_files);
}

/// NVRAM and TPM state are what they were after the snapshot (`vars-2`,
/// `tpm-2` and the new file), and no staged copy or aside is left.
#[track_caller]
fn live_parts_unchanged(w: &World) {
    live_parts(w, "vars-2", "tpm-2", &["new", "tpm2-00.permall"]);
    assert_eq!(listing(w, "nvram"), ["windows_VARS.fd"]);
    assert_eq!(listing(w, "swtpm"), [UUID]);
}

/// NVRAM and TPM state are as the snapshot saved them, and no staged copy
/// or aside is left.
#[track_caller]
fn live_parts_reverted(w: &World) {
    live_parts(w, "vars-1", "tpm-1", &["tpm2-00.permall"]);
    assert_eq!(listing(w, "nvram"), ["windows_VARS.fd"]);
    assert_eq!(listing(w, "swtpm"), [UUID]);
}

fn virsh_calls(w: &World, what: &str) -> usize {
    w.calls()
        .iter()
        .filter(|c| c.len() > 4 && c.starts_with(&argv!["virsh", "-c", URI, what]))
        .count()
}

/// Replace the PID in staged and aside names.
fn no_pid(text: &str) -> String {
    regex::Regex::new(r"\.bkt-(new|old)-\d+")
        .unwrap()
        .replace_all(text, ".bkt-$1-PID")
        .into_owned()
}

#[test]
fn a_revert_stages_both_copies_then_reverts_the_disk_then_renames() {
    let w = taken();
    running_until_powered_off(&w);
    // What the two directories hold while the disk is being reverted.
    w.rule("virsh", "* snapshot-revert windows clean")
        .sh(&format!(
            "/bin/ls -A {nv} {tpm} >\"$FAKE_DIR/during\"\n",
            nv = w.p("nvram"),
            tpm = w.p("swtpm")
        ))
        .out("Domain snapshot clean reverted\n");
    let r = w.bkt(&["vm", "snapshot", "revert", "windows", "clean", "--yes"]);
    r.success();
    assert_eq!(
        r.stdout(),
        "windows was running; powered it off\nReverted windows to clean (disk, NVRAM and TPM state); it is shut off\n"
    );
    assert_eq!(
        normalize(
            &w,
            &no_pid(&std::fs::read_to_string(w.path("during")).unwrap())
        ),
        format!(
            "$TMP/nvram:\n.windows_VARS.fd.bkt-new-PID\nwindows_VARS.fd\n\n$TMP/swtpm:\n.{UUID}.bkt-new-PID\n{UUID}\n"
        )
    );
    let calls = w.calls();
    let destroy = calls
        .iter()
        .position(|c| c.ends_with(&argv!["destroy", "windows"]));
    let revert = calls
        .iter()
        .position(|c| c.ends_with(&argv!["snapshot-revert", "windows", "clean"]));
    assert!(destroy.is_some() && destroy < revert, "{calls:#?}");
    live_parts_reverted(&w);
}

#[test]
fn a_revert_without_live_tpm_state_puts_the_copy_there() {
    let w = taken();
    off(&w);
    std::fs::remove_dir_all(w.path(&format!("swtpm/{UUID}"))).unwrap();
    w.rule("virsh", "* snapshot-revert windows clean")
        .out("Domain snapshot clean reverted\n");
    w.bkt(&["vm", "snapshot", "revert", "windows", "clean", "--yes"])
        .success();
    live_parts_reverted(&w);
    assert_eq!(virsh_calls(&w, "destroy"), 0);
}

#[test]
fn a_missing_or_unreadable_part_refuses_the_revert_before_anything() {
    let snap = "$TMP/images/windows.snapshots/clean";
    let hint = "hint: a revert needs every part the snapshot was taken with: put the missing one back, or delete the snapshot (bkt vm snapshot delete windows clean)\n";
    // What is broken in the snapshot, how, and the causes printed.
    type Case = (&'static str, fn(&World), String);
    let cases: [Case; 5] = [
        (
            "NVRAM copy",
            |w| std::fs::remove_file(w.path("images/windows.snapshots/clean/nvram.fd")).unwrap(),
            format!(
                "caused by: cannot read its NVRAM copy {snap}/nvram.fd\ncaused by: No such file or directory (os error 2)\n"
            ),
        ),
        (
            "NVRAM copy as a directory",
            |w| {
                let nv = w.path("images/windows.snapshots/clean/nvram.fd");
                std::fs::remove_file(&nv).unwrap();
                std::fs::create_dir(&nv).unwrap();
            },
            format!(
                "caused by: cannot read its NVRAM copy {snap}/nvram.fd\ncaused by: it is not a file\n"
            ),
        ),
        (
            "TPM copy",
            |w| std::fs::remove_dir_all(w.path("images/windows.snapshots/clean/tpm")).unwrap(),
            format!(
                "caused by: cannot read its TPM state copy {snap}/tpm\ncaused by: No such file or directory (os error 2)\n"
            ),
        ),
        (
            "metadata",
            |w| {
                std::fs::remove_file(w.path("images/windows.snapshots/clean/snapshot.json"))
                    .unwrap()
            },
            format!(
                "caused by: cannot read its metadata {snap}/snapshot.json\ncaused by: No such file or directory (os error 2)\n"
            ),
        ),
        (
            "corrupt metadata",
            |w| {
                std::fs::write(w.path("images/windows.snapshots/clean/snapshot.json"), "{").unwrap()
            },
            format!(
                "caused by: its metadata {snap}/snapshot.json is not valid\ncaused by: EOF while parsing an object at line 1 column 1\n"
            ),
        ),
    ];
    for (what, break_it, cause) in cases {
        let w = taken();
        // Running: a refusal must not power it off either.
        running(&w);
        break_it(&w);
        let r = w.bkt(&["vm", "snapshot", "revert", "windows", "clean", "--yes"]);
        r.failure();
        assert_eq!(
            normalize(&w, &r.stderr()),
            format!(
                "error: snapshot clean of windows cannot be reverted; nothing was changed\n{cause}{hint}"
            ),
            "{what}"
        );
        assert_eq!(r.stdout(), "", "{what}");
        assert_eq!(virsh_calls(&w, "snapshot-revert"), 0, "{what}");
        assert_eq!(virsh_calls(&w, "destroy"), 0, "{what}");
        live_parts_unchanged(&w);
    }
}

#[test]
fn a_failed_power_off_or_disk_revert_reverts_nothing() {
    // The VM's state, the call that fails, what virsh said, and how many
    // disk reverts were asked for.
    let cases = [
        (
            "running (booted)\n",
            "destroy windows",
            "error: Failed to terminate process 4242 with SIGKILL: Device or resource busy",
            "cannot power off windows",
            0,
        ),
        (
            "shut off (shutdown)\n",
            "snapshot-revert windows clean",
            "error: revert requires force: Target domain requested genid not supported",
            "reverting the disk",
            1,
        ),
    ];
    for (state, call, said, step, reverts) in cases {
        let w = taken();
        w.rule("virsh", "* domstate --reason windows").out(state);
        w.rule("virsh", &format!("* {call}"))
            .err(&format!("{said}\n"))
            .code(1);
        let r = w.bkt(&["vm", "snapshot", "revert", "windows", "clean", "--yes"]);
        r.failure();
        assert_eq!(
            r.stderr(),
            format!(
                "error: reverting windows to clean failed; nothing was reverted\ncaused by: {step}\ncaused by: `virsh -c {URI} {call}` failed (exit status: 1)\n--- stderr\n{said}\n"
            )
        );
        assert_eq!(r.stdout(), "");
        assert_eq!(virsh_calls(&w, "snapshot-revert"), reverts, "{call}");
        live_parts_unchanged(&w);
    }
}

/// A revert of a shut-off VM during whose disk revert the fake virsh runs
/// `during` (shell; `$PPID` is bkt), so that a real condition of the
/// filesystem makes a later step fail. Returns stderr, with the tempdir and
/// the PIDs replaced.
fn revert_failing_after_the_disk(w: &World, during: &str) -> String {
    off(w);
    w.rule("virsh", "* snapshot-revert windows clean")
        .sh(during)
        .out("Domain snapshot clean reverted\n")
        .times(1);
    let r = w.bkt(&["vm", "snapshot", "revert", "windows", "clean", "--yes"]);
    r.failure();
    assert_eq!(r.stdout(), "");
    normalize(w, &no_pid(&r.stderr()))
}

/// What a revert that failed after the disk says.
fn partly_reverted(parts: &str, causes: &str) -> String {
    format!(
        "error: windows is only partly reverted to clean: {parts}; do not start windows before the revert is finished
{causes}hint: fix the cause, then run the revert again (it reverts every part again): bkt vm snapshot revert windows clean --yes --connect {URI}
"
    )
}

/// What a revert that failed at the TPM state says, with the causes
/// below "putting the TPM state in place".
fn tpm_not_reverted(causes: &str) -> String {
    partly_reverted(
        "the disk and NVRAM are reverted, the TPM state is not",
        &format!("caused by: putting the TPM state in place\n{causes}"),
    )
}

#[test]
fn a_failed_tpm_rename_names_what_was_reverted_and_the_retry_finishes() {
    let w = taken();
    // A non-empty directory appears where the live TPM state moves aside.
    let stderr = revert_failing_after_the_disk(
        &w,
        &format!(
            "/bin/mkdir -p \"{}/.{UUID}.bkt-old-$PPID/x\"\n",
            w.p("swtpm")
        ),
    );
    assert_eq!(
        stderr,
        tpm_not_reverted(&format!(
            "caused by: moving $TMP/swtpm/{UUID} aside to $TMP/swtpm/.{UUID}.bkt-old-PID
caused by: Directory not empty (os error 39)
"
        ))
    );
    live_parts(&w, "vars-1", "tpm-2", &["new", "tpm2-00.permall"]);
    assert_eq!(listing(&w, "nvram"), ["windows_VARS.fd"]);
    // The staged TPM copy is gone; the directory in the way is not bkt's.
    let swtpm = listing(&w, "swtpm");
    assert_eq!(swtpm.len(), 2, "{swtpm:?}");
    assert_eq!(no_pid(&swtpm[0]), format!(".{UUID}.bkt-old-PID"));
    assert_eq!(swtpm[1], UUID);

    // The command the hint gives finishes the revert.
    w.rule("virsh", "* snapshot-revert windows clean")
        .out("Domain snapshot clean reverted\n");
    let retry = "vm snapshot revert windows clean --yes --connect qemu:///system";
    w.bkt(&retry.split(' ').collect::<Vec<_>>()).success();
    live_parts(&w, "vars-1", "tpm-1", &["tpm2-00.permall"]);
    assert_eq!(listing(&w, "swtpm"), swtpm);
    assert_eq!(virsh_calls(&w, "snapshot-revert"), 2);
}

#[test]
fn a_failed_nvram_rename_leaves_nvram_and_tpm_as_they_were() {
    let w = taken();
    // A directory takes the NVRAM file's place.
    let nv = w.p(NVRAM);
    let stderr =
        revert_failing_after_the_disk(&w, &format!("/bin/rm {nv} && /bin/mkdir -p {nv}/x\n"));
    assert_eq!(
        stderr,
        partly_reverted(
            "the disk is reverted, the NVRAM and TPM state are not",
            &format!(
                "caused by: putting the NVRAM in place
caused by: renaming $TMP/nvram/.windows_VARS.fd.bkt-new-PID to $TMP/{NVRAM}
caused by: Is a directory (os error 21)
"
            )
        )
    );
    assert_eq!(listing(&w, "nvram"), ["windows_VARS.fd"]);
    assert_eq!(listing(&w, NVRAM), ["x"]);
    assert_eq!(
        std::fs::read_to_string(w.path(&permall())).unwrap(),
        "tpm-2"
    );
    assert_eq!(listing(&w, "swtpm"), [UUID]);
}

#[test]
fn a_staged_tree_gone_before_its_rename_puts_the_live_one_back() {
    let w = taken();
    let stderr = revert_failing_after_the_disk(
        &w,
        &format!("/bin/rm -r \"{}/.{UUID}.bkt-new-$PPID\"\n", w.p("swtpm")),
    );
    assert_eq!(
        stderr,
        tpm_not_reverted(&format!(
            "caused by: renaming $TMP/swtpm/.{UUID}.bkt-new-PID to $TMP/swtpm/{UUID}
caused by: No such file or directory (os error 2)
"
        ))
    );
    live_parts(&w, "vars-1", "tpm-2", &["new", "tpm2-00.permall"]);
    assert_eq!(listing(&w, "swtpm"), [UUID]);
}

/// Run a revert as a terminal would, in a process group of its own, with
/// the fake `call` pressing Ctrl-C for the whole group (`kill -INT -$PPID`:
/// only what bkt shields from it survives) and then answering `out`. It
/// ends with 130; returns stdout and stderr.
fn ctrl_c_during(w: &World, call: &str, out: &str) -> (String, String) {
    use std::os::unix::process::CommandExt;
    w.rule("virsh", &format!("* {call}"))
        .sh("kill -INT -$PPID\n")
        .out(out);
    let out = w
        .command(&["vm", "snapshot", "revert", "windows", "clean", "--yes"])
        .process_group(0)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    (stdout, stderr)
}

#[test]
fn ctrl_c_during_the_disk_revert_waits_for_the_whole_revert() {
    let w = taken();
    off(&w);
    let (stdout, stderr) = ctrl_c_during(
        &w,
        "snapshot-revert windows clean",
        "Domain snapshot clean reverted\n",
    );
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        "error: windows was reverted to clean (disk, NVRAM and TPM state) before stopping; it is shut off\ncaused by: interrupted\n"
    );
    live_parts_reverted(&w);
}

#[test]
fn ctrl_c_during_the_power_off_stops_before_the_disk() {
    let w = taken();
    running(&w);
    let (stdout, stderr) = ctrl_c_during(&w, "destroy windows", "Domain 'windows' destroyed\n");
    assert_eq!(stdout, "windows was running; powered it off\n");
    assert_eq!(
        stderr,
        "error: stopped before reverting windows to clean: nothing was reverted; windows is shut off\ncaused by: interrupted\n"
    );
    assert_eq!(virsh_calls(&w, "snapshot-revert"), 0);
    live_parts_unchanged(&w);
}

#[test]
fn an_unreadable_file_in_the_tpm_copy_refuses_the_revert() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let w = taken();
    running(&w);
    let saved = w.path("images/windows.snapshots/clean/tpm/tpm2/tpm2-00.permall");
    let args = ["vm", "snapshot", "revert", "windows", "clean", "--yes"];
    let mut cmd = w.command(&args);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // A copy of bkt that nobody can run (the checkout may be in a 0700
        // directory).
        let bkt = w.path("bkt");
        std::fs::copy(env!("CARGO_BIN_EXE_bkt"), &bkt).unwrap();
        cmd = w.command_of(&bkt, &args);
        // Root reads everything: run bkt as nobody, in a world nobody may
        // use, where only the snapshot's copy stays root's own.
        let out = std::process::Command::new("/bin/chmod")
            .args(["-R", "a+rwX"])
            .arg(w.dir.path())
            .output()
            .unwrap();
        assert!(out.status.success());
        cmd.uid(65534).gid(65534);
    }
    std::fs::set_permissions(&saved, std::fs::Permissions::from_mode(0o000)).unwrap();
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let snap = "$TMP/images/windows.snapshots";
    assert_eq!(
        normalize(&w, &String::from_utf8_lossy(&out.stderr)),
        format!(
            "error: snapshot clean of windows cannot be reverted; nothing was changed
caused by: cannot read its TPM state copy {snap}/clean/tpm
caused by: cannot read {snap}/clean/tpm/tpm2
caused by: cannot read {snap}/clean/tpm/tpm2/tpm2-00.permall
caused by: Permission denied (os error 13)
hint: {snap} belongs to libvirt; snapshots of qemu:///system VMs need root: sudo bkt vm snapshot ...
"
        )
    );
    assert_eq!(virsh_calls(&w, "snapshot-revert"), 0);
    assert_eq!(virsh_calls(&w, "destroy"), 0);
    live_parts_unchanged(&w);
}

/// `bkt vm snapshot revert windows clean` on a terminal (util-linux
/// `script` makes one), answering `key` once the question is asked.
/// Returns the exit status and what the terminal showed.
fn revert_on_a_terminal(w: &World, key: &str) -> (i32, String) {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    let mut c = Command::new("/usr/bin/script");
    c.env_clear();
    for (k, v) in w.command(&[]).get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    let mut child = c
        .env("TERM", "dumb")
        .args([
            "-qec",
            &format!(
                "{} vm snapshot revert windows clean",
                env!("CARGO_BIN_EXE_bkt")
            ),
            "/dev/null",
        ])
        .current_dir(w.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let shown = || String::from_utf8_lossy(&seen.lock().unwrap()).replace("\r\n", "\n");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !shown().contains("Everything since is lost") {
        assert!(
            std::time::Instant::now() < deadline,
            "no question asked: {}",
            shown()
        );
        if let Some(status) = child.try_wait().unwrap() {
            reader.join().unwrap();
            panic!("bkt ended ({status}) without asking: {}", shown());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(key.as_bytes()).unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    reader.join().unwrap();
    (status.code().unwrap_or(-1), shown())
}

#[test]
fn on_a_terminal_the_revert_asks_first() {
    let w = taken();
    running_until_powered_off(&w);
    w.rule("virsh", "* snapshot-revert windows clean")
        .out("Domain snapshot clean reverted\n");
    let (code, shown) = revert_on_a_terminal(&w, "n");
    assert_eq!(code, 1, "{shown}");
    assert!(
        regex::Regex::new(r"^Revert windows to clean \(\d{4}-\d\d-\d\d \d\d:\d\d UTC\)\? Everything since is lost \[y/N\] ")
            .unwrap()
            .is_match(&shown),
        "{shown}"
    );
    assert!(
        shown.ends_with("error: not reverted; nothing was changed\n"),
        "{shown}"
    );
    assert_eq!(virsh_calls(&w, "destroy"), 0);
    assert_eq!(virsh_calls(&w, "snapshot-revert"), 0);
    live_parts_unchanged(&w);

    let (code, shown) = revert_on_a_terminal(&w, "y");
    assert_eq!(code, 0, "{shown}");
    assert!(
        shown.ends_with("windows was running; powered it off\nReverted windows to clean (disk, NVRAM and TPM state); it is shut off\n"),
        "{shown}"
    );
    assert_eq!(virsh_calls(&w, "snapshot-revert"), 1);
    live_parts_reverted(&w);
}

#[test]
fn a_snapshot_keeps_the_vm_in_use_while_it_waits_for_the_shutdown() {
    let w = world();
    w.write_manifest(
        serde_json::json!({"vms": [{"name": "windows", "type": "windows11",
        "disk": w.p("images/windows.qcow2"), "created": "2026-01-25", "uri": URI}]}),
    );
    crate::save::auto_save_on(&w);
    w.rule("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-running.txt"))
        .times(3);
    off(&w);
    snapshots(&w, &[]);
    w.rule("virsh", "* shutdown windows --mode acpi")
        .out("Domain 'windows' is being shutdown\n")
        .sh(&w.hold());
    w.rule("virsh", "* snapshot-create-as *")
        .out("Domain snapshot clean created\n");
    crate::save::in_use_while_held(
        &w,
        &["vm", "snapshot", "create", "windows", "clean", "--yes"],
        "the shutdown never began",
    );
    assert!(!w.calls().iter().any(|c| mentions(c, "managedsave")));
    // Done, it lets go: the VM (off now) is nothing to watch.
    assert_eq!(
        crate::save::look(&w, 5060),
        "windows: the VM is shut off; nothing to watch\n"
    );
}

#[test]
fn a_revert_keeps_the_vm_in_use_while_it_runs() {
    let w = taken();
    let mut m = w.manifest();
    m["vms"] = serde_json::json!([{"name": "windows", "type": "windows11",
        "disk": w.p("images/windows.qcow2"), "created": "2026-01-25", "uri": URI}]);
    w.write_manifest(m);
    crate::save::auto_save_on(&w);
    running_until_powered_off(&w);
    w.rule("virsh", "* snapshot-revert windows clean")
        .out("Domain snapshot clean reverted\n")
        .sh(&w.hold());
    crate::save::in_use_while_held(
        &w,
        &["vm", "snapshot", "revert", "windows", "clean", "--yes"],
        "the disk revert never began",
    );
    // Done, it lets go (the fake still says running).
    crate::save::unused(&w);
    assert_eq!(
        crate::save::look(&w, 5060),
        "windows: unused for 1m; saved in 14m unless used\n"
    );
    assert!(!w.calls().iter().any(|c| mentions(c, "managedsave")));
}

#[test]
fn a_vm_saved_while_the_snapshot_waits_for_its_shutdown_is_not_snapshotted() {
    let w = world();
    w.rule("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-running.txt"))
        .times(2);
    // Saved to disk (by the idle watcher, say) instead of powered off.
    w.rule("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-saved.txt"));
    snapshots(&w, &[]);
    w.rule("virsh", "* shutdown windows --mode acpi")
        .out("Domain 'windows' is being shutdown\n");
    let r = w.bkt(&["vm", "snapshot", "create", "windows", "clean", "--yes"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "waiting for windows to shut down …\n\
         error: windows was saved to disk while waiting for it to shut down; it is not powered \
         off (its memory waits in libvirt's saved image)\n\
         hint: start it and shut Windows down, then try again: bkt vm start windows && bkt vm \
         stop windows\n"
    );
    assert!(!w.calls().iter().any(|c| mentions(c, "snapshot-create-as")));
}
