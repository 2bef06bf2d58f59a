//! The Windows-shaped VM (UEFI with Secure Boot, TPM 2.0, VirtIO, QXL) that
//! `create` defines, and what is done to it later: `enable-rdp`, snapshots,
//! `destroy`. Each test has a VM of its own.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::*;

#[test]
#[ignore = "needs the real virt stack: run scripts/test-all.sh"]
fn windows_vm_boots_with_secure_boot_and_a_tpm_and_destroy_leaves_nothing() {
    let name = "e2e-win";
    let env = Env::new("windows_vm", &[name, "e2e-bad"]);
    let iso = env.media("win-standin.iso");
    let virtio = env.media("virtio-standin.iso");
    let iso_sum = sha256(&iso);
    let virtio_sum = sha256(&virtio);
    let mut args = vec!["vm"];
    args.extend(windows_create(name, &iso, &virtio, "2G", "20G"));
    args.extend(["--notes", "end-to-end"]);
    let out = env.bkt(&args);
    ok(&out);
    // The media sit in a 0700 directory: bkt let QEMU's user in, with an
    // ACL entry on that directory only.
    assert!(
        text(&out).0.contains(&format!(
            "  ✓ QEMU access    granted libvirt-qemu search on {} (setfacl)\n",
            env.home.path().display()
        )),
        "{}",
        text(&out).0
    );
    let acl = ok(&run(
        "getfacl",
        &["-n", "-c", env.home.path().to_str().unwrap()],
    ));
    assert!(acl.contains("user:64055:--x"), "{acl}");

    // Persistent, running.
    let info = ok(&virsh(&["dominfo", name]));
    assert!(info.contains("Persistent:     yes"), "{info}");
    assert_eq!(domstate(name), "running (booted)");

    // The live XML has every setting Windows 11 needs.
    let xml = ok(&virsh(&["dumpxml", name]));
    let doc = xml_doc(&xml);
    let os_type = find(&doc, "type", |n| n.parent().unwrap().has_tag_name("os")).unwrap();
    assert!(os_type.attribute("machine").unwrap().starts_with("pc-q35"));
    let loader = find(&doc, "loader", |_| true).expect("a UEFI loader");
    assert_eq!(loader.attribute("secure"), Some("yes"));
    assert!(loader.text().unwrap().contains("OVMF_CODE_4M.ms.fd"));
    let nvram = find(&doc, "nvram", |_| true)
        .unwrap()
        .text()
        .unwrap()
        .to_string();
    assert!(Path::new(&nvram).exists(), "{nvram}");
    assert!(find(&doc, "smm", |n| n.attribute("state") == Some("on")).is_some());
    assert!(
        find(&doc, "hyperv", |n| n.attribute("mode")
            == Some("passthrough"))
        .is_some()
    );
    assert!(
        find(&doc, "clock", |n| n.attribute("offset")
            == Some("localtime"))
        .is_some()
    );
    let tpm = find(&doc, "tpm", |_| true).unwrap();
    assert_eq!(tpm.attribute("model"), Some("tpm-crb"));
    let backend = tpm.children().find(|c| c.has_tag_name("backend")).unwrap();
    assert_eq!(backend.attribute("type"), Some("emulator"));
    assert_eq!(backend.attribute("version"), Some("2.0"));
    let disks: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("disk"))
        .collect();
    let vda = disks
        .iter()
        .find(|d| d.attribute("device") == Some("disk"))
        .unwrap();
    let driver = vda.children().find(|c| c.has_tag_name("driver")).unwrap();
    assert_eq!(driver.attribute("type"), Some("qcow2"));
    assert_eq!(driver.attribute("discard"), Some("unmap"));
    let target = vda.children().find(|c| c.has_tag_name("target")).unwrap();
    assert_eq!(target.attribute("bus"), Some("virtio"));
    let disk_path = vda
        .children()
        .find(|c| c.has_tag_name("source"))
        .unwrap()
        .attribute("file")
        .unwrap()
        .to_string();
    let cdroms: Vec<String> = disks
        .iter()
        .filter(|d| d.attribute("device") == Some("cdrom"))
        .map(|d| {
            d.children()
                .find(|c| c.has_tag_name("source"))
                .unwrap()
                .attribute("file")
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        cdroms,
        [iso.to_str().unwrap(), virtio.to_str().unwrap()],
        "both CD-ROMs, the install ISO first"
    );
    let nic = find(&doc, "interface", |_| true).unwrap();
    let model = nic.children().find(|c| c.has_tag_name("model")).unwrap();
    assert_eq!(model.attribute("type"), Some("virtio"));
    let qxl = find(&doc, "model", |n| n.attribute("type") == Some("qxl")).unwrap();
    assert_eq!(qxl.attribute("ram"), Some("131072"));
    assert_eq!(qxl.attribute("vram"), Some("131072"));
    assert_eq!(qxl.attribute("vgamem"), Some("65536"));
    assert!(find(&doc, "graphics", |n| n.attribute("type") == Some("spice")).is_some());
    for ch in ["org.qemu.guest_agent.0", "com.redhat.spice.0"] {
        assert!(
            find(&doc, "target", |n| n.attribute("name") == Some(ch)).is_some(),
            "channel {ch}"
        );
    }
    let on_reboot = find(&doc, "on_reboot", |_| true).unwrap();
    assert_eq!(on_reboot.text(), Some("restart"));
    let uuid = find(&doc, "uuid", |_| true)
        .unwrap()
        .text()
        .unwrap()
        .to_string();
    let tpm_state = PathBuf::from("/var/lib/libvirt/swtpm").join(&uuid);
    assert!(tpm_state.exists(), "{}", tpm_state.display());

    // The disk is sparse.
    let info: serde_json::Value = serde_json::from_str(&ok(&run(
        "qemu-img",
        &["info", "--output=json", "-U", &disk_path],
    )))
    .unwrap();
    let virtual_size = info["virtual-size"].as_u64().unwrap();
    let actual = info["actual-size"].as_u64().unwrap();
    assert_eq!(virtual_size, 20 << 30);
    assert!(actual < 64 << 20, "allocated {actual} of {virtual_size}");

    // Secure Boot is enforced: reset the VM while we read its serial console
    // and watch the firmware refuse the stand-in's unsigned (not
    // Microsoft-signed) boot loader. The VM must keep running across the
    // reset (on_reboot=restart, not the two-phase install's destroy).
    let console = find(&doc, "console", |_| true).unwrap();
    let pty = console
        .children()
        .find(|c| c.has_tag_name("source"))
        .and_then(|s| s.attribute("path"))
        .expect("a pty console")
        .to_string();
    let serial = capture_serial(&pty);
    ok(&virsh(&["reset", name]));
    let line = wait_for(
        "firmware refusing the unsigned boot loader",
        Duration::from_secs(180),
        || {
            let text = String::from_utf8_lossy(&serial.lock().unwrap()).into_owned();
            text.lines()
                .find(|l| {
                    l.contains("failed to load Boot")
                        && l.contains("DVD-ROM")
                        && (l.contains("Access Denied") || l.contains("Security Violation"))
                })
                .map(String::from)
        },
    );
    env.log(&format!("firmware said: {}", line.trim()));
    assert_eq!(
        domstate(name),
        "running (booted)",
        "still running after the reset"
    );

    // status and status --json agree with virsh.
    let out = env.bkt(&["vm", "status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    let row = v["vms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap()
        .clone();
    assert_eq!(row["state"], "running");
    assert_eq!(row["managed"], true);
    assert_eq!(row["vcpus"], 1);
    assert_eq!(row["memory_bytes"], 2u64 << 30);
    assert_eq!(row["disk_capacity_bytes"], 20u64 << 30);
    assert_eq!(row["notes"], "end-to-end");
    let dominfo = ok(&virsh(&["dominfo", name]));
    assert!(dominfo.contains("CPU(s):         1"));
    assert!(dominfo.contains("Max memory:     2097152 KiB"));
    let (table, _) = text(&env.bkt(&["vm", "status", name]));
    assert!(
        table.contains(&format!("{name}  running  1     2 GiB  ")),
        "{table}"
    );

    // doctor sees the VM as created.
    let doc: serde_json::Value =
        serde_json::from_str(&text(&env.bkt(&["vm", "doctor", name, "--json"])).0).unwrap();
    for label in ["libvirt", "Secure Boot", "swtpm", "tools"] {
        assert_eq!(
            check_level(&doc["host"], label),
            "pass",
            "host {label}: {doc}"
        );
    }
    let vm = &doc["vms"][0]["checks"];
    for label in ["defined", "firmware", "TPM", "disk", "manifest"] {
        assert_eq!(check_level(vm, label), "pass", "{label}: {doc}");
    }
    assert_eq!(
        check_level(vm, "guest agent"),
        "warn",
        "no agent in the stand-in"
    );

    // Bad input against the real stack: each fails and changes nothing
    // (other tests' VMs come and go meanwhile: only ours are compared).
    let before_uuid = ok(&virsh(&["domuuid", name]));
    let before_manifest = fs::read_to_string(env.manifest()).unwrap();
    let out = env.bkt(&small_create(name, iso.to_str().unwrap()));
    assert_eq!(out.status.code(), Some(1));
    let (stdout, stderr) = text(&out);
    assert!(
        stdout.contains(&format!("\"{name}\" is already in bkt's manifest")),
        "{stdout}"
    );
    assert_eq!(
        stderr,
        format!(
            "error: preflight failed (name: \"{name}\" is already in bkt's manifest; disk: /var/lib/libvirt/images/{name}.qcow2 already exists; bkt never overwrites a disk); nothing was created\n"
        )
    );
    // Taken in libvirt but not in the manifest.
    let other = env.work.path().join("other.json");
    let out = env.bkt_with(&other, &small_create(name, iso.to_str().unwrap()));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out)
            .0
            .contains(&format!("a VM named \"{name}\" already exists in libvirt"))
    );
    let notes = env.work.path().join("notes.txt");
    fs::write(&notes, "not an ISO").unwrap();
    let out = env.bkt(&small_create("e2e-bad", notes.to_str().unwrap()));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out)
            .0
            .contains("is not an ISO 9660 image (no CD001 signature)")
    );
    assert_eq!(ok(&virsh(&["domuuid", name])), before_uuid);
    assert_eq!(domstate(name), "running (booted)");
    assert!(!defined("e2e-bad"));
    assert_eq!(fs::read_to_string(env.manifest()).unwrap(), before_manifest);
    assert!(!Path::new("/var/lib/libvirt/images/e2e-bad.qcow2").exists());

    // destroy: nothing of the VM is left, and the install media are intact.
    ok(&env.bkt(&["vm", "destroy", name, "--yes"]));
    assert!(!defined(name));
    assert!(!Path::new(&nvram).exists(), "NVRAM {nvram} is left");
    assert!(
        !tpm_state.exists(),
        "TPM state {} is left",
        tpm_state.display()
    );
    assert!(!Path::new(&disk_path).exists(), "disk {disk_path} is left");
    assert!(!env.manifest_names().contains(&name.to_string()));
    assert_eq!(sha256(&iso), iso_sum, "the install ISO changed");
    assert_eq!(sha256(&virtio), virtio_sum, "the virtio ISO changed");
}

