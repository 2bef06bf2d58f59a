//! A failed or interrupted `create` undoes exactly what that run made: at
//! every point it can fail, which calls were made and which were not, what
//! the user is told, and what is left on disk and in the manifest.

use crate::create::uuid_of;
use crate::harness::{URI, World, argv, fixture, mentions, virsh_argv};
use crate::normalize;

const GIB: u64 = 1 << 30;

/// A world where create would succeed, with `overrides` (rules added first,
/// so they win) making it fail somewhere.
fn world(overrides: impl FnOnce(&World)) -> World {
    let w = World::new();
    overrides(&w);
    w.libvirt_up().domains(&[]).creation_works(80 * GIB);
    w.iso("Win11.iso");
    w
}

fn create(w: &World) -> crate::harness::Run {
    w.bkt(&["vm", "create", "--iso", &w.p("isos/Win11.iso"), "--yes"])
}

/// The calls after preflight (from the disk on).
fn made_calls(w: &World) -> Vec<Vec<String>> {
    let calls = w.calls();
    let first = calls
        .iter()
        .position(|c| c.starts_with(&argv!["qemu-img", "create"]))
        .unwrap_or(calls.len());
    calls[first..].to_vec()
}

/// [`made_calls`] as argv vectors.
fn made_argv(w: &World) -> Vec<Vec<String>> {
    let calls = w.calls();
    let first = calls
        .iter()
        .position(|c| c.starts_with(&argv(&["qemu-img", "create"])))
        .unwrap_or(calls.len());
    calls[first..].to_vec()
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// The part of stdout from "Creating" on.
fn creating(w: &World, stdout: &str) -> String {
    let out = normalize(w, stdout);
    out[out.find("Creating\n").expect("got to Creating")..].to_string()
}

fn assert_nothing_left(w: &World) {
    assert!(!w.path("images/windows.qcow2").exists());
    assert_eq!(w.manifest()["vms"], serde_json::json!([]));
    assert_eq!(w.manifest()["files"], serde_json::json!([]));
}

fn mkdisk(w: &World) -> Vec<String> {
    argv![
        "qemu-img",
        "create",
        "-q",
        "-f",
        "qcow2",
        w.p("images/windows.qcow2"),
        80 * GIB
    ]
}

fn info(w: &World) -> Vec<String> {
    argv![
        "qemu-img",
        "info",
        "--output=json",
        "-U",
        w.p("images/windows.qcow2")
    ]
}

const UNDEFINE_FLAGS: &str =
    "--nvram --tpm --snapshots-metadata --checkpoints-metadata --managed-save";

/// The undefine of rollback's own domain, by its UUID.
fn undefine(uuid: &str) -> Vec<String> {
    argv![
        "virsh",
        "-c",
        URI,
        "undefine",
        uuid,
        ..UNDEFINE_FLAGS.split(' ')
    ]
}

#[test]
fn disk_creation_failing_removes_the_claimed_path_only() {
    let w = world(|w| {
        w.rule("qemu-img", "create *")
            .err("qemu-img: Could not create: No space left on device\n")
            .code(1);
    });
    let r = create(&w);
    r.failure();
    assert_eq!(
        creating(&w, &r.stdout()),
        "Creating\nRolled back\n  • removed        disk $TMP/images/windows.qcow2\n  • removed        manifest entry\n"
    );
    assert!(
        normalize(&w, &r.stderr()).starts_with(
            "error: creating windows failed; nothing was left behind\ncaused by: creating the disk\ncaused by: `qemu-img create -q -f qcow2 "
        ),
        "{}",
        r.stderr()
    );
    assert_eq!(made_calls(&w), [mkdisk(&w)]);
    assert_nothing_left(&w);
}

#[test]
fn qemu_img_info_failing_is_rolled_back() {
    let w = world(|w| {
        w.rule("qemu-img", "info *")
            .err("qemu-img: Could not open: Permission denied\n")
            .code(1);
    });
    let r = create(&w);
    r.failure();
    assert_eq!(
        creating(&w, &r.stdout()),
        "Creating\nRolled back\n  • removed        disk $TMP/images/windows.qcow2\n  • removed        manifest entry\n"
    );
    assert!(r.stderr().contains("caused by: checking the new disk\n"));
    assert_eq!(made_calls(&w), [mkdisk(&w), info(&w)]);
    assert_nothing_left(&w);
}

#[test]
fn a_disk_that_appears_during_preflight_is_never_touched() {
    // Preflight saw no disk; someone makes one before create claims it
    // (QEMU's user lookup is the last thing preflight asks libvirt).
    let w = World::new();
    let disk = w.p("images/windows.qcow2");
    w.rule("virsh", "* capabilities")
        .sh(&format!("printf 'their data' >\"{disk}\"\n"))
        .out(&fixture("virsh/capabilities.xml"));
    w.libvirt_up().domains(&[]).creation_works(80 * GIB);
    w.iso("Win11.iso");
    let r = create(&w);
    r.failure();
    assert_eq!(
        creating(&w, &r.stdout()),
        "Creating\nRolled back\n  • removed        manifest entry\n"
    );
    assert_eq!(
        normalize(&w, &r.stderr()),
        "error: creating windows failed; nothing was left behind\ncaused by: $TMP/images/windows.qcow2 appeared while preflight ran; bkt never overwrites a disk\nhint: choose another --name, or move the file away if nothing uses it\n"
    );
    assert_eq!(std::fs::read_to_string(&disk).unwrap(), "their data");
    assert!(made_calls(&w).is_empty());
    assert_eq!(w.manifest()["vms"], serde_json::json!([]));
}

#[test]
fn rendering_failing_removes_the_disk_and_defines_nothing() {
    let w = world(|w| {
        w.rule("virt-install", "*")
            .err("ERROR    Error: --disk path=...: unknown option\n")
            .code(1);
    });
    let r = create(&w);
    r.failure();
    assert!(
        creating(&w, &r.stdout()).ends_with(
            "Rolled back\n  • removed        disk $TMP/images/windows.qcow2\n  • removed        manifest entry\n"
        )
    );
    assert!(
        r.stderr()
            .contains("caused by: rendering the domain with virt-install\n")
    );
    let calls = made_calls(&w);
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[..2], [mkdisk(&w), info(&w)]);
    assert_eq!(calls[2][0], "virt-install");
    assert_nothing_left(&w);
}

