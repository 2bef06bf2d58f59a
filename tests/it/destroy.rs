//! `bkt vm destroy`: every decision about what goes and what stays, with
//! the calls made and not made, the screen, and the files and manifest
//! afterwards.

use crate::harness::{URI, World, argv, fixture, mentions, virsh_argv};
use crate::lifecycle::nosuch;
use crate::normalize;

/// The UUID of the recorded Windows-shaped domain.
const UUID: &str = "405a8b53-ad14-470a-9963-b210e9f1e0aa";
const UNDEFINE_FLAGS: [&str; 5] = [
    "--nvram",
    "--tpm",
    "--snapshots-metadata",
    "--checkpoints-metadata",
    "--managed-save",
];

/// The recorded domain, renamed `windows`, its files in the test's world.
fn domain_xml(w: &World) -> String {
    fixture("virsh/dumpxml-windows-running.xml")
        .replace(
            "/var/lib/libvirt/images/t1.qcow2",
            &w.p("images/windows.qcow2"),
        )
        .replace("/tmp/win.iso", &w.p("isos/Win11.iso"))
        .replace("<name>t1</name>", "<name>windows</name>")
}

/// bkt's `windows` (with its disk and snapshot copies on record) and an
/// unrelated entry.
fn managed(w: &World) {
    w.write_manifest(serde_json::json!({"vms": [{
        "name": "windows", "type": "windows11", "disk": w.p("images/windows.qcow2"),
        "created": "2026-01-25", "rdp_enabled": false, "notes": "", "uri": URI,
        "isos": [w.p("isos/Win11.iso")]
    }, {"name": "other", "type": "windows11", "disk": "/o.qcow2", "created": "2026-01-25",
        "uri": URI}],
    "files": [
        {"vm": "windows", "uri": URI, "path": w.p("images/windows.qcow2")},
        {"vm": "windows", "uri": URI, "path": w.p("images/windows.snapshots")},
        {"vm": "other", "uri": URI, "path": "/o.qcow2"}
    ]}));
    std::fs::write(w.path("images/windows.qcow2"), "disk").unwrap();
    std::fs::create_dir_all(w.path("images/windows.snapshots/clean")).unwrap();
    std::fs::write(w.path("images/windows.snapshots/clean/nvram.fd"), "v").unwrap();
    w.iso("Win11.iso");
}

/// libvirt has `windows` in `state` with `xml`, and these other domains
/// (their definitions as one batch).
fn libvirt(w: &World, state: &str, xml: &str, others: &[(&str, String)]) {
    w.rule("virsh", "* domstate --reason windows")
        .out(&format!("{state}\n"));
    w.nothing_saved();
    w.rule("virsh", "* dumpxml --inactive windows").out(xml);
    let mut uuids = vec![UUID.to_string()];
    uuids.extend(others.iter().map(|(u, _)| u.to_string()));
    w.rule("virsh", "-q -c * list --all --uuid")
        .out(&format!("{}\n\n", uuids.join("\n")));
    let batch: String = others
        .iter()
        .map(|(u, x)| format!("@@bkt {u}\n{x}\n{x}\n"))
        .collect();
    w.rule("virsh", "-c * echo @@bkt *").out(&batch);
    w.rule("virsh", &format!("* destroy {UUID}"))
        .out(&fixture("virsh/destroy-uuid.txt"));
    w.rule("virsh", &format!("* undefine {UUID} *"))
        .out(&fixture("virsh/undefine-uuid.txt"));
    // No pool lists the world's files.
    w.rule("virsh", "* vol-delete *")
        .err(&fixture("virsh/vol-delete-not-a-volume.txt"))
        .code(1);
}

/// The calls that hold `word` as an argument or a whole word of one.
fn calls_with(w: &World, word: &str) -> Vec<Vec<String>> {
    w.calls()
        .into_iter()
        .filter(|c| mentions(c, word))
        .collect()
}

