//! `bkt vm create --unattended` against fakes: the answer ISO is built from
//! the virtio ISO, attached as a third CD-ROM, the install is watched until
//! Remote Desktop answers (a listener on loopback), and the ISO goes away.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;

use crate::harness::{URI, World, fixture};

const GIB: u64 = 1 << 30;

fn world(ip: &str) -> World {
    let w = World::new();
    w.libvirt_up().domains(&[]).creation_works(80 * GIB);
    w.install_fake("xorriso");
    // Extraction makes the folder; mkisofs writes the file after -o and
    // keeps a copy of the answer file to look at.
    w.rule("xorriso", "-osirrox on *")
        .sh("for a; do last=$a; done\n/bin/mkdir -p \"$last\"\n");
    w.rule("xorriso", "-as mkisofs *").sh(&format!(
        "while [ $# -gt 0 ]; do if [ \"$1\" = -o ]; then : >\"$2\"; out=$2; fi; last=$1; shift; done\n/bin/cp \"$last/autounattend.xml\" \"{}\"\n/bin/ls -R \"$last\" >\"{}\"\n",
        w.p("answer-copy.xml"),
        w.p("answer-tree.txt")
    ));
    w.rule("virsh", "* send-key windows KEY_ENTER");
    w.rule("virsh", "* domifaddr windows --source lease")
        .out(&fixture("virsh/domifaddr-lease.txt").replace("192.168.122.4", ip));
    let xml = fixture("virsh/dumpxml-windows-running.xml")
        .replace("/tmp/win.iso", &w.p("images/windows-answer.iso"))
        .replace("<name>t1</name>", "<name>windows</name>");
    w.rule("virsh", "* dumpxml --inactive windows").out(&xml);
    w.rule("virsh", "* domstate --reason windows")
        .out("running (booted)\n");
    w.rule("virsh", "* change-media windows sda --eject --live")
        .out("Successfully ejected media.\n");
    w.rule("virsh", "* detach-disk windows sda --config")
        .out("Disk detached successfully\n");
    std::fs::write(w.path("pw"), "correct horse\n").unwrap();
    std::fs::set_permissions(w.path("pw"), std::fs::Permissions::from_mode(0o600)).unwrap();
    w
}

#[test]
fn hands_free_from_answers_to_remote_desktop() {
    let w = world("127.0.0.80");
    let _rdp = TcpListener::bind("127.0.0.80:3389").unwrap();
    let iso = w.iso("Win11.iso");
    let virtio = w.iso("virtio-win.iso");
    let r = w.bkt(&[
        "vm",
        "create",
        "--iso",
        &iso,
        "--virtio-iso",
        &virtio,
        "--yes",
        "--unattended",
        "--username",
        "anna",
        "--password-file",
        &w.p("pw"),
        "--no-bitlocker",
    ]);
    r.success();
    let out = r.stdout();
    assert!(
        out.contains(&format!(
            "  • answers        {} (autounattend.xml, VirtIO drivers; 0600)\n",
            w.p("images/windows-answer.iso")
        )),
        "{out}"
    );
    assert!(out.contains("Windows is installed ("), "{out}");
    assert!(
        out.ends_with(
            "Remote Desktop answers on 127.0.0.80:3389\nConnect with: bkt vm connect windows\n"
        ),
        "{out}"
    );
    let calls = w.call_lines();
    for d in ["viostor", "vioscsi", "NetKVM"] {
        assert!(
            calls.iter().any(|c| c.starts_with(&format!(
                "xorriso -osirrox on -indev {virtio} -extract /{d}/w11/amd64 "
            ))),
            "{d}: {calls:?}"
        );
    }
    let install = calls
        .iter()
        .find(|c| c.starts_with("virt-install"))
        .unwrap();
    assert!(install.contains(&format!(
        "--disk path={virtio},device=cdrom,bus=sata,readonly=on --disk path={},device=cdrom,bus=sata,readonly=on ",
        w.p("images/windows-answer.iso")
    )), "{install}");
    assert!(
        calls
            .iter()
            .any(|c| c == &format!("virsh -c {URI} send-key windows KEY_ENTER"))
    );
    // The password is on no command line, and only encoded in the file.
    assert!(!calls.iter().any(|c| c.contains("correct horse")));
    let answer = std::fs::read_to_string(w.path("answer-copy.xml")).unwrap();
    assert!(!answer.contains("correct horse"));
    assert!(answer.contains("<Name>anna</Name>"));
    assert!(answer.contains("<PreventDeviceEncryption>true</PreventDeviceEncryption>"));
    let tree = std::fs::read_to_string(w.path("answer-tree.txt")).unwrap();
    assert!(tree.contains("$WinPEDriver$"), "{tree}");
    // Done: out of the VM, off the disk, and noted.
    let n = calls.len();
    assert_eq!(
        calls[n - 2],
        format!("virsh -c {URI} change-media windows sda --eject --live")
    );
    assert_eq!(
        calls[n - 1],
        format!("virsh -c {URI} detach-disk windows sda --config")
    );
    assert!(!w.path("images/windows-answer.iso").exists());
    let e = &w.manifest()["vms"][0];
    assert_eq!(e["rdp_enabled"], true);
    assert_eq!(e["rdp_user"], "anna");
    assert!(e.get("answer_iso").is_none());
}