/// The "name already in use" failure: another domain of the same name was
/// defined while this create ran. It is not ours, and stays.
#[test]
fn a_same_named_domain_defined_meanwhile_is_left_alone() {
    let w = world(|w| {
        w.rule("virsh", "* define /dev/stdin")
            .err(&fixture("virsh/define-name-taken.txt"))
            .code(1);
        w.rule("virsh", "* domstate --reason *")
            .err(&fixture("virsh/domstate-uuid-nosuch.txt"))
            .code(1);
    });
    let r = create(&w);
    r.failure();
    let out = creating(&w, &r.stdout());
    assert!(
        out.ends_with(
            "Rolled back\n  • removed        disk $TMP/images/windows.qcow2\n  • removed        manifest entry\n"
        ),
        "{out}"
    );
    assert!(
        r.stderr()
            .contains("caused by: defining the domain\ncaused by: `virsh -c qemu:///system define /dev/stdin` failed (exit status: 1)\n"),
        "{}",
        r.stderr()
    );
    let uuid = uuid_of(&w);
    let calls = made_calls(&w);
    assert_eq!(
        &calls[3..],
        [
            virsh_argv(&["define", "/dev/stdin"]),
            argv!["virsh", "-c", URI, "domstate", "--reason", &uuid],
        ]
    );
    // Never by name, never the other domain.
    assert!(
        !calls
            .iter()
            .any(|c| mentions(c, "undefine") || mentions(c, "destroy"))
    );
    assert_nothing_left(&w);
}

