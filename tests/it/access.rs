//! An ISO under a 0700 home (Fedora's default) that QEMU's user cannot
//! reach: create finds it in preflight, grants search with an ACL (the real
//! `setfacl`, on the test's own directories) when allowed, and otherwise
//! fails with the directory and the fix, creating nothing.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::harness::{World, argv};

const GIB: u64 = 1 << 30;

/// A world whose install ISO sits in a 0700 home's Downloads, and the real
/// setfacl/getfacl.
fn world() -> (World, String) {
    let w = World::new();
    for tool in ["setfacl", "getfacl"] {
        let real = Path::new("/usr/bin").join(tool);
        assert!(
            real.exists(),
            "this test runs the real {tool}: install it (sudo bash scripts/provision-virt-stack.sh)"
        );
        std::os::unix::fs::symlink(&real, w.path("bin").join(tool)).unwrap();
    }
    w.libvirt_up().domains(&[]).creation_works(80 * GIB);
    let dl = w.path("home/Downloads");
    std::fs::create_dir_all(&dl).unwrap();
    let iso = dl.join("Win11.iso");
    let data = crate::harness::stand_in_iso();
    std::fs::write(&iso, data).unwrap();
    std::fs::set_permissions(w.path("home"), std::fs::Permissions::from_mode(0o700)).unwrap();
    (w, iso.display().to_string())
}

fn acl(path: &str) -> String {
    let out = std::process::Command::new("/usr/bin/getfacl")
        .args(["-n", "-c", path])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn yes_grants_search_with_an_acl_and_says_so() {
    let (w, iso) = world();
    let r = w.bkt(&["vm", "create", "--iso", &iso, "--yes"]);
    r.success();
    let out = crate::normalize(&w, &r.stdout());
    assert!(
        out.contains("  ✓ QEMU access    granted libvirt-qemu search on $TMP/home (setfacl)\n"),
        "{out}"
    );
    assert!(acl(&w.p("home")).contains("user:64055:--x\n"));
    // Only what was missing: Downloads was open already.
    assert!(!acl(&w.p("home/Downloads")).contains("64055"));
}

#[test]
fn without_yes_and_without_a_terminal_nothing_changes() {
    let (w, iso) = world();
    let r = w.bkt(&["vm", "create", "--iso", &iso]);
    r.failure();
    let out = crate::normalize(&w, &r.stdout());
    assert!(
        out.contains(
            "  ✗ QEMU access    libvirt-qemu (QEMU's user) cannot open the ISOs: $TMP/home is 0700\n    fix: setfacl -m u:64055:x $TMP/home; or move the ISOs to a directory QEMU can read, such as /var/lib/libvirt/images\n"
        ),
        "{out}"
    );
    assert_eq!(
        crate::normalize(&w, &r.stderr()),
        "error: preflight failed (QEMU access: libvirt-qemu (QEMU's user) cannot open the ISOs: $TMP/home is 0700); nothing was created\n"
    );
    assert!(
        !w.calls()
            .iter()
            .any(|c| c[0] == "setfacl" || c.starts_with(&argv!["qemu-img", "create"]))
    );
    assert!(!acl(&w.p("home")).contains("64055"));
    assert!(!w.manifest_path().exists());
}

/// Another check failing: no permission is changed for a create that will
/// not happen.
#[test]
fn nothing_is_granted_when_another_check_fails() {
    let (w, iso) = world();
    let r = w.bkt(&["vm", "create", "--iso", &iso, "--memory", "64G", "--yes"]);
    r.failure();
    assert!(r.stdout().contains("  ✗ QEMU access    "));
    assert!(!acl(&w.p("home")).contains("64055"));
}

/// An unreadable file needs read, not search.
#[test]
fn an_unreadable_iso_gets_read() {
    let (w, iso) = world();
    std::fs::set_permissions(w.path("home"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&iso, std::fs::Permissions::from_mode(0o600)).unwrap();
    let r = w.bkt(&["vm", "create", "--iso", &iso, "--yes"]);
    r.success();
    assert!(crate::normalize(&w, &r.stdout()).contains(
        "  ✓ QEMU access    granted libvirt-qemu read on $TMP/home/Downloads/Win11.iso (setfacl)\n"
    ));
    assert!(acl(&iso).contains("user:64055:r--\n"));
}

#[test]
fn dry_run_only_says_what_a_real_run_would_ask() {
    let (w, iso) = world();
    let r = w.bkt(&["vm", "create", "--iso", &iso, "--dry-run", "--yes"]);
    r.success();
    assert!(crate::normalize(&w, &r.stdout()).contains(
        "  ⚠ QEMU access    libvirt-qemu (QEMU's user) cannot open the ISOs: $TMP/home is 0700; a real run asks to grant it\n"
    ));
    assert!(!acl(&w.p("home")).contains("64055"));
}