#[test]
fn a_stalled_install_says_so_with_a_screenshot() {
    let w = world("127.0.0.81");
    w.rule("virsh", "* screenshot windows --file *")
        .sh("for a; do last=$a; done\n: >\"$last\"\n");
    let iso = w.iso("Win11.iso");
    let virtio = w.iso("virtio-win.iso");
    let r = w.bkt(&[
        "vm",
        "create",
        "--iso",
        &iso,
        "--virtio-iso",
        &virtio,
        "--yes",
        "--unattended",
        "--username",
        "anna",
        "--password-file",
        &w.p("pw"),
        "--install-timeout",
        "2",
    ]);
    r.failure();
    let err = r.stderr();
    assert!(
        err.contains(
            "error: the install made no progress for 2s (first logon: installing the guest tools; "
        ),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "hint: look at the screen: {} (or bkt vm connect windows --spice)",
            w.p("home/.cache/bkt/vm/windows-install-stalled.ppm")
        )),
        "{err}"
    );
    // The VM stays for the user to look at; the answer ISO with it.
    assert!(w.path("images/windows-answer.iso").exists());
    assert_eq!(
        w.manifest()["vms"][0]["answer_iso"],
        w.p("images/windows-answer.iso")
    );
}

#[test]
fn answers_are_checked_before_anything_is_made() {
    let w = world("127.0.0.82");
    let iso = w.iso("Win11.iso");
    let r = w.bkt(&["vm", "create", "--iso", &iso, "--yes", "--unattended"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: --unattended needs the Windows account's name\nhint: pass --username NAME (and --password-file PATH)\n"
    );
    let r = w.bkt(&[
        "vm",
        "create",
        "--iso",
        &iso,
        "--yes",
        "--unattended",
        "--username",
        "anna",
    ]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: --unattended needs a password for anna\nhint: put it in a file only you can read and pass --password-file PATH\n"
    );
    let r = w.bkt(&[
        "vm",
        "create",
        "--iso",
        &iso,
        "--yes",
        "--unattended",
        "--username",
        "a/b",
        "--password-file",
        &w.p("pw"),
    ]);
    r.failure();
    assert!(
        r.stderr()
            .starts_with("error: invalid Windows user name \"a/b\"")
    );
    let r = w.bkt(&["vm", "create", "--iso", &iso, "--yes", "--username", "anna"]);
    assert_eq!(r.code(), 2, "--username needs --unattended");
    assert!(w.call_lines().is_empty(), "{:?}", w.call_lines());
    assert!(!w.manifest_path().exists());
}

#[test]
fn a_failed_domain_takes_the_answer_iso_along() {
    let w = World::new();
    w.libvirt_up();
    w.rule("virsh", "-q -c * list --all --name").out("\n");
    w.rule("qemu-img", "create *").sh(": >\"$5\"\n");
    w.rule("qemu-img", "info *").out(&format!(
        "{{\"format\": \"qcow2\", \"virtual-size\": {}, \"actual-size\": 1}}\n",
        80 * GIB
    ));
    w.rule("virt-install", "*").err("ERROR boom\n").code(1);
    w.rule("virsh", "* domstate --reason windows")
        .err("error: failed to get domain 'windows'\n")
        .code(1);
    w.install_fake("xorriso");
    w.rule("xorriso", "-osirrox on *")
        .sh("for a; do last=$a; done\n/bin/mkdir -p \"$last\"\n");
    w.rule("xorriso", "-as mkisofs *")
        .sh("while [ $# -gt 0 ]; do if [ \"$1\" = -o ]; then : >\"$2\"; fi; shift; done\n");
    std::fs::write(w.path("pw"), "pw\n").unwrap();
    let iso = w.iso("Win11.iso");
    let r = w.bkt(&[
        "vm",
        "create",
        "--iso",
        &iso,
        "--yes",
        "--unattended",
        "--username",
        "anna",
        "--password-file",
        &w.p("pw"),
    ]);
    r.failure();
    assert!(
        r.stdout().contains(&format!(
            "  • removed        answer ISO {}\n",
            w.p("images/windows-answer.iso")
        )),
        "{}",
        r.stdout()
    );
    assert!(!w.path("images/windows-answer.iso").exists());
    assert!(
        r.stderr().contains("warning: ") && r.stderr().contains("can be read by other users"),
        "{}",
        r.stderr()
    );
}
