//! `destroy` deletes only what bkt made.

use std::fs;
use std::path::Path;

use crate::harness::*;

/// A domain defined by hand (not by bkt) with disks given as
/// (path, shareable).
fn define_by_hand(name: &str, disks: &[(&str, bool)], dir: &Path) {
    let devs: String = disks
        .iter()
        .zip(["vda", "vdb", "vdc"])
        .map(|((path, shareable), dev)| {
            format!(
                "<disk type='file' device='disk'><driver name='qemu' type='raw'/>\
                 <source file='{path}'/><target dev='{dev}' bus='virtio'/>{}</disk>",
                if *shareable { "<shareable/>" } else { "" }
            )
        })
        .collect();
    let xml = dir.join(format!("{name}.xml"));
    fs::write(
        &xml,
        format!(
            "<domain type='qemu'><name>{name}</name><memory unit='MiB'>128</memory>\
             <os><type arch='x86_64' machine='q35'>hvm</type></os><devices>{devs}</devices></domain>"
        ),
    )
    .unwrap();
    ok(&virsh(&["define", xml.to_str().unwrap()]));
}

/// A VM defined by hand keeps its disk in the images directory and its
/// shareable disk elsewhere.
#[test]
#[ignore = "needs the real virt stack: run scripts/test-all.sh"]
fn destroy_keeps_the_disks_of_a_vm_bkt_did_not_make() {
    let env = Env::new("destroy_hand_made", &["e2e-hand"]);
    let images_disk = "/var/lib/libvirt/images/e2e-hand.img";
    env.remove_at_end(images_disk);
    let shared_disk = env.shared.path().join("e2e-shared.img");
    for p in [Path::new(images_disk), shared_disk.as_path()] {
        ok(&run(
            "qemu-img",
            &["create", "-q", "-f", "raw", p.to_str().unwrap(), "16M"],
        ));
    }
    define_by_hand(
        "e2e-hand",
        &[(images_disk, false), (shared_disk.to_str().unwrap(), true)],
        env.work.path(),
    );
    let out = env.bkt(&["vm", "destroy", "e2e-hand", "--yes"]);
    let (stdout, _) = text(&out);
    ok(&out);
    assert!(!defined("e2e-hand"));
    assert!(Path::new(images_disk).exists(), "kept {images_disk}");
    assert!(shared_disk.exists(), "kept {}", shared_disk.display());
    assert!(
        stdout.contains(&format!(
            "  • kept           disk {images_disk} (not made by bkt; delete it with: rm -- {images_disk})\n"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("(shareable: meant to be used by several VMs;"),
        "{stdout}"
    );
    fs::remove_file(images_disk).unwrap();
}

/// A bkt VM whose disk another domain also uses keeps that disk.
#[test]
#[ignore = "needs the real virt stack: run scripts/test-all.sh"]
fn destroy_keeps_a_disk_another_domain_uses() {
    let env = Env::new("destroy_shared_disk", &["e2e-own", "e2e-twin"]);
    let iso = env.media("win-standin.iso");
    ok(&env.bkt(&small_create("e2e-own", iso.to_str().unwrap())));
    let disk = "/var/lib/libvirt/images/e2e-own.qcow2";
    define_by_hand("e2e-twin", &[(disk, false)], env.work.path());
    let out = env.bkt(&["vm", "destroy", "e2e-own", "--yes"]);
    let (stdout, _) = text(&out);
    ok(&out);
    assert!(!defined("e2e-own"));
    assert!(Path::new(disk).exists(), "kept {disk}, which e2e-twin uses");
    assert!(
        stdout.contains(&format!(
            "  • kept           disk {disk} (also used by e2e-twin)\n"
        )),
        "{stdout}"
    );
    assert!(!env.manifest_names().contains(&"e2e-own".to_string()));
    ok(&virsh(&["undefine", "e2e-twin"]));
    fs::remove_file(disk).unwrap();
}