/// QEMU cannot start: the domain this run defined goes, by its UUID, with
/// the NVRAM and TPM state libvirt made for it.
#[test]
fn a_start_that_fails_undefines_our_domain_with_its_nvram() {
    let w = world(|w| {
        w.rule("virsh", "* start * --reset-nvram")
            .err("error: Failed to start domain 'windows'\nerror: internal error: QEMU unexpectedly closed the monitor: cannot set up guest memory 'pc.ram': Cannot allocate memory\n")
            .code(1);
        w.rule("virsh", "* domstate --reason *")
            .out("shut off (failed)\n\n");
        w.rule("virsh", "* undefine *")
            .out(&fixture("virsh/undefine-uuid.txt"));
    });
    let r = create(&w);
    r.failure();
    assert!(
        creating(&w, &r.stdout()).ends_with(
            "Rolled back\n  • removed        domain windows with its NVRAM and TPM state\n  • removed        disk $TMP/images/windows.qcow2\n  • removed        manifest entry\n"
        ),
        "{}",
        r.stdout()
    );
    assert!(
        r.stderr()
            .contains("caused by: starting the domain\ncaused by: `virsh -c qemu:///system start ")
    );
    let uuid = uuid_of(&w);
    assert_eq!(
        &made_calls(&w)[4..],
        [
            argv!["virsh", "-c", URI, "start", &uuid, "--reset-nvram"],
            argv!["virsh", "-c", URI, "domstate", "--reason", &uuid],
            undefine(&uuid),
        ]
    );
    assert_nothing_left(&w);
}

/// When the rollback cannot undefine, it says so, says how, and keeps the
/// manifest entry so that `destroy` can finish.
#[test]
fn a_rollback_that_cannot_undefine_says_what_is_left() {
    let w = world(|w| {
        w.rule("virsh", "* start * --reset-nvram")
            .err("error: Failed to start domain 'windows'\n")
            .code(1);
        w.rule("virsh", "* domstate --reason *")
            .out("shut off (failed)\n\n");
        w.rule("virsh", "* undefine *")
            .err("error: Failed to undefine domain\nerror: Requested operation is not valid: cannot undefine domain with nvram\n")
            .code(1);
    });
    let r = create(&w);
    r.failure();
    let uuid = uuid_of(&w);
    let out = creating(&w, &r.stdout());
    assert!(
        out.ends_with(&format!(
            "Rolled back\n  • removed        disk $TMP/images/windows.qcow2\n  • left           domain windows ({uuid}): Requested operation is not valid: cannot undefine domain with nvram; remove it with virsh -c {URI} undefine {uuid} {UNDEFINE_FLAGS}\n"
        )),
        "{out}"
    );
    let err = normalize(&w, &r.stderr());
    assert!(
        err.starts_with(
            "defining and starting the domain …\nerror: creating windows failed; some of what it made is left (see \"left\" above)\n"
        ),
        "{err}"
    );
    assert!(
        err.ends_with("hint: remove the rest with: bkt vm -c qemu:///system destroy windows\n")
    );
    assert!(!err.contains("nothing was left behind"));
    let e = &w.manifest()["vms"][0];
    assert_eq!(e["name"], "windows");
    assert_eq!(e["creating"], true);
    assert_eq!(w.manifest()["files"], serde_json::json!([]));
}

/// The last manifest update (the end of "creating") fails: everything is
/// rolled back, and the entry that could not be removed is named.
#[test]
fn the_last_manifest_update_failing_is_rolled_back_and_reported() {
    let w = World::new();
    let manifest = w.manifest_path();
    w.rule("virsh", "* start * --reset-nvram")
        .sh(&format!("printf '{{' >\"{}\"\n", manifest.display()))
        .out(&fixture("virsh/start-reset-nvram.txt"));
    w.rule("virsh", "* domstate --reason *")
        .out(&fixture("virsh/domstate-reason-running.txt"));
    w.rule("virsh", "* destroy *")
        .out(&fixture("virsh/destroy-uuid.txt"));
    w.rule("virsh", "* undefine *")
        .out(&fixture("virsh/undefine-uuid.txt"));
    w.libvirt_up().domains(&[]).creation_works(80 * GIB);
    w.iso("Win11.iso");
    let r = create(&w);
    r.failure();
    let out = creating(&w, &r.stdout());
    assert!(
        out.contains("Rolled back\n  • removed        domain windows with its NVRAM and TPM state\n  • removed        disk $TMP/images/windows.qcow2\n  • left           manifest entry windows in $TMP/home/.config/bootc/vms.json: "),
        "{out}"
    );
    let uuid = uuid_of(&w);
    assert_eq!(
        &made_calls(&w)[5..],
        [
            argv!["virsh", "-c", URI, "domstate", "--reason", &uuid],
            argv!["virsh", "-c", URI, "destroy", &uuid],
            undefine(&uuid),
        ]
    );
    assert!(!w.path("images/windows.qcow2").exists());
    assert!(r.stderr().contains("caused by: the manifest "));
}