/// A small Windows-shaped VM of a test's own, made by `create`: its disk,
/// NVRAM file and TPM state directory.
pub(crate) fn small_vm(env: &Env, name: &str) -> (String, String, PathBuf) {
    let iso = env.media("win-standin.iso");
    ok(&env.bkt(&small_create(name, iso.to_str().unwrap())));
    parts_of(name)
}

/// The disk, the NVRAM file and the TPM state directory of domain `name`.
pub(crate) fn parts_of(name: &str) -> (String, String, PathBuf) {
    let xml = ok(&virsh(&["dumpxml", name]));
    let doc = xml_doc(&xml);
    let disk = find(&doc, "disk", |n| n.attribute("device") == Some("disk"))
        .map(|d| source_file(&d))
        .unwrap();
    let nvram = find(&doc, "nvram", |_| true)
        .and_then(|n| n.text())
        .unwrap()
        .to_string();
    let uuid = find(&doc, "uuid", |_| true).and_then(|n| n.text()).unwrap();
    let tpm = PathBuf::from("/var/lib/libvirt/swtpm").join(uuid);
    assert!(tpm.exists(), "{}", tpm.display());
    (disk, nvram, tpm)
}

/// enable-rdp puts a real script ISO (real xorriso) into the real CD-ROM
/// drive, and on timeout puts the install ISO back and deletes the script's.
#[test]
#[ignore = "needs the real virt stack: run scripts/test-all.sh"]
fn enable_rdp_swaps_the_script_iso_in_and_back_out() {
    let name = "e2e-rdp";
    let env = Env::new("enable_rdp", &[name]);
    small_vm(&env, name);
    let install_iso = env.media("win-standin.iso").display().to_string();
    assert_eq!(drive_source(name, "sda"), install_iso);
    let child = Command::new(env!("CARGO_BIN_EXE_bkt"))
        .args(["vm", "enable-rdp", name, "--timeout", "10"])
        .env("BKT_VM_MANIFEST", env.manifest())
        .env("XDG_CONFIG_HOME", env.home.path().join(".config"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let script_iso = wait_for(
        "the script ISO in the drive",
        Duration::from_secs(30),
        || {
            let src = drive_source(name, "sda");
            src.ends_with("-enable-rdp.iso").then_some(src)
        },
    );
    let listing = ok(&run(
        "xorriso",
        &["-indev", &script_iso, "-find", "/", "-type", "f"],
    ));
    assert!(listing.contains("'/enable-rdp.ps1'"), "{listing}");
    assert!(listing.contains("'/enable-rdp.cmd'"), "{listing}");
    let out = child.wait_with_output().unwrap();
    env.log_output(&format!("bkt vm enable-rdp {name} --timeout 10"), &out);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("Remote Desktop did not answer within 10s"),
        "{stderr}"
    );
    assert_eq!(
        drive_source(name, "sda"),
        install_iso,
        "the install ISO is back"
    );
    assert!(
        !Path::new(&script_iso).exists(),
        "the script ISO is deleted"
    );
    ok(&env.bkt(&["vm", "destroy", name, "--yes"]));
}

/// Checksums of the three parts a snapshot must cover: the first 4 MiB the
/// guest sees of its disk, the NVRAM file, and every file of the TPM state.
pub(crate) fn parts_sums(
    env: &Env,
    disk: &str,
    nvram: &str,
    tpm: &Path,
) -> (String, String, String) {
    let raw = env.work.path().join("disk-head.raw");
    let _ = fs::remove_file(&raw);
    ok(&run(
        "qemu-img",
        &[
            "dd",
            "-f",
            "qcow2",
            "-O",
            "raw",
            "bs=1M",
            "count=4",
            &format!("if={disk}"),
            &format!("of={}", raw.display()),
        ],
    ));
    let mut tpm_files: Vec<PathBuf> = Vec::new();
    let mut stack = vec![tpm.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                tpm_files.push(p);
            }
        }
    }
    tpm_files.sort();
    let tpm_sum: Vec<String> = tpm_files.iter().map(|f| sha256(f)).collect();
    (sha256(&raw), sha256(Path::new(nvram)), tpm_sum.join(","))
}

