//! `bkt vm create --unattended` against fakes: the answer ISO is built from
//! the virtio ISO, attached as a third CD-ROM, the install is watched until
//! Remote Desktop answers (a listener on loopback), and the ISO goes away.

use std::os::unix::fs::PermissionsExt;

use crate::harness::{
    URI, World, argv, closed_port, fixture, has_args, mentions, poll_until, rdp_listener,
    virsh_argv,
};

const GIB: u64 = 1 << 30;

/// An install whose guest comes up at `ip`, its Remote Desktop on `port`.
pub fn world(ip: &str, port: u16) -> World {
    let w = World::new().rdp_port(port);
    w.libvirt_up().domains(&[]).creation_works(80 * GIB);
    w.install_fake("xorriso");
    // Extraction makes the folder; mkisofs writes the file after -o and
    // keeps a copy of the answer file to look at.
    w.rule("xorriso", "-osirrox on *")
        .sh("for a; do last=$a; done\n/bin/mkdir -p \"$last\"\n");
    // mkisofs writes the ISO to stdout (`-o -`); the fake notes the mode
    // of the file its stdout is before writing a byte.
    w.rule("xorriso", "-as mkisofs *").sh(&format!(
        "exec 3>&1\n/usr/bin/stat -L -c %a /proc/self/fd/3 >\"{}\"\nfor a; do last=$a; done\n/bin/cp \"$last/autounattend.xml\" \"{}\"\n/bin/ls -R \"$last\" >\"{}\"\nprintf 'an ISO'\n",
        w.p("answer-mode.txt"),
        w.p("answer-copy.xml"),
        w.p("answer-tree.txt")
    ));
    w.rule("virsh", "* send-key windows KEY_ENTER");
    w.rule("virsh", "* domifaddr windows --source lease")
        .out(&fixture("virsh/domifaddr-lease.txt").replace("192.168.122.4", ip));
    // The recorded domain with the install ISO in sda and, as create
    // attaches it, the answer ISO in a second drive.
    let recorded = fixture("virsh/dumpxml-windows-running.xml");
    let sda = &recorded[recorded
        .find("    <disk type='file' device='cdrom'>")
        .unwrap()..];
    let sda = &sda[..sda.find("</disk>\n").unwrap() + "</disk>\n".len()];
    let sdb = sda
        .replace("/tmp/win.iso", &w.p("images/windows-answer.iso"))
        .replace("dev='sda'", "dev='sdb'");
    let xml = recorded
        .replacen(sda, &format!("{sda}{sdb}"), 1)
        .replace("/tmp/win.iso", &w.p("isos/Win11.iso"))
        .replace("<name>t1</name>", "<name>windows</name>");
    w.rule("virsh", "* dumpxml --inactive windows").out(&xml);
    w.rule("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-running.txt"));
    w.rule("virsh", "* change-media windows * --eject --config --live")
        .out("Successfully ejected media.\n");
    w.rule("virsh", "* detach-disk windows sdb --config")
        .out("Disk detached successfully\n");
    std::fs::write(w.path("pw"), "correct horse\n").unwrap();
    std::fs::set_permissions(w.path("pw"), std::fs::Permissions::from_mode(0o600)).unwrap();
    w
}