#[test]
fn ctrl_c_while_the_disk_is_made_stops_before_the_domain() {
    let w = world(|_| {});
    let out = interrupt_during(&w, "qemu-img", "create *");
    assert_eq!(out.status.code(), Some(130));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        creating(&w, &stdout).ends_with(
            "Rolled back\n  • removed        disk $TMP/images/windows.qcow2\n  • removed        manifest entry\n"
        ),
        "{stdout}"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: creating windows failed; nothing was left behind\ncaused by: interrupted\n"
    );
    assert_eq!(made_calls(&w), [mkdisk(&w)]);
    assert_nothing_left(&w);
}

#[test]
fn ctrl_c_while_defining_undefines_without_starting() {
    let w = world(|w| {
        w.rule("virsh", "* domstate --reason *").out("shut off\n\n");
        w.rule("virsh", "* undefine *")
            .out(&fixture("virsh/undefine-uuid.txt"));
    });
    // The define takes a while (until Ctrl-C), then succeeds.
    let out = interrupt_during(&w, "virsh", "* define /dev/stdin");
    assert_eq!(out.status.code(), Some(130));
    let uuid = uuid_of(&w);
    assert_eq!(
        &made_calls(&w)[3..],
        [
            virsh_argv(&["define", "/dev/stdin"]),
            argv!["virsh", "-c", URI, "domstate", "--reason", &uuid],
            undefine(&uuid),
        ]
    );
    assert_nothing_left(&w);
}

/// Run create until `tool` matching `glob` runs (a rule put in front of
/// the others makes it wait), Ctrl-C bkt, and let the call finish.
fn interrupt_during(w: &World, tool: &str, glob: &str) -> std::process::Output {
    w.rule_first(tool, glob).sh(&w.hold());
    interrupt_when_held(w, tool)
}

/// Start create, Ctrl-C bkt once a held call began, and let it go on.
fn interrupt_when_held(w: &World, tool: &str) -> std::process::Output {
    let child = w
        .command(&["vm", "create", "--iso", &w.p("isos/Win11.iso"), "--yes"])
        .spawn()
        .unwrap();
    w.wait_held(&format!("{tool} never ran"));
    // SAFETY: signalling the child we started, by its PID.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    w.release();
    child.wait_with_output().unwrap()
}

/// The terminal's Ctrl-C reaches qemu-img too (it is in bkt's process
/// group), which dies of it: the interruption is what is reported (exit
/// 130), not the death of the child it caused.
#[test]
fn ctrl_c_that_kills_qemu_img_too_is_reported_as_the_interruption() {
    let w = world(|_| {});
    w.rule_first("qemu-img", "create *")
        .sh(&format!("{}kill -INT $$\n", w.hold()));
    let out = interrupt_when_held(&w, "qemu-img");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr,
        "error: creating windows failed; nothing was left behind\ncaused by: interrupted\n"
    );
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert_eq!(
        creating(&w, &stdout),
        "Creating\nRolled back\n  • removed        disk $TMP/images/windows.qcow2\n  • removed        manifest entry\n"
    );
    assert_eq!(
        made_argv(&w),
        [argv(&[
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            &w.p("images/windows.qcow2"),
            &(80 * GIB).to_string(),
        ])]
    );
    assert_nothing_left(&w);
}

