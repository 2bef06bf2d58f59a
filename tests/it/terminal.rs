//! What a person at a terminal sees: the guided create (it asks only for
//! what the command line did not give, offers the ISOs in ~/Downloads,
//! sizes as people type them, and ejects the install ISO once Windows is
//! installed) and destroy's confirmation (every path it will delete).

use crate::harness::{URI, World, argv, fixture, has_args, mentions, virsh_argv};

const GIB: u64 = 1 << 30;

fn iso_in(w: &World, rel: &str) -> String {
    let p = w.path(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let data = crate::harness::stand_in_iso();
    std::fs::write(&p, data).unwrap();
    p.display().to_string()
}

/// libvirt's view of the new VM after create, for the eject at the end.
fn installed_vm(w: &World, install_iso: &str) {
    let xml = fixture("virsh/dumpxml-windows-running.xml")
        .replace("/tmp/win.iso", install_iso)
        .replace("<name>t1</name>", "<name>windows</name>");
    w.rule("virsh", "* dumpxml --inactive windows").out(&xml);
    w.rule("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-running.txt"));
    w.rule(
        "virsh",
        "* change-media windows sda --eject --config --live",
    )
    .out("Successfully ejected media.\n");
}

#[test]
fn guided_create_offers_the_downloads_and_ejects_the_iso_at_the_end() {
    let w = World::new();
    w.libvirt_up().domains(&[]).creation_works(80 * GIB);
    let win = iso_in(&w, "home/Downloads/Win11_24H2_English_x64.iso");
    let virtio = iso_in(&w, "home/Downloads/virtio-win-0.1.266.iso");
    installed_vm(&w, &win);
    let mut t = w.pty(&["vm", "create"]);
    for (prompt, default) in [
        ("VM name", "windows".to_string()),
        ("Disk size (grows as needed)", "80G".into()),
        ("RAM (host has 16 GiB)", "8G".into()),
        ("CPUs (host has 8)", "4".into()),
        ("Path to ISO", win.clone()),
        ("VirtIO drivers ISO", virtio.clone()),
    ] {
        t.expect(&format!("{prompt} ({default})"));
        t.send("");
    }
    t.expect("Press Enter when the installation completes");
    t.send("");
    t.expect("Turn on Remote Desktop now");
    t.send("n");
    let (code, screen) = t.wait();
    assert_eq!(code, 0, "{screen}");
    assert!(
        screen.contains(&format!(
            "Ejected the Windows ISO from windows, so that Setup cannot start again ({win} is kept)\n"
        )),
        "{screen}"
    );
    assert!(
        screen.contains("Later: bkt vm enable-rdp windows\n"),
        "{screen}"
    );
    let calls = w.calls();
    let render = calls
        .iter()
        .find(|c| c.starts_with(&argv!["virt-install", "--connect"]))
        .unwrap();
    assert!(
        has_args(render, &["--memory", "8192", "--vcpus", "4"]),
        "{render:?}"
    );
    assert!(
        has_args(
            render,
            &[
                "--disk".to_string(),
                format!("path={win},device=cdrom,bus=sata,readonly=on,boot.order=1")
            ]
        ),
        "{render:?}"
    );
    assert!(
        has_args(
            render,
            &[
                "--disk".to_string(),
                format!("path={virtio},device=cdrom,bus=sata,readonly=on")
            ]
        ),
        "{render:?}"
    );
    assert_eq!(
        calls.last().unwrap(),
        &virsh_argv(&[
            "change-media",
            "windows",
            "sda",
            "--eject",
            "--config",
            "--live"
        ])
    );
    assert!(std::path::Path::new(&win).exists());
}