#[test]
fn hands_free_from_answers_to_remote_desktop() {
    let (_rdp, port) = rdp_listener("127.0.0.80");
    let w = world("127.0.0.80", port);
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
        out.ends_with(&format!(
            "Remote Desktop answers on 127.0.0.80:{port}\nConnect with: bkt vm connect windows\n"
        )),
        "{out}"
    );
    let calls = w.calls();
    for d in ["viostor", "vioscsi", "NetKVM"] {
        let extract = argv![
            "xorriso",
            "-osirrox",
            "on",
            "-indev",
            virtio,
            "-extract",
            format!("/{d}/w11/amd64")
        ];
        assert!(
            calls
                .iter()
                .any(|c| c.starts_with(&extract) && c.len() > extract.len()),
            "{d}: {calls:?}"
        );
    }
    let install = calls
        .iter()
        .find(|c| c.starts_with(&argv!["virt-install", "--connect"]))
        .unwrap();
    assert!(install.ends_with(&argv!["--print-xml", "--dry-run"]));
    assert!(
        has_args(
            install,
            &argv![
                "--disk",
                format!("path={virtio},device=cdrom,bus=sata,readonly=on"),
                "--disk",
                format!(
                    "path={},device=cdrom,bus=sata,readonly=on",
                    w.p("images/windows-answer.iso")
                )
            ]
        ),
        "{install:?}"
    );
    assert!(calls.contains(&virsh_argv(&["send-key", "windows", "KEY_ENTER"])));
    // The password is on no command line, and only encoded in the file.
    assert!(!calls.iter().any(|c| mentions(c, "correct horse")));
    let answer = std::fs::read_to_string(w.path("answer-copy.xml")).unwrap();
    assert!(!answer.contains("correct horse"));
    assert!(answer.contains("<Name>anna</Name>"));
    assert!(answer.contains("<PreventDeviceEncryption>true</PreventDeviceEncryption>"));
    // The ISO's Pro image, by its index there.
    assert!(
        out.contains(
            "  ✓ Windows        Windows 11 24H2 x64, build 26100.1742: Windows 11 Home, Windows 11 \
         Pro, Windows 11 Education; installing Windows 11 Pro (image 2)\n"
        ),
        "{out}"
    );
    assert!(
        answer.contains(
            "<MetaData wcm:action=\"add\"><Key>/IMAGE/INDEX</Key><Value>2</Value></MetaData>"
        ),
        "{answer}"
    );
    let tree = std::fs::read_to_string(w.path("answer-tree.txt")).unwrap();
    assert!(tree.contains("$WinPEDriver$"), "{tree}");
    // 0600 before its first byte was written.
    assert_eq!(
        std::fs::read_to_string(w.path("answer-mode.txt")).unwrap(),
        "600\n"
    );
    // Done: the answer ISO out of the VM and off the disk, the install ISO
    // out of its drive (kept on disk), and noted.
    let media: Vec<&Vec<String>> = calls
        .iter()
        .filter(|c| mentions(c, "change-media") || mentions(c, "detach-disk"))
        .collect();
    assert_eq!(
        media,
        [
            &virsh_argv(&[
                "change-media",
                "windows",
                "sdb",
                "--eject",
                "--config",
                "--live"
            ]),
            &virsh_argv(&["detach-disk", "windows", "sdb", "--config"]),
            &virsh_argv(&[
                "change-media",
                "windows",
                "sda",
                "--eject",
                "--config",
                "--live"
            ]),
        ]
    );
    assert!(out.contains(&format!(
        "Ejected the Windows ISO from windows, so that Setup cannot start again ({iso} is kept)\n"
    )));
    assert!(std::path::Path::new(&iso).exists());
    assert!(!w.path("images/windows-answer.iso").exists());
    assert_eq!(
        w.manifest()["files"],
        serde_json::json!([{"vm": "windows", "uri": URI, "path": w.p("images/windows.qcow2")}])
    );
    let e = &w.manifest()["vms"][0];
    assert_eq!(e["rdp_enabled"], true);
    assert_eq!(e["rdp_user"], "anna");
    assert!(e.get("answer_iso").is_none());
}

