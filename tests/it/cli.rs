//! The command line itself: help, usage errors.

use crate::harness::World;

#[test]
fn help_reads_like_a_man_page() {
    let w = World::new();
    let r = w.bkt(&["vm", "--help"]);
    r.success();
    let out = r.stdout();
    for s in [
        "create",
        "start",
        "stop",
        "status",
        "destroy",
        "--connect <URI>",
        "--verbose",
        "Examples:",
        "vms.json",
    ] {
        assert!(out.contains(s), "missing {s} in\n{out}");
    }
    let r = w.bkt(&["vm", "create", "--help"]);
    r.success();
    for s in [
        "--iso <PATH>",
        "--virtio-iso <PATH>",
        "--disk-size <SIZE>",
        "--memory <SIZE>",
        "--cpus <N>",
        "--notes <TEXT>",
        "--virt-type <VIRT_TYPE>",
        "--yes",
        "--dry-run",
        "[default: 80G]",
    ] {
        assert!(r.stdout().contains(s), "missing {s}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let w = World::new();
    let r = w.bkt(&["vm", "create", "linux"]);
    assert_eq!(r.code(), 2);
    assert!(r.stderr().contains("invalid value 'linux'"));
    let r = w.bkt(&["vm", "stop"]);
    assert_eq!(r.code(), 2);
    assert!(w.calls().is_empty());
}