#[test]
fn guided_create_asks_only_for_what_was_not_given() {
    let w = World::new();
    w.libvirt_up().domains(&[]).creation_works(40 * GIB);
    let win = iso_in(&w, "isos/Win11.iso");
    installed_vm(&w, &win);
    let mut t = w.pty(&[
        "vm", "create", "--name", "windows", "--memory", "4G", "--iso", &win, "--cpus", "2",
    ]);
    t.expect("Disk size (grows as needed) (80G)");
    t.send("40G");
    t.expect("Press Enter when the installation completes");
    t.send("");
    t.expect("Turn on Remote Desktop now");
    t.send("n");
    let (code, screen) = t.wait();
    assert_eq!(code, 0, "{screen}");
    for never in [
        "VM name",
        "RAM (",
        "CPUs (",
        "Path to ISO",
        "VirtIO drivers ISO",
    ] {
        assert!(!screen.contains(never), "asked for {never}:\n{screen}");
    }
    let render = w
        .calls()
        .into_iter()
        .find(|c| c.starts_with(&argv!["virt-install", "--connect"]))
        .unwrap();
    assert!(
        has_args(&render, &["--memory", "4096", "--vcpus", "2"]),
        "{render:?}"
    );
    assert!(
        w.calls()
            .iter()
            .any(|c| c.starts_with(&argv!["qemu-img", "create"])
                && c.last() == Some(&(40 * GIB).to_string()))
    );
}

/// The confirmation shows every path destroy will delete, and what it
/// keeps; a wrong name deletes nothing.
fn destroy_world() -> World {
    let w = World::new();
    let disk = w.p("images/windows.qcow2");
    w.write_manifest(serde_json::json!({"vms": [{
        "name": "windows", "type": "windows11", "disk": disk,
        "created": "2026-01-25", "uri": URI, "isos": [w.p("isos/Win11.iso")]}],
        "files": [{"vm": "windows", "uri": URI, "path": disk}]}));
    std::fs::write(&disk, "disk").unwrap();
    w.iso("Win11.iso");
    let xml = fixture("virsh/dumpxml-windows-running.xml")
        .replace("/var/lib/libvirt/images/t1.qcow2", &disk)
        .replace("/tmp/win.iso", &w.p("isos/Win11.iso"))
        .replace("<name>t1</name>", "<name>windows</name>");
    w.rule("virsh", "* domstate --reason windows")
        .out("shut off\n\n");
    w.nothing_saved();
    w.rule("virsh", "* dumpxml --inactive windows").out(&xml);
    w.rule("virsh", "-q -c * list --all --uuid").out("\n");
    w.rule("virsh", "* undefine *")
        .out(&fixture("virsh/undefine-uuid.txt"));
    w.rule("virsh", "* vol-delete *")
        .err(&fixture("virsh/vol-delete-not-a-volume.txt"))
        .code(1);
    w
}

#[test]
fn destroy_lists_every_path_before_asking() {
    let w = destroy_world();
    let mut t = w.pty(&["vm", "destroy", "windows"]);
    t.expect("Type windows to confirm");
    let asked = t.screen();
    assert!(
        asked.contains(&format!(
            "This deletes windows for good:\n  domain         windows\n  NVRAM          /var/lib/libvirt/qemu/nvram/t1_VARS.fd\n  TPM state      of windows (libvirt's, by UUID 405a8b53-ad14-470a-9963-b210e9f1e0aa)\n  disk           {}\n  manifest entry windows\nand keeps:\n  install media  {} (never deleted)\n",
            w.p("images/windows.qcow2"),
            w.p("isos/Win11.iso")
        )),
        "{asked}"
    );
    // Nothing happened yet.
    assert!(!w.calls().iter().any(|c| mentions(c, "undefine")));
    t.send("windows");
    let (code, screen) = t.wait();
    assert_eq!(code, 0, "{screen}");
    assert!(!w.path("images/windows.qcow2").exists());
}

#[test]
fn a_wrong_name_at_the_prompt_deletes_nothing() {
    let w = destroy_world();
    let before = std::fs::read_to_string(w.manifest_path()).unwrap();
    let mut t = w.pty(&["vm", "destroy", "windows"]);
    t.expect("Type windows to confirm");
    t.send("window");
    let (code, screen) = t.wait();
    assert_eq!(code, 1);
    assert!(
        screen.contains("error: confirmation did not match; nothing was deleted"),
        "{screen}"
    );
    assert!(w.path("images/windows.qcow2").exists());
    assert_eq!(std::fs::read_to_string(w.manifest_path()).unwrap(), before);
    assert!(!w.calls().iter().any(|c| mentions(c, "undefine")));
}