/// Ctrl-C while QEMU starts: the running domain is powered off first, then
/// undefined, both by UUID.
#[test]
fn ctrl_c_while_starting_powers_off_then_undefines() {
    let w = world(|w| {
        w.rule("virsh", "* domstate --reason *")
            .out(&fixture("virsh/domstate-reason-running.txt"));
        w.rule("virsh", "* destroy *")
            .out(&fixture("virsh/destroy-uuid.txt"));
        w.rule("virsh", "* undefine *")
            .out(&fixture("virsh/undefine-uuid.txt"));
    });
    let out = interrupt_during(&w, "virsh", "* start * --reset-nvram");
    assert_eq!(out.status.code(), Some(130));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        creating(&w, &stdout).ends_with(
            "Rolled back\n  • removed        domain windows with its NVRAM and TPM state\n  • removed        disk $TMP/images/windows.qcow2\n  • removed        manifest entry\n"
        ),
        "{stdout}"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "defining and starting the domain …\nerror: creating windows failed; nothing was left behind\ncaused by: interrupted\n"
    );
    let uuid = uuid_of(&w);
    assert_eq!(
        &made_calls(&w)[4..],
        [
            argv!["virsh", "-c", URI, "start", &uuid, "--reset-nvram"],
            argv!["virsh", "-c", URI, "domstate", "--reason", &uuid],
            argv!["virsh", "-c", URI, "destroy", &uuid],
            undefine(&uuid),
        ]
    );
    assert_nothing_left(&w);
}

/// Two creates of one name, both past preflight before either reserves the
/// name: exactly one wins, the other fails on the reservation and removes
/// nothing of the winner's.
#[test]
fn two_creates_of_one_name_past_preflight_make_one_vm() {
    let w = World::new();
    // QEMU's user is the last thing preflight asks: each create waits there
    // until both have arrived.
    w.rule("virsh", "* capabilities")
        .sh(&format!(
            ": >\"{pf}.$$\"\nn=0\nwhile [ $n -lt 400 ] && [ \"$(/bin/ls {dir} | /bin/grep -c '^pf\\.')\" -lt 2 ]; do /bin/sleep 0.05; n=$((n+1)); done\n",
            pf = w.p("pf"),
            dir = w.dir.path().display()
        ))
        .out(&fixture("virsh/capabilities.xml"));
    w.libvirt_up().domains(&[]).creation_works(80 * GIB);
    let iso = w.iso("Win11.iso");
    let a = w
        .command(&["vm", "create", "--iso", &iso, "--yes"])
        .spawn()
        .unwrap();
    let b = w
        .command(&["vm", "create", "--iso", &iso, "--yes"])
        .spawn()
        .unwrap();
    let ra = a.wait_with_output().unwrap();
    let rb = b.wait_with_output().unwrap();
    let arrived = std::fs::read_dir(w.dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("pf.")
        })
        .count();
    assert_eq!(arrived, 2, "both passed preflight");
    let oks = [&ra, &rb].iter().filter(|r| r.status.success()).count();
    assert_eq!(oks, 1, "exactly one create wins");
    let loser = if ra.status.success() { &rb } else { &ra };
    assert_eq!(
        String::from_utf8_lossy(&loser.stderr),
        "error: creating windows failed; nothing was left behind\ncaused by: \"windows\" was taken while preflight ran (another `bkt vm create`?)\n"
    );
    assert!(
        String::from_utf8_lossy(&loser.stdout)
            .ends_with("Creating\nRolled back\n  • removed        nothing had been made yet\n")
    );
    // The loser removed nothing of the winner's.
    assert!(w.path("images/windows.qcow2").exists());
    assert_eq!(w.manifest()["vms"].as_array().unwrap().len(), 1);
    assert!(w.manifest()["vms"][0].get("creating").is_none());
    assert_eq!(w.manifest()["files"].as_array().unwrap().len(), 1);
    // One disk, one definition, one start.
    let n = |p: &[String]| w.calls().iter().filter(|c| c.starts_with(p)).count();
    assert_eq!(n(&argv!["qemu-img", "create"]), 1);
    assert_eq!(n(&virsh_argv(&["define"])), 1);
}