#[test]
fn a_stalled_install_says_so_with_a_screenshot() {
    let w = world("127.0.0.81", closed_port("127.0.0.81"));
    w.rule("virsh", "* screenshot windows --file *")
        .sh("for a; do last=$a; done\n: >\"$last\"\n")
        .out(&fixture("virsh/screenshot.txt"));
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
            w.p("home/.cache/bkt/vm/windows-install-stalled.png")
        )),
        "{err}"
    );
    assert!(
        err.ends_with(&format!(
            "hint: the answer ISO {} holds the Windows password in clear text and stays attached until the install ends; `bkt vm destroy windows` removes it with the VM\n",
            w.p("images/windows-answer.iso")
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
    let w = world("127.0.0.82", closed_port("127.0.0.82"));
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
    assert!(w.calls().is_empty(), "{:?}", w.calls());
    assert!(!w.manifest_path().exists());
}

fn create_args(w: &World) -> Vec<String> {
    [
        "vm",
        "create",
        "--iso",
        &w.iso("Win11.iso"),
        "--yes",
        "--unattended",
        "--username",
        "anna",
        "--password-file",
        &w.p("pw"),
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn a_failed_domain_takes_the_answer_iso_along() {
    let w = world("127.0.0.83", closed_port("127.0.0.83"));
    w.rule_first("virsh", "* define /dev/stdin")
        .err("error: Failed to define domain from /dev/stdin\nerror: XML error: boom\n")
        .code(1);
    w.rule_first("virsh", "* domstate --reason *")
        .err(&fixture("virsh/domstate-uuid-nosuch.txt"))
        .code(1);
    let args = create_args(&w);
    let r = w.bkt(&args.iter().map(String::as_str).collect::<Vec<_>>());
    r.failure();
    assert!(
        r.stdout().ends_with(&format!(
            "Rolled back\n  • removed        disk {}\n  • removed        answer ISO {}\n  • removed        manifest entry\n",
            w.p("images/windows.qcow2"),
            w.p("images/windows-answer.iso")
        )),
        "{}",
        r.stdout()
    );
    assert!(!w.path("images/windows-answer.iso").exists());
    assert_eq!(w.manifest()["files"], serde_json::json!([]));
    assert!(!w.calls().iter().any(|c| mentions(c, "start")));
}

/// As ssh refuses a key others can read, bkt refuses such a password file,
/// before anything is made.
#[test]
fn a_password_file_others_can_read_is_refused() {
    let w = world("127.0.0.84", closed_port("127.0.0.84"));
    std::fs::set_permissions(w.path("pw"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let args = create_args(&w);
    let r = w.bkt(&args.iter().map(String::as_str).collect::<Vec<_>>());
    r.failure();
    assert_eq!(
        r.stderr(),
        format!(
            "error: --password-file {pw} can be read by other users (mode 0644); bkt refuses it, as ssh refuses such keys\nhint: chmod 600 {pw}\n",
            pw = w.p("pw")
        )
    );
    assert!(w.calls().is_empty());
    assert!(!w.manifest_path().exists());
}

/// Ctrl-C during the watch: exit 130, the VM left as it is, and the user
/// told where the answer ISO (with the password) is.
#[test]
fn ctrl_c_while_watching_says_where_the_answers_are() {
    let w = world("127.0.0.85", closed_port("127.0.0.85"));
    w.rule_first("virsh", "* send-key windows KEY_ENTER")
        .sh(&format!(": >\"{}\"\n", w.p("watching")));
    let args = create_args(&w);
    let child = w
        .command(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .spawn()
        .unwrap();
    poll_until("never watched", || w.path("watching").exists());
    // SAFETY: signalling the child we started, by its PID.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.ends_with(&format!(
            "error: stopped watching the install of windows; the VM is left as it is\ncaused by: interrupted\nhint: the answer ISO {} holds the Windows password in clear text and stays attached until the install ends; `bkt vm destroy windows` removes it with the VM\n",
            w.p("images/windows-answer.iso")
        )),
        "{err}"
    );
    assert!(w.path("images/windows-answer.iso").exists());
}

#[test]
fn the_watched_install_keeps_the_vm_in_use() {
    let w = world("127.0.0.86", closed_port("127.0.0.86"));
    w.rule_first("virsh", "* send-key windows KEY_ENTER")
        .sh(&format!(": >\"{}\"\n", w.p("watching")));
    w.rule("virsh", "* domdisplay --type spice windows")
        .out("spice://127.0.0.1:1\n");
    let args = create_args(&w);
    let child = w
        .command(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .spawn()
        .unwrap();
    poll_until("never watched", || w.path("watching").exists());
    assert_eq!(w.manifest()["vms"][0]["auto_save"], 900);
    assert_eq!(crate::save::look(&w, 5000), crate::save::IN_USE_BY_BKT);
    // SAFETY: signalling the child we started, by its PID.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    // Watching ended: it lets go.
    assert_eq!(
        crate::save::look(&w, 5060),
        "windows: unused for 1m; saved in 14m unless used\n"
    );
}