/// Write into the disk, the NVRAM and the TPM state of a shut-off VM (on
/// the host, that is here); their checksums after, each unlike `before`.
pub(crate) fn change_all_three(
    env: &Env,
    disk: &str,
    nvram: &str,
    tpm: &Path,
    before: &(String, String, String),
) -> (String, String, String) {
    ok(&run("qemu-io", &["-c", "write -P 0xab 0 1M", disk]));
    let mut nv = fs::read(nvram).unwrap();
    nv[4096..4100].copy_from_slice(b"BKT!");
    fs::write(nvram, nv).unwrap();
    let permall = tpm.join("tpm2/tpm2-00.permall");
    let mut st = fs::read(&permall).unwrap();
    st[64..68].copy_from_slice(b"BKT!");
    fs::write(&permall, st).unwrap();
    let changed = parts_sums(env, disk, nvram, tpm);
    assert_ne!(changed.0, before.0, "the disk changed");
    assert_ne!(changed.1, before.1, "the NVRAM changed");
    assert_ne!(changed.2, before.2, "the TPM state changed");
    changed
}

/// A snapshot covers disk, NVRAM and TPM: change all three, revert, and
/// the checksums are back to what they were.
#[test]
#[ignore = "needs the real virt stack: run scripts/test-all.sh"]
fn snapshot_covers_disk_nvram_and_tpm_and_goes_with_destroy() {
    let name = "e2e-snap";
    let env = Env::new("snapshots", &[name]);
    let (disk, nvram, tpm) = small_vm(&env, name);
    let (env, disk, nvram, tpm) = (&env, disk.as_str(), nvram.as_str(), tpm.as_path());
    // Running: refused without --yes, with the reason.
    let out = env.bkt(&["vm", "snapshot", "create", name, "clean"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out)
            .1
            .contains("a live snapshot would leave out the UEFI variables")
    );
    ok(&env.bkt(&["vm", "stop", name, "--force"]));
    let before = parts_sums(env, disk, nvram, tpm);
    ok(&env.bkt(&[
        "vm",
        "snapshot",
        "create",
        name,
        "clean",
        "--description",
        "fresh",
    ]));
    let out = env.bkt(&["vm", "snapshot", "create", name, "clean"]);
    assert_eq!(out.status.code(), Some(1), "a duplicate name is refused");
    let v: serde_json::Value =
        serde_json::from_str(&ok(&env.bkt(&["vm", "snapshot", "list", name, "--json"]))).unwrap();
    assert_eq!(v[0]["name"], "clean");
    assert_eq!(v[0]["description"], "fresh");
    assert_eq!(v[0]["complete"], true);
    assert_eq!(v[0]["current"], true);
    assert!(v[0]["size_bytes"].as_u64().unwrap() > 500_000);
    // The snapshot directory is bkt's, on record for destroy.
    let root = Path::new(disk).with_file_name(format!("{name}.snapshots"));
    let m: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(env.manifest()).unwrap()).unwrap();
    assert!(
        m["files"].as_array().unwrap().contains(&serde_json::json!({
            "vm": name,
            "uri": URI,
            "path": root.display().to_string(),
        })),
        "{m}"
    );

    let changed = change_all_three(env, disk, nvram, tpm, &before);

    // Without its TPM copy the snapshot is refused before anything changes.
    let saved_tpm = root.join("clean/tpm");
    let aside = root.join("clean/tpm.aside");
    fs::rename(&saved_tpm, &aside).unwrap();
    let out = env.bkt(&["vm", "snapshot", "revert", name, "clean", "--yes"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out).1,
        format!(
            "error: snapshot clean of {name} cannot be reverted; nothing was changed\n\
             caused by: cannot read its TPM state copy {}\n\
             caused by: No such file or directory (os error 2)\n\
             hint: a revert needs every part the snapshot was taken with: put the missing one \
             back, or delete the snapshot (bkt vm snapshot delete {name} clean)\n",
            saved_tpm.display()
        )
    );
    assert_eq!(
        parts_sums(env, disk, nvram, tpm),
        changed,
        "disk, NVRAM and TPM state are unchanged"
    );
    fs::rename(&aside, &saved_tpm).unwrap();

    ok(&env.bkt(&["vm", "snapshot", "revert", name, "clean", "--yes"]));
    assert_eq!(
        parts_sums(env, disk, nvram, tpm),
        before,
        "all three are as they were"
    );
    assert!(
        domstate(name).starts_with("shut off"),
        "left shut off, as when taken"
    );
    // swtpm and QEMU still accept what was put back.
    ok(&env.bkt(&["vm", "start", name]));
    assert_eq!(domstate(name), "running (booted)");
    // (The stand-in firmware ignores ACPI, so no graceful stop here: --yes
    // is exercised against fakes.)
    ok(&env.bkt(&["vm", "stop", name, "--force"]));
    ok(&env.bkt(&["vm", "snapshot", "create", name, "second"]));
    ok(&env.bkt(&["vm", "snapshot", "delete", name, "clean"]));
    let v: serde_json::Value =
        serde_json::from_str(&ok(&env.bkt(&["vm", "snapshot", "list", name, "--json"]))).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["name"], "second");

    // destroy takes the snapshots along: they are bkt's, on record.
    ok(&env.bkt(&["vm", "destroy", name, "--yes"]));
    assert!(!root.exists(), "snapshots {} are left", root.display());
    assert!(!Path::new(disk).exists(), "disk {disk} is left");
}