#[test]
fn a_bkt_vm_goes_with_what_bkt_made_and_keeps_media() {
    let w = World::new();
    managed(&w);
    libvirt(&w, "running (booted)", &domain_xml(&w), &[]);
    let r = w.bkt(&["vm", "destroy", "windows", "--yes"]);
    r.success();
    assert_eq!(
        normalize(&w, &r.stdout()),
        format!(
            "windows was running; powered it off
Destroyed windows
  • removed        domain windows (running: powered off first)
  • removed        NVRAM /var/lib/libvirt/qemu/nvram/t1_VARS.fd
  • removed        TPM state of windows (libvirt's, by UUID {UUID})
  • removed        disk $TMP/images/windows.qcow2
  • removed        snapshots $TMP/images/windows.snapshots
  • removed        manifest entry windows
  • kept           install media $TMP/isos/Win11.iso (never deleted)
"
        )
    );
    assert!(!w.path("images/windows.qcow2").exists());
    assert!(!w.path("images/windows.snapshots").exists());
    assert!(w.path("isos/Win11.iso").exists());
    let m = w.manifest();
    assert_eq!(m["vms"].as_array().unwrap().len(), 1);
    assert_eq!(m["vms"][0]["name"], "other");
    assert_eq!(
        m["files"],
        serde_json::json!([{"vm": "other", "uri": URI, "path": "/o.qcow2"}])
    );
    assert_eq!(
        &w.calls()[..],
        [
            virsh_argv(&["domstate", "--reason", "windows"]),
            virsh_argv(&["dumpxml", "--inactive", "windows"]),
            argv!["virsh", "-q", "-c", URI, "list", "--all", "--uuid"],
            argv!["virsh", "-c", URI, "destroy", UUID],
            argv!["virsh", "-c", URI, "undefine", UUID, ..UNDEFINE_FLAGS],
            argv![
                "virsh",
                "-c",
                URI,
                "vol-delete",
                w.p("images/windows.qcow2")
            ],
        ]
    );
}

#[test]
fn a_saved_vm_goes_with_its_saved_memory() {
    let w = World::new();
    let w = w.env("BKT_VM_SAVE_DIR", "/var/lib/libvirt/qemu/save");
    managed(&w);
    w.rule("virsh", "* dominfo windows")
        .out(&fixture("virsh/dominfo-saved.txt"));
    // What virsh printed undefining a saved domain (`rec-tiny`, by name).
    w.rule_first("virsh", &format!("* undefine {UUID} *"))
        .out(&fixture("virsh/undefine-managed-save.txt"));
    libvirt(&w, "shut off (saved)", &domain_xml(&w), &[]);
    let r = w.bkt(&["vm", "destroy", "windows", "--yes"]);
    r.success();
    assert!(
        normalize(&w, &r.stdout()).starts_with(&format!(
            "Destroyed windows
  • removed        domain windows
  • removed        NVRAM /var/lib/libvirt/qemu/nvram/t1_VARS.fd
  • removed        TPM state of windows (libvirt's, by UUID {UUID})
  • removed        saved memory /var/lib/libvirt/qemu/save/windows.save
  • removed        disk $TMP/images/windows.qcow2
"
        )),
        "{}",
        r.stdout()
    );
    // libvirt removes the saved image with the domain (--managed-save).
    assert_eq!(
        calls_with(&w, "undefine"),
        [argv![
            "virsh",
            "-c",
            URI,
            "undefine",
            UUID,
            ..UNDEFINE_FLAGS
        ]]
    );
}

#[test]
fn keep_disk_keeps_it_and_says_how_to_delete_it() {
    let w = World::new();
    managed(&w);
    libvirt(&w, "shut off (shutdown)", &domain_xml(&w), &[]);
    let r = w.bkt(&["vm", "destroy", "windows", "--yes", "--keep-disk"]);
    r.success();
    let out = normalize(&w, &r.stdout());
    assert!(out.contains(
        "  • kept           disk $TMP/images/windows.qcow2 (--keep-disk; delete it with: rm -- $TMP/images/windows.qcow2)\n"
    ), "{out}");
    assert!(out.contains("  • removed        snapshots $TMP/images/windows.snapshots\n"));
    assert!(w.path("images/windows.qcow2").exists());
    assert!(calls_with(&w, "destroy").is_empty());
    assert!(calls_with(&w, "vol-delete").is_empty());
    // Kept by choice: no longer bkt's to delete.
    assert_eq!(w.manifest()["files"].as_array().unwrap().len(), 1);
}

#[test]
fn without_confirmation_nothing_is_touched() {
    let w = World::new();
    managed(&w);
    libvirt(&w, "shut off (shutdown)", &domain_xml(&w), &[]);
    let before = std::fs::read_to_string(w.manifest_path()).unwrap();
    let r = w.bkt(&["vm", "destroy", "windows"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: refusing to destroy windows without confirmation; nothing was deleted\nhint: run it on a terminal to see what goes and type the name, or pass --yes: bkt vm destroy windows --yes\n"
    );
    assert!(w.path("images/windows.qcow2").exists());
    assert_eq!(std::fs::read_to_string(w.manifest_path()).unwrap(), before);
    for word in ["undefine", "destroy", "vol-delete"] {
        assert!(calls_with(&w, word).is_empty(), "{word}");
    }
}

/// A VM bkt did not make: undefined after confirmation, every disk kept
/// and listed with the reason and the command that would delete it.
#[test]
fn a_vm_bkt_did_not_make_keeps_every_disk() {
    let w = World::new();
    let xml = fixture("virsh/dumpxml-hand.xml");
    let uuid = roxmltree::Document::parse(&xml)
        .unwrap()
        .descendants()
        .find(|n| n.has_tag_name("uuid"))
        .unwrap()
        .text()
        .unwrap()
        .to_string();
    w.rule("virsh", "* domstate --reason hand")
        .out("shut off\n\n");
    w.nothing_saved();
    w.rule("virsh", "* dumpxml --inactive hand").out(&xml);
    w.rule("virsh", "-q -c * list --all --uuid")
        .out(&format!("{uuid}\n\n"));
    w.rule("virsh", &format!("* undefine {uuid} *"))
        .out(&format!("Domain '{uuid}' has been undefined\n"));
    let r = w.bkt(&["vm", "destroy", "hand", "--yes"]);
    r.success();
    assert_eq!(
        r.stdout(),
        "Destroyed hand
  • removed        domain hand
  • kept           disk /var/lib/libvirt/images/hand.qcow2 (not made by bkt; delete it with: rm -- /var/lib/libvirt/images/hand.qcow2)
  • kept           disk /srv/shared-disks/data.img (shareable: meant to be used by several VMs; delete it with: rm -- /srv/shared-disks/data.img)
  • kept           disk /dev/loop7 (a block device; bkt never deletes those)
  • kept           disk pooled.qcow2 (pool images) (a pool volume bkt did not make; delete it with: virsh -c qemu:///system vol-delete --pool images pooled.qcow2)
"
    );
    assert_eq!(
        w.calls(),
        [
            virsh_argv(&["domstate", "--reason", "hand"]),
            virsh_argv(&["dumpxml", "--inactive", "hand"]),
            argv!["virsh", "-q", "-c", URI, "list", "--all", "--uuid"],
            virsh_argv(&["dominfo", "hand"]),
            argv!["virsh", "-c", URI, "undefine", &uuid, ..UNDEFINE_FLAGS],
        ]
    );
    assert!(!w.manifest_path().exists());
}

/// bkt made the disk, but another domain uses it now: it stays.
#[test]
fn a_disk_another_domain_uses_is_kept() {
    let w = World::new();
    managed(&w);
    let other = fixture("virsh/dumpxml-hand.xml").replace(
        "/var/lib/libvirt/images/hand.qcow2",
        &w.p("images/windows.qcow2"),
    );
    libvirt(
        &w,
        "shut off (shutdown)",
        &domain_xml(&w),
        &[("11111111-2222-4333-8444-555555555555", other)],
    );
    let r = w.bkt(&["vm", "destroy", "windows", "--yes"]);
    r.success();
    assert!(
        normalize(&w, &r.stdout())
            .contains("  • kept           disk $TMP/images/windows.qcow2 (also used by hand)\n"),
        "{}",
        r.stdout()
    );
    assert!(w.path("images/windows.qcow2").exists());
    assert!(calls_with(&w, "vol-delete").is_empty());
    assert!(w.calls().contains(&virsh_argv(&["echo @@bkt 11111111-2222-4333-8444-555555555555; dumpxml 11111111-2222-4333-8444-555555555555; dumpxml --inactive 11111111-2222-4333-8444-555555555555"])));
    // Not bkt's to delete any more.
    assert_eq!(
        w.manifest()["files"],
        serde_json::json!([{"vm": "other", "uri": URI, "path": "/o.qcow2"}])
    );
}

/// bkt recorded the disk, but the definition now marks it shareable or
/// has a block device there: kept.
#[test]
fn shareable_and_block_disks_are_kept_even_when_recorded() {
    let w = World::new();
    managed(&w);
    let xml = domain_xml(&w).replace(
        "<target dev='vda' bus='virtio'/>",
        "<target dev='vda' bus='virtio'/>\n      <shareable/>",
    );
    assert!(xml.contains("<shareable/>"));
    libvirt(&w, "shut off", &xml, &[]);
    let r = w.bkt(&["vm", "destroy", "windows", "--yes"]);
    r.success();
    assert!(normalize(&w, &r.stdout()).contains(
        "  • kept           disk $TMP/images/windows.qcow2 (shareable: meant to be used by several VMs; delete it with: rm -- $TMP/images/windows.qcow2)\n"
    ));
    assert!(w.path("images/windows.qcow2").exists());

    let w = World::new();
    managed(&w);
    let xml = domain_xml(&w)
        .replace(
            "<disk type='file' device='disk'>",
            "<disk type='block' device='disk'>",
        )
        .replace(
            &format!("<source file='{}'", w.p("images/windows.qcow2")),
            &format!("<source dev='{}'", w.p("images/windows.qcow2")),
        );
    libvirt(&w, "shut off", &xml, &[]);
    let r = w.bkt(&["vm", "destroy", "windows", "--yes"]);
    r.success();
    assert!(normalize(&w, &r.stdout()).contains(
        "  • kept           disk $TMP/images/windows.qcow2 (a block device; bkt never deletes those)\n"
    ));
    assert!(w.path("images/windows.qcow2").exists());
    assert!(calls_with(&w, "vol-delete").is_empty());
}

/// A disk a pool lists is deleted through libvirt, so the pool forgets it.
#[test]
fn a_pool_volume_is_deleted_through_libvirt() {
    let w = World::new();
    managed(&w);
    let disk = w.p("images/windows.qcow2");
    w.rule("virsh", &format!("* vol-delete {disk}"))
        .sh(&format!("/bin/rm \"{disk}\"\n"))
        .out(&fixture("virsh/vol-delete.txt"));
    libvirt(&w, "shut off", &domain_xml(&w), &[]);
    let r = w.bkt(&["vm", "destroy", "windows", "--yes"]);
    r.success();
    assert!(
        normalize(&w, &r.stdout()).contains("  • removed        disk $TMP/images/windows.qcow2\n")
    );
    assert!(!w.path("images/windows.qcow2").exists());
    assert_eq!(
        calls_with(&w, "vol-delete"),
        [argv!["virsh", "-c", URI, "vol-delete", &disk]]
    );
}

/// A deletion that fails is reported, and stays on record so that running
/// destroy again finishes it.
#[test]
fn a_failed_deletion_stays_on_record_for_the_next_run() {
    let w = World::new();
    managed(&w);
    let disk = w.p("images/windows.qcow2");
    w.rule("virsh", &format!("* vol-delete {disk}"))
        .err("error: Failed to delete vol windows.qcow2\nerror: cannot unlink file: Device or resource busy\n")
        .code(1)
        .times(1);
    libvirt(&w, "shut off", &domain_xml(&w), &[]);
    let r = w.bkt(&["vm", "destroy", "windows", "--yes"]);
    r.failure();
    let out = normalize(&w, &r.stdout());
    assert!(!out.contains("removed        disk"), "{out}");
    assert!(out.contains("  • removed        snapshots $TMP/images/windows.snapshots\n"));
    let err = normalize(&w, &r.stderr());
    assert!(
        err.starts_with("error: could not delete: $TMP/images/windows.qcow2: "),
        "{err}"
    );
    assert!(err.ends_with("hint: the manifest still records them: fix the cause and run bkt vm -c qemu:///system destroy windows again\n"));
    assert_eq!(
        w.manifest()["files"],
        serde_json::json!([
            {"vm": "windows", "uri": URI, "path": disk},
            {"vm": "other", "uri": URI, "path": "/o.qcow2"}
        ])
    );
    // Again, with the domain gone: the record alone is enough, and goes.
    let w2 = &w;
    w2.rule_first("virsh", "* domstate --reason windows")
        .err("error: failed to get domain 'windows'\n")
        .code(1);
    let r = w.bkt(&["vm", "destroy", "windows", "--yes"]);
    r.success();
    assert_eq!(
        normalize(&w, &r.stdout()),
        "Destroyed windows\n  • removed        disk $TMP/images/windows.qcow2\n"
    );
    assert!(!w.path("images/windows.qcow2").exists());
    assert_eq!(
        w.manifest()["files"],
        serde_json::json!([{"vm": "other", "uri": URI, "path": "/o.qcow2"}])
    );
}

/// libvirt lost the domain: bkt's own files and the entry go.
#[test]
fn a_vm_libvirt_lost_takes_its_files_and_entry() {
    let w = World::new();
    managed(&w);
    nosuch(&w, "windows");
    w.rule("virsh", "-q -c * list --all --uuid").out("\n");
    w.rule("virsh", "* vol-delete *")
        .err(&fixture("virsh/vol-delete-not-a-volume.txt"))
        .code(1);
    let r = w.bkt(&["vm", "destroy", "windows", "--yes"]);
    r.success();
    assert_eq!(
        normalize(&w, &r.stdout()),
        "Destroyed windows
  • removed        disk $TMP/images/windows.qcow2
  • removed        snapshots $TMP/images/windows.snapshots
  • removed        manifest entry windows
  • kept           install media $TMP/isos/Win11.iso (never deleted)
"
    );
}

/// A manifest from before bkt recorded its files: the disk and snapshot
/// copies its create made are still bkt's.
#[test]
fn an_old_manifest_still_lets_destroy_delete_its_disk() {
    let w = World::new();
    managed(&w);
    let mut m = w.manifest();
    m.as_object_mut().unwrap().remove("files");
    w.write_manifest(m);
    libvirt(&w, "shut off", &domain_xml(&w), &[]);
    let r = w.bkt(&["vm", "destroy", "windows", "--yes"]);
    r.success();
    assert!(!w.path("images/windows.qcow2").exists());
    assert!(!w.path("images/windows.snapshots").exists());
    // The other VM's records are derived too, and kept.
    assert_eq!(
        w.manifest()["files"],
        serde_json::json!([
            {"vm": "other", "uri": URI, "path": "/o.qcow2"},
            {"vm": "other", "uri": URI, "path": "/other.snapshots"}
        ])
    );
}

/// The entry was made on qemu:///system: through qemu:///session neither
/// its files nor its entry are touched, and the error names its connection.
#[test]
fn another_connection_never_touches_the_entry() {
    let w = World::new();
    managed(&w);
    let before = std::fs::read_to_string(w.manifest_path()).unwrap();
    nosuch(&w, "windows");
    let r = w.bkt(&["vm", "-c", "qemu:///session", "destroy", "windows", "--yes"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: windows was made on qemu:///system, not on qemu:///session; nothing was deleted\nhint: destroy it on its own connection: bkt vm -c qemu:///system destroy windows\n"
    );
    assert!(w.path("images/windows.qcow2").exists());
    assert!(w.path("images/windows.snapshots").exists());
    assert_eq!(std::fs::read_to_string(w.manifest_path()).unwrap(), before);
    assert_eq!(
        w.calls(),
        [argv![
            "virsh",
            "-c",
            "qemu:///session",
            "domstate",
            "--reason",
            "windows"
        ]]
    );

    // A VM of the same name on the session is another VM: bkt's entry
    // and files stay, its disk is kept.
    let w = World::new();
    managed(&w);
    let before = std::fs::read_to_string(w.manifest_path()).unwrap();
    libvirt(&w, "shut off", &domain_xml(&w), &[]);
    let r = w.bkt(&["vm", "-c", "qemu:///session", "destroy", "windows", "--yes"]);
    r.success();
    let out = normalize(&w, &r.stdout());
    assert!(out.starts_with("note: bkt's windows lives on qemu:///system; the windows on qemu:///session is another VM, which bkt did not make\n"), "{out}");
    assert!(out.contains("  • kept           disk $TMP/images/windows.qcow2 (not made by bkt; delete it with: rm -- $TMP/images/windows.qcow2)\n"), "{out}");
    assert!(w.path("images/windows.qcow2").exists());
    assert_eq!(std::fs::read_to_string(w.manifest_path()).unwrap(), before);
}

#[test]
fn unknown() {
    let w = World::new();
    nosuch(&w, "nope");
    w.domains(&[]);
    let r = w.bkt(&["vm", "destroy", "nope", "--yes"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: no VM named \"nope\" on qemu:///system (there are none)\n"
    );
}

/// After an unattended install: the install ISO was ejected (an empty
/// drive), the answer ISO is still attached in a second drive. The answer
/// ISO (bkt's) goes; the ejected install ISO is listed once, kept.
#[test]
fn an_installed_vm_with_its_answer_iso() {
    let w = World::new();
    managed(&w);
    let answer = w.p("images/windows-answer.iso");
    std::fs::write(&answer, "answers").unwrap();
    let mut m = w.manifest();
    m["vms"][0]["answer_iso"] = answer.clone().into();
    m["files"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"vm": "windows", "uri": URI, "path": answer}));
    w.write_manifest(m);
    let recorded = domain_xml(&w);
    let sda = &recorded[recorded
        .find("    <disk type='file' device='cdrom'>")
        .unwrap()..];
    let sda = &sda[..sda.find("</disk>\n").unwrap() + "</disk>\n".len()];
    let empty = sda.replace(
        &format!("<source file='{}' index='2'/>", w.p("isos/Win11.iso")),
        "",
    );
    assert_ne!(&empty, sda);
    let sdb = sda
        .replace(&w.p("isos/Win11.iso"), &answer)
        .replace("dev='sda'", "dev='sdb'");
    let xml = recorded.replacen(sda, &format!("{empty}{sdb}"), 1);
    libvirt(&w, "shut off", &xml, &[]);
    let r = w.bkt(&["vm", "destroy", "windows", "--yes"]);
    r.success();
    let out = normalize(&w, &r.stdout());
    assert!(
        out.contains("  • removed        answer ISO $TMP/images/windows-answer.iso\n"),
        "{out}"
    );
    assert!(
        out.ends_with("  • kept           install media $TMP/isos/Win11.iso (never deleted)\n"),
        "{out}"
    );
    assert_eq!(out.matches("kept").count(), 1, "{out}");
    assert!(!std::path::Path::new(&answer).exists());
}

/// A file bkt made that vanishes while destroy deletes it is gone, as
/// destroy wanted: not an error.
#[test]
fn a_file_gone_meanwhile_is_not_an_error() {
    let w = World::new();
    managed(&w);
    let disk = w.p("images/windows.qcow2");
    w.rule("virsh", &format!("* vol-delete {disk}"))
        .sh(&format!("/bin/rm \"{disk}\"\n"))
        .err(&fixture("virsh/vol-delete-not-a-volume.txt"))
        .code(1);
    libvirt(&w, "shut off", &domain_xml(&w), &[]);
    let r = w.bkt(&["vm", "destroy", "windows", "--yes"]);
    r.success();
    assert!(
        normalize(&w, &r.stdout()).contains("  • removed        disk $TMP/images/windows.qcow2\n")
    );
}

/// An answer ISO left on record by a destroy that could not delete it is
/// still called what it is on the next run, when no entry says so.
#[test]
fn a_leftover_answer_iso_is_named_as_one() {
    let w = World::new();
    let answer = w.p("images/windows-answer.iso");
    std::fs::write(&answer, "answers").unwrap();
    w.write_manifest(serde_json::json!({"vms": [],
        "files": [{"vm": "windows", "uri": URI, "path": answer}]}));
    nosuch(&w, "windows");
    w.rule("virsh", "-q -c * list --all --uuid").out("\n");
    w.rule("virsh", "* vol-delete *")
        .err(&fixture("virsh/vol-delete-not-a-volume.txt"))
        .code(1);
    let r = w.bkt(&["vm", "destroy", "windows", "--yes"]);
    r.success();
    assert_eq!(
        normalize(&w, &r.stdout()),
        "Destroyed windows\n  • removed        answer ISO $TMP/images/windows-answer.iso\n"
    );
    assert_eq!(w.manifest()["files"], serde_json::json!([]));
}

/// A CD-ROM whose file has no .iso ending is install media all the same.
#[test]
fn a_cdrom_without_an_iso_ending_is_media() {
    let w = World::new();
    managed(&w);
    let img = w.p("isos/Win11-install.img");
    std::fs::write(&img, "media").unwrap();
    let xml = domain_xml(&w).replace(&w.p("isos/Win11.iso"), &img);
    libvirt(&w, "shut off", &xml, &[]);
    let r = w.bkt(&["vm", "destroy", "windows", "--yes"]);
    r.success();
    assert!(
        normalize(&w, &r.stdout()).contains(
            "  • kept           install media $TMP/isos/Win11-install.img (never deleted)\n"
        ),
        "{}",
        r.stdout()
    );
    assert!(std::path::Path::new(&img).exists());
}

/// An unlink that fails for another reason than "already gone" is a
/// failure, reported and kept on record (here: a directory where the disk
/// was, which no one can unlink, root included).
#[test]
fn an_unlink_that_fails_is_reported() {
    let w = World::new();
    managed(&w);
    let disk = w.path("images/windows.qcow2");
    std::fs::remove_file(&disk).unwrap();
    std::fs::create_dir(&disk).unwrap();
    libvirt(&w, "shut off", &domain_xml(&w), &[]);
    let r = w.bkt(&["vm", "destroy", "windows", "--yes"]);
    r.failure();
    let err = normalize(&w, &r.stderr());
    assert!(
        err.starts_with("error: could not delete: $TMP/images/windows.qcow2: Is a directory"),
        "{err}"
    );
    assert!(disk.is_dir());
    assert!(
        w.manifest()["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == w.p("images/windows.qcow2"))
    );
}

#[test]
fn the_vms_menu_entries_go_too() {
    let w = World::new();
    managed(&w);
    libvirt(&w, "shut off (shutdown)", &domain_xml(&w), &[]);
    w.bkt(&["vm", "apps", "windows", "--install", "notepad"])
        .success();
    let apps = w.path("home/.local/share/applications");
    // Another VM's entry stays.
    std::fs::write(
        apps.join("bkt-windows-2-notepad.desktop"),
        "[Desktop Entry]\nX-Bkt-VM=windows-2\nX-Bkt-URI=qemu:///system\nX-Bkt-App=notepad\n",
    )
    .unwrap();
    let r = w.bkt(&["vm", "destroy", "windows", "--yes"]);
    r.success();
    let out = normalize(&w, &r.stdout());
    assert!(
        out.contains(
            "  • removed        menu file $TMP/home/.local/share/applications/bkt-windows-notepad.desktop\n  \
             • removed        menu file $TMP/home/.local/share/applications/bkt-windows.desktop\n"
        ),
        "{out}"
    );
    let left: Vec<String> = std::fs::read_dir(&apps)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["bkt-windows-2-notepad.desktop"]);
}

/// The program list `apps` kept for the VM goes, so that a new VM of the
/// same name does not show the old one's programs; another VM's, and the
/// same name's on another connection, stay.
#[test]
fn the_program_list_apps_kept_goes_too() {
    let w = World::new();
    managed(&w);
    libvirt(&w, "running (booted)", &domain_xml(&w), &[]);
    w.rule("virsh", "* qemu-agent-command windows *guest-exec-status*")
        .out(&fixture("guest/guest-exec-status-exited.json"));
    w.rule("virsh", "* qemu-agent-command windows *guest-exec*")
        .out(&fixture("guest/guest-exec.json"));
    w.bkt(&["vm", "apps", "windows"]).success();
    let cache = w.path("home/.cache/bkt/vm");
    let list = |w: &World| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(w.path("home/.cache/bkt/vm"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| f.ends_with(".apps.json"))
            .collect();
        v.sort();
        v
    };
    let system = crate::save::SYSTEM;
    let session = "bb82bf5c67a61152";
    assert_eq!(list(&w), [format!("windows@{system}.apps.json")]);
    let ours = cache.join(format!("windows@{system}.apps.json"));
    let text = std::fs::read_to_string(&ours).unwrap();
    std::fs::write(cache.join(format!("other@{system}.apps.json")), &text).unwrap();
    std::fs::write(cache.join(format!("windows@{session}.apps.json")), &text).unwrap();
    let r = w.bkt(&["vm", "destroy", "windows", "--yes"]);
    r.success();
    let out = normalize(&w, &r.stdout());
    assert!(
        out.contains(&format!(
            "  • removed        program list $TMP/home/.cache/bkt/vm/windows@{system}.apps.json\n"
        )),
        "{out}"
    );
    assert_eq!(
        list(&w),
        [
            format!("other@{system}.apps.json"),
            format!("windows@{session}.apps.json")
        ]
    );
    assert!(!ours.exists());
}

#[test]
fn destroy_takes_this_connections_entry_and_its_watchers_files() {
    let w = World::new();
    managed(&w);
    // A VM of the same name on the session, first in the manifest.
    let mut m = w.manifest();
    let mut session = m["vms"][0].clone();
    session["uri"] = "qemu:///session".into();
    session["disk"] = "/s.qcow2".into();
    m["vms"] = serde_json::json!([session, m["vms"][0], m["vms"][1]]);
    w.write_manifest(m);
    // The watcher's state and log of this VM, and of the session's.
    let dir = w.path("home/.cache/bkt/vm");
    let system = crate::save::SYSTEM;
    let session_key = "windows@bb82bf5c67a61152";
    for f in [
        format!("windows@{system}.watch.json"),
        format!("windows@{system}.watch.log"),
        format!("{session_key}.watch.json"),
        format!("{session_key}.watch.log"),
    ] {
        std::fs::write(dir.join(f), "{}").unwrap();
    }
    libvirt(&w, "shut off", &domain_xml(&w), &[]);
    let r = w.bkt(&["vm", "destroy", "windows", "--yes"]);
    r.success();
    assert!(
        normalize(&w, &r.stdout()).starts_with("Destroyed windows\n"),
        "{}",
        r.stdout()
    );
    assert!(
        r.stdout()
            .contains("  • removed        manifest entry windows\n")
    );
    let m = w.manifest();
    let left: Vec<(&str, &str)> = m["vms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v["uri"].as_str().unwrap()))
        .collect();
    assert_eq!(left, [("windows", "qemu:///session"), ("other", URI)]);
    assert!(!dir.join(format!("windows@{system}.watch.json")).exists());
    assert!(!dir.join(format!("windows@{system}.watch.log")).exists());
    assert!(dir.join(format!("{session_key}.watch.json")).exists());
    assert!(dir.join(format!("{session_key}.watch.log")).exists());
}

/// bkt's pin of the VM's RDP certificate goes, so that a new VM of the same
/// name pins its own certificate instead of being refused as a changed
/// one; another VM's pin, and the same name's on another connection, stay.
#[test]
fn the_rdp_certificate_pin_goes_too() {
    let w = World::new();
    managed(&w);
    libvirt(&w, "running (booted)", &domain_xml(&w), &[]);
    let system = crate::save::SYSTEM;
    let session = "bb82bf5c67a61152";
    let pins = w.path("home/.config/bkt/vm/pins");
    std::fs::create_dir_all(pins.join(format!("windows@{system}.first-use/freerdp"))).unwrap();
    let pin = "sha256 db:71:32:76:0f:40:c8:38:aa:17:01:af:ef:19:b9:2a:\
               57:43:61:ff:58:83:c1:5d:b8:fb:42:3d:42:b5:9c:39\n";
    for f in [
        format!("windows@{system}"),
        format!("other@{system}"),
        format!("windows@{session}"),
    ] {
        std::fs::write(pins.join(f), pin).unwrap();
    }
    let r = w.bkt(&["vm", "destroy", "windows", "--yes"]);
    r.success();
    let out = normalize(&w, &r.stdout());
    assert!(
        out.contains(&format!(
            "  • removed        RDP certificate pin $TMP/home/.config/bkt/vm/pins/windows@{system}\n"
        )),
        "{out}"
    );
    let mut left: Vec<String> = std::fs::read_dir(&pins)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [format!("other@{system}"), format!("windows@{session}")]
    );
}