/// libvirt's default pool points at a directory that does not exist yet:
/// create makes it.
#[test]
fn a_missing_images_directory_is_made() {
    let w = World::new();
    let images = w.path("pool/images");
    w.rule("virsh", "* pool-dumpxml default").out(&format!(
        "<pool type='dir'><name>default</name><target><path>{}</path></target></pool>\n",
        images.display()
    ));
    w.libvirt_up().domains(&[]).creation_works(80 * GIB);
    w.iso("Win11.iso");
    create(&w).success();
    assert!(images.join("windows.qcow2").exists());
}

/// The disk path cannot be created for another reason than "it exists":
/// that reason is said, not "appeared while preflight ran".
#[test]
fn a_disk_that_cannot_be_created_says_why() {
    let w = World::new();
    let not_a_dir = w.path("pool-file");
    std::fs::write(&not_a_dir, "a file where the pool's directory should be").unwrap();
    w.rule("virsh", "* pool-dumpxml default").out(&format!(
        "<pool type='dir'><name>default</name><target><path>{}</path></target></pool>\n",
        not_a_dir.display()
    ));
    w.libvirt_up().domains(&[]).creation_works(80 * GIB);
    w.iso("Win11.iso");
    let r = create(&w);
    r.failure();
    assert_eq!(
        normalize(&w, &r.stderr()),
        "error: creating windows failed; nothing was left behind\ncaused by: cannot create the disk $TMP/pool-file/windows.qcow2\ncaused by: Not a directory (os error 20)\n"
    );
    assert!(made_calls(&w).is_empty());
}

/// qemu-img made something else than asked (another format, or another
/// size): refused and rolled back.
#[test]
fn a_disk_of_the_wrong_format_or_size_is_rolled_back() {
    for (format, size) in [("raw", 80 * GIB), ("qcow2", 40 * GIB)] {
        let w = world(|w| {
            w.rule("qemu-img", "info *").out(&format!(
                "{{\"format\": \"{format}\", \"virtual-size\": {size}, \"actual-size\": 1}}\n"
            ));
        });
        let r = create(&w);
        r.failure();
        assert!(
            r.stderr().contains(&format!(
                "caused by: the new disk is {format} of {size} bytes, not qcow2 of {} bytes\n",
                80 * GIB
            )),
            "{}",
            r.stderr()
        );
        assert!(
            !made_calls(&w)
                .iter()
                .any(|c| c.starts_with(&argv!["virt-install", "--connect"]))
        );
        assert_nothing_left(&w);
    }
}

/// A qemu-img that fails and removes the file itself: the rollback finds
/// it gone, which is what it wanted, and says nothing is left.
#[test]
fn a_disk_already_gone_at_rollback_is_fine() {
    let w = world(|w| {
        w.rule("qemu-img", "create *")
            .sh("/bin/rm -f \"$5\"\n")
            .err("qemu-img: Could not create: Input/output error\n")
            .code(1);
    });
    let r = create(&w);
    r.failure();
    assert_eq!(
        creating(&w, &r.stdout()),
        "Creating\nRolled back\n  • removed        manifest entry\n"
    );
    assert!(
        r.stderr()
            .starts_with("error: creating windows failed; nothing was left behind\n")
    );
    assert_nothing_left(&w);
}

/// What the rollback cannot remove is named as left, with the reason
/// (here a directory where the disk was: no one can unlink it).
#[test]
fn a_disk_the_rollback_cannot_remove_is_named() {
    let w = world(|w| {
        w.rule("qemu-img", "create *")
            .sh("/bin/rm -f \"$5\"\n/bin/mkdir \"$5\"\n")
            .err("qemu-img: Could not create: Input/output error\n")
            .code(1);
    });
    let r = create(&w);
    r.failure();
    assert_eq!(
        creating(&w, &r.stdout()),
        "Creating\nRolled back\n  • left           disk $TMP/images/windows.qcow2: Is a directory (os error 21)\n"
    );
    assert!(normalize(&w, &r.stderr()).starts_with(
        "error: creating windows failed; some of what it made is left (see \"left\" above)\n"
    ));
    assert_eq!(w.manifest()["vms"][0]["creating"], true);
}
