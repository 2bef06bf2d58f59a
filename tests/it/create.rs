//! `bkt vm create` against fakes: the happy path, every refusal, the rollback.

use crate::harness::{URI, World, argv, fixture, has_args, virsh_argv};
use crate::normalize;

const GIB: u64 = 1 << 30;

/// The UUID create generated (random: read back from the calls, virt-install's
/// `--uuid` or the start of the domain).
pub fn uuid_of(w: &World) -> String {
    let re = regex::Regex::new("^[0-9a-f-]{36}$").unwrap();
    w.calls()
        .iter()
        .find_map(|c| {
            c[..c.len() - 1]
                .windows(2)
                .find(|a| (a[0] == "--uuid" || a[0] == "start") && re.is_match(&a[1]))
                .map(|a| a[1].clone())
        })
        .expect("create used a UUID")
}

fn expected_render(w: &World, mac: &str, uuid: &str) -> Vec<String> {
    argv![
        "virt-install",
        "--connect",
        URI,
        "--name",
        "windows",
        "--uuid",
        uuid,
        "--osinfo",
        "win11",
        "--virt-type",
        "kvm",
        "--machine",
        "q35",
        "--memory",
        "8192",
        "--vcpus",
        "4",
        "--cpu",
        "host-passthrough",
        "--boot",
        "uefi,firmware.feature0.name=secure-boot,firmware.feature0.enabled=yes,\
         firmware.feature1.name=enrolled-keys,firmware.feature1.enabled=yes",
        "--features",
        "smm.state=on",
        "--xml",
        "./features/hyperv/@mode=passthrough",
        "--clock",
        "offset=localtime,hypervclock_present=yes",
        "--tpm",
        "backend.type=emulator,backend.version=2.0,model=tpm-crb",
        "--disk",
        format!(
            "path={},device=cdrom,bus=sata,readonly=on,boot.order=1",
            w.p("isos/Win11.iso")
        ),
        "--disk",
        format!(
            "path={},format=qcow2,bus=virtio,discard=unmap,boot.order=2",
            w.p("images/windows.qcow2")
        ),
        "--disk",
        format!(
            "path={},device=cdrom,bus=sata,readonly=on",
            w.p("isos/virtio-win.iso")
        ),
        "--network",
        format!("network=default,model=virtio,mac={mac}"),
        "--video",
        "model.type=qxl,model.ram=131072,model.vram=131072,model.vgamem=65536",
        "--graphics",
        "spice",
        "--channel",
        "spicevmc",
        "--channel",
        "unix,target.type=virtio,target.name=org.qemu.guest_agent.0",
        "--import",
        "--noautoconsole",
        "--print-xml",
        "--dry-run"
    ]
}

#[test]
fn happy_path_with_defaults() {
    let w = World::new();
    w.libvirt_up().domains(&[]).creation_works(80 * GIB);
    let iso = w.iso("Win11.iso");
    let virtio = w.iso("virtio-win.iso");
    let r = w.bkt(&[
        "vm",
        "create",
        "windows",
        "--iso",
        &iso,
        "--virtio-iso",
        &virtio,
        "--notes",
        "For Bambu Studio slicer",
        "--yes",
    ]);
    r.success();
    assert_eq!(
        normalize(&w, &r.stdout()),
        "Preflight
  ✓ KVM            $TMP/kvm is usable
  ✓ tools          virsh 11.3.0, virt-install 4.1.0, qemu-img 10.0.2
  ✓ libvirt        qemu:///system (libvirt 11.3.0, QEMU 10.0.2)
  ✓ name           \"windows\" is free
  ✓ resources      4 vCPUs, 8 GiB (host: 8 cores, 16 GiB)
  ✓ install ISO    Win11.iso (ISO 9660, 40 KiB)
  ✓ Windows        Windows 11 24H2 x64, build 26100.1742: Windows 11 Home, Windows 11 Pro, Windows 11 Education
  ✓ virtio ISO     virtio-win.iso (ISO 9660, 40 KiB)
  ✓ Secure Boot    OVMF_CODE_4M.ms.fd (Microsoft keys enrolled)
  ⚠ network        libvirt network \"default\" is active but does not start on boot
    fix: virsh -c qemu:///system net-autostart default
  ~ disk space     (depends on the machine)
  ✓ QEMU access    libvirt-qemu (QEMU's user) can read the ISOs
Creating
  • disk           $TMP/images/windows.qcow2 (80 GiB, sparse: 196 KiB allocated)
  • domain         windows: 4 vCPUs, 8 GiB, UEFI + Secure Boot, TPM 2.0, VirtIO
  • starting       done
  • auto-save      to disk after 15m unused, giving its memory back
  • manifest       $TMP/home/.config/bootc/vms.json

Next: complete Windows Setup in the VM's console: bkt vm connect windows --spice
  1. Choose \"I don't have a product key\" (activate later)
  2. Select Windows 11 Pro
  3. Choose \"Custom: Install Windows only\"
  4. Click \"Load driver\" → browse to the virtio-win CD → amd64\\w11
  5. Select the VirtIO disk and continue the installation
When Windows is installed, turn on Remote Desktop: bkt vm enable-rdp windows
"
    );
    let m = w.manifest();
    let e = &m["vms"][0];
    assert_eq!(e["name"], "windows");
    assert_eq!(e["type"], "windows11");
    assert_eq!(e["disk"], w.p("images/windows.qcow2"));
    assert_eq!(e["notes"], "For Bambu Studio slicer");
    assert_eq!(e["rdp_enabled"], false);
    assert_eq!(e["uri"], URI);
    assert_eq!(e["isos"], serde_json::json!([iso, virtio]));
    assert!(e.get("creating").is_none());
    assert_eq!(
        e["auto_save"], 900,
        "new VMs are saved after 15 minutes unused"
    );
    let mac = e["mac"].as_str().unwrap().to_string();
    // The one file create made is on record for destroy.
    assert_eq!(
        m["files"],
        serde_json::json!([{"vm": "windows", "uri": URI, "path": w.p("images/windows.qcow2")}])
    );

    let uuid = uuid_of(&w);
    let calls = w.calls();
    assert_eq!(
        calls,
        vec![
            argv!["virsh", "--version"],
            argv!["virt-install", "--version"],
            argv!["qemu-img", "--version"],
            virsh_argv(&["version"]),
            argv!["virsh", "-q", "-c", URI, "list", "--all", "--name"],
            virsh_argv(&[
                "domstats",
                "--raw",
                "--state",
                "--vcpu",
                "--balloon",
                "--block"
            ]),
            virsh_argv(&[
                "domcapabilities",
                "--virttype",
                "kvm",
                "--arch",
                "x86_64",
                "--machine",
                "q35"
            ]),
            virsh_argv(&["net-info", "default"]),
            virsh_argv(&["pool-dumpxml", "default"]),
            virsh_argv(&["capabilities"]),
            argv![
                "qemu-img",
                "create",
                "-q",
                "-f",
                "qcow2",
                w.p("images/windows.qcow2"),
                80 * GIB
            ],
            argv![
                "qemu-img",
                "info",
                "--output=json",
                "-U",
                w.p("images/windows.qcow2")
            ],
            expected_render(&w, &mac, &uuid),
            virsh_argv(&["define", "/dev/stdin"]),
            argv!["virsh", "-c", URI, "start", &uuid, "--reset-nvram"],
        ]
    );
    // virsh define got the XML virt-install rendered, on stdin.
    assert_eq!(
        std::fs::read_to_string(w.path("stdin.define")).unwrap(),
        fixture("virt-install/print-xml-windows-qemu.xml")
    );
    // virsh always runs untranslated, so its tables parse.
    for (call, locale) in w.calls().iter().zip(w.call_locales()) {
        if call[0] == "virsh" {
            assert_eq!(locale, "LC_ALL=C", "{call:?}");
        }
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(w.path("images/windows.qcow2"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "claimed exclusively, private");
}

#[test]
fn sizes_in_every_spelling_and_qemu_type() {
    let w = World::new();
    w.libvirt_up().domains(&[]).creation_works(40 * GIB);
    let iso = w.iso("Win11.iso");
    let r = w.bkt(&[
        "vm",
        "create",
        "windows",
        "--name",
        "work",
        "--iso",
        &iso,
        "--disk-size",
        "40960M",
        "--memory",
        "4GiB",
        "--cpus",
        "2",
        "--virt-type",
        "qemu",
        "--yes",
    ]);
    r.success();
    let out = normalize(&w, &r.stdout());
    assert!(out.contains("  ✓ KVM            not used (--virt-type qemu: software emulation)\n"));
    assert!(out.contains("  ✓ resources      2 vCPUs, 4 GiB (host: 8 cores, 16 GiB)\n"));
    assert!(out.contains("  • domain         work: 2 vCPUs, 4 GiB, UEFI + Secure Boot, TPM 2.0, VirtIO, software emulation\n"));
    let install = w
        .calls()
        .into_iter()
        .find(|c| c.starts_with(&argv!["virt-install", "--connect"]))
        .unwrap();
    assert!(has_args(&install, &["--name", "work", "--uuid"]));
    assert!(has_args(&install, &["--virt-type", "qemu"]));
    assert!(has_args(
        &install,
        &["--memory", "4096", "--vcpus", "2", "--boot"]
    ));
    assert!(!install.iter().any(|a| a.contains("--cpu")), "{install:?}");
    assert!(w.calls().contains(&argv![
        "qemu-img",
        "create",
        "-q",
        "-f",
        "qcow2",
        w.p("images/work.qcow2"),
        40 * GIB
    ]));
    assert!(
        w.calls()
            .iter()
            .any(|c| has_args(c, &["domcapabilities", "--virttype", "qemu"]))
    );
}

#[test]
fn more_than_half_the_host_warns_but_goes_on() {
    let w = World::new();
    w.libvirt_up().domains(&[]).creation_works(80 * GIB);
    let iso = w.iso("Win11.iso");
    let r = w.bkt(&[
        "vm", "create", "--iso", &iso, "--memory", "12G", "--cpus", "6", "--yes",
    ]);
    r.success();
    assert!(r.stdout().contains(
        "  ⚠ resources      6 vCPUs, 12 GiB (host: 8 cores, 16 GiB): more than half the host; the host may slow down while it runs\n"
    ));
}

#[test]
fn running_vms_count_against_the_host() {
    let w = World::new();
    // Two running VMs (4 GiB, 2 vCPUs each) already: with this one (8 GiB,
    // 4 vCPUs) they pass half of the 16 GiB, 8-core host.
    let stats = fixture("virsh/domstats-three.txt")
        .replace("balloon.maximum=2097152", "balloon.maximum=4194304")
        .replace("balloon.maximum=262144", "balloon.maximum=4194304")
        .replace("vcpu.current=1", "vcpu.current=2");
    w.rule("virsh", "* domstats *").out(&stats);
    w.libvirt_up().domains(&[]).creation_works(80 * GIB);
    let iso = w.iso("Win11.iso");
    let r = w.bkt(&["vm", "create", "--iso", &iso, "--yes"]);
    r.success();
    let out = r.stdout();
    assert!(
        out.contains("  ✓ resources      4 vCPUs, 8 GiB (host: 8 cores, 16 GiB)\n"),
        "{out}"
    );
    assert!(out.contains("  ⚠ resources      with it, 3 running VMs use 16 GiB of memory, more than half of the host's 16 GiB\n"), "{out}");
    assert!(out.contains("  ⚠ resources      with it, 3 running VMs use 8 vCPUs, more than half of the host's 8 cores\n"), "{out}");
}

#[test]
fn dry_run_prints_commands_and_xml_and_creates_nothing() {
    let w = World::new();
    w.libvirt_up().domains(&[]);
    w.rule("virt-install", "* --print-xml --dry-run")
        .out(&fixture("virt-install/print-xml-windows-qemu.xml"));
    let iso = w.iso("Win11.iso");
    let r = w.bkt(&[
        "vm",
        "create",
        "--iso",
        &iso,
        "--yes",
        "--dry-run",
        "--disk-size",
        "20G",
    ]);
    r.success();
    let out = normalize(&w, &r.stdout());
    assert!(out.contains("Dry run: nothing will be created\nCommands:\n  qemu-img create -q -f qcow2 $TMP/images/windows.qcow2 21474836480\n  virt-install --connect qemu:///system --name windows --uuid "));
    let re = regex::Regex::new(
        r" --print-xml --dry-run\n  virsh -c qemu:///system define /dev/stdin\n  virsh -c qemu:///system start ([0-9a-f-]{36}) --reset-nvram\nDomain XML",
    )
    .unwrap();
    assert!(re.is_match(&out), "{out}");
    assert!(
        out.contains("Domain XML (rendered by virt-install --print-xml):\n<domain type=\"qemu\">")
    );
    let calls = w.calls();
    let last = calls.last().unwrap();
    assert_eq!(last[0], "virt-install");
    assert!(
        has_args(
            last,
            &[
                "--disk".to_string(),
                format!(
                    "path={},format=qcow2,bus=virtio,discard=unmap,boot.order=2,size=20",
                    w.p("images/windows.qcow2")
                )
            ]
        ),
        "{last:?}"
    );
    assert!(last.ends_with(&argv!["--print-xml", "--dry-run"]));
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with(&argv!["qemu-img", "create"]))
    );
    assert!(!w.path("images/windows.qcow2").exists());
    assert!(!w.manifest_path().exists());
}

/// Run a create that must fail before anything is made; returns stdout+stderr.
pub fn refused(w: &World, args: &[&str]) -> (String, String) {
    let r = w.bkt(args);
    r.failure();
    assert!(
        !w.calls()
            .iter()
            .any(|c| c.starts_with(&argv!["qemu-img", "create"])
                || c.starts_with(&argv!["virt-install", "--connect"])),
        "{:?}",
        w.calls()
    );
    assert!(
        !w.manifest_path().exists()
            || w.manifest()["vms"]
                .as_array()
                .unwrap()
                .iter()
                .all(|v| v["name"] != "windows" || v.get("creating").is_none())
    );
    (normalize(w, &r.stdout()), normalize(w, &r.stderr()))
}

#[test]
fn bad_name() {
    let w = World::new();
    w.libvirt_up().domains(&[]);
    let iso = w.iso("Win11.iso");
    let r = w.bkt(&[
        "vm",
        "create",
        "--name",
        "win;rm -rf",
        "--iso",
        &iso,
        "--yes",
    ]);
    // Refused by the command line parser, before anything runs.
    assert_eq!(r.code(), 2);
    assert_eq!(
        r.stderr(),
        "error: invalid value 'win;rm -rf' for '--name <NAME>': invalid VM name \"win;rm -rf\": use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit\n\nFor more information, try '--help'.\n"
    );
    assert!(w.calls().is_empty());
    assert!(!w.manifest_path().exists());
}

#[test]
fn bad_size() {
    let w = World::new();
    let iso = w.iso("Win11.iso");
    let r = w.bkt(&["vm", "create", "--iso", &iso, "--disk-size", "80X", "--yes"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: --disk-size\ncaused by: invalid size \"80X\": unknown unit \"x\" (use M, G or T, e.g. 80G or 81920M)\n"
    );
    assert!(w.calls().is_empty());
}

#[test]
fn too_much_ram_and_too_many_cpus() {
    let w = World::new();
    w.libvirt_up().domains(&[]);
    let iso = w.iso("Win11.iso");
    let (out, _) = refused(
        &w,
        &["vm", "create", "--iso", &iso, "--memory", "32G", "--yes"],
    );
    assert!(out.contains("  ✗ resources      4 vCPUs, 32 GiB (host: 8 cores, 16 GiB): more memory than the host has\n    fix: ask for at most 8 GiB with --memory\n"));
    let (out, _) = refused(&w, &["vm", "create", "--iso", &iso, "--cpus", "9", "--yes"]);
    assert!(out.contains("  ✗ resources      9 vCPUs, 8 GiB (host: 8 cores, 16 GiB): more vCPUs than the host has cores\n    fix: ask for at most 4 with --cpus\n"));
}

#[test]
fn missing_iso_option_and_missing_iso_file_and_non_iso() {
    let w = World::new();
    w.libvirt_up().domains(&[]);
    let r = w.bkt(&["vm", "create", "--yes"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: no Windows ISO given\nhint: pass it with --iso PATH, or download Windows 11 first (about 7 GiB from Microsoft): bkt vm download --windows\n"
    );
    let (out, _) = refused(&w, &["vm", "create", "--iso", "isos/nope.iso", "--yes"]);
    assert!(
        out.contains("  ✗ install ISO    $TMP/isos/nope.iso does not exist\n"),
        "{out}"
    );
    std::fs::write(w.path("notes.txt"), "hello").unwrap();
    let (out, err) = refused(&w, &["vm", "create", "--iso", &w.p("notes.txt"), "--yes"]);
    assert!(
        out.contains(
            "  ✗ install ISO    $TMP/notes.txt is not an ISO 9660 image (no CD001 signature)\n"
        ),
        "{out}"
    );
    assert_eq!(
        err,
        "error: preflight failed (install ISO: $TMP/notes.txt is not an ISO 9660 image (no CD001 signature)); nothing was created\n"
    );
}

#[test]
fn name_taken_in_libvirt_or_manifest() {
    let w = World::new();
    w.libvirt_up().domains(&["windows", "scratch"]);
    let iso = w.iso("Win11.iso");
    let (out, _) = refused(&w, &["vm", "create", "--iso", &iso, "--yes"]);
    assert!(out.contains("  ✗ name           a VM named \"windows\" already exists in libvirt\n    fix: choose another --name, or `bkt vm destroy windows`\n"));

    let w = World::new();
    w.libvirt_up().domains(&[]);
    w.write_manifest(
        serde_json::json!({"vms": [{"name": "windows", "type": "windows11",
        "disk": "/x.qcow2", "created": "2026-01-25"}]}),
    );
    let iso = w.iso("Win11.iso");
    let r = w.bkt(&["vm", "create", "--iso", &iso, "--yes"]);
    r.failure();
    assert!(
        r.stdout()
            .contains("  ✗ name           \"windows\" is already in bkt's manifest\n")
    );
}

#[test]
fn libvirt_unreachable() {
    let w = World::new();
    w.rule("virsh", "* version")
        .err("error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/run/libvirt/libvirt-sock': No such file or directory\n")
        .code(1);
    std::fs::write(w.path("kvm"), "").unwrap();
    let iso = w.iso("Win11.iso");
    let (out, err) = refused(&w, &["vm", "create", "--iso", &iso, "--yes"]);
    assert!(out.contains("  ✗ libvirt        cannot reach qemu:///system: Failed to connect socket to '/run/libvirt/libvirt-sock': No such file or directory\n    fix: start libvirt (`sudo systemctl start libvirtd`, or virtqemud on modular hosts), or check --connect / LIBVIRT_DEFAULT_URI\n"), "{out}");
    assert_eq!(
        err,
        "error: preflight failed (libvirt: cannot reach qemu:///system: Failed to connect socket to '/run/libvirt/libvirt-sock': No such file or directory); nothing was created\n"
    );
    // Nothing else is asked of a libvirt that is not there.
    assert_eq!(
        w.calls(),
        [
            argv!["virsh", "--version"],
            argv!["virt-install", "--version"],
            argv!["qemu-img", "--version"],
            virsh_argv(&["version"])
        ]
    );
}

#[test]
fn missing_program_names_the_package() {
    let w = World::new();
    w.libvirt_up().domains(&[]);
    w.remove_fake("virt-install");
    let iso = w.iso("Win11.iso");
    let (out, _) = refused(&w, &["vm", "create", "--iso", &iso, "--yes"]);
    assert!(out.contains("  ✗ tools          virt-install not found on PATH\n    fix: virt-install: apt install virtinst / dnf install virt-install\n"), "{out}");
}

#[test]
fn no_kvm_says_what_to_do() {
    let w = World::new();
    w.libvirt_up().domains(&[]);
    std::fs::remove_file(w.path("kvm")).unwrap();
    let iso = w.iso("Win11.iso");
    let (out, _) = refused(&w, &["vm", "create", "--iso", &iso, "--yes"]);
    assert!(out.contains("  ✗ KVM            $TMP/kvm does not exist: no hardware virtualization\n    fix: enable VT-x/AMD-V in the firmware setup and load kvm_intel or kvm_amd; or use --virt-type qemu (software emulation, very slow)\n"), "{out}");
}

#[test]
fn inactive_network_and_no_secure_boot_firmware() {
    let w = World::new();
    std::fs::write(w.path("kvm"), "").unwrap();
    w.rule("virsh", "* version")
        .out(&fixture("virsh/version.txt"));
    // hand-typed, not recorded: no host here lacks Secure Boot firmware;
    // bkt reads only the loader values and their `secure` enum, as here.
    w.rule("virsh", "* domcapabilities *").out(
        "<domainCapabilities><os supported='yes'><loader supported='yes'>\
         <value>/usr/share/OVMF/OVMF_CODE_4M.fd</value>\
         <enum name='secure'><value>no</value></enum></loader></os></domainCapabilities>\n",
    );
    w.rule("virsh", "* net-info default")
        .out(&fixture("virsh/net-info-default-inactive.txt"));
    w.rule("virsh", "* pool-dumpxml default")
        .recorded("virsh/pool-dumpxml-default-missing");
    w.domains(&[]);
    let iso = w.iso("Win11.iso");
    let r = w.bkt(&["vm", "create", "--iso", &iso, "--yes"]);
    r.failure();
    let out = r.stdout();
    assert!(out.contains("  ✗ Secure Boot    no UEFI firmware with Secure Boot for q35\n    fix: install UEFI firmware with Secure Boot: apt install ovmf / dnf install edk2-ovmf\n"), "{out}");
    assert!(out.contains("  ✗ network        libvirt network \"default\" is not active\n    fix: virsh -c qemu:///system net-start default && virsh -c qemu:///system net-autostart default\n"), "{out}");
    // With no default pool the system images directory is used.
    assert!(out.contains("/var/lib/libvirt/images"), "{out}");
}

#[test]
fn corrupt_manifest_is_reported_and_kept() {
    let w = World::new();
    w.libvirt_up().domains(&[]);
    std::fs::create_dir_all(w.manifest_path().parent().unwrap()).unwrap();
    std::fs::write(w.manifest_path(), "{\"vms\": [").unwrap();
    let iso = w.iso("Win11.iso");
    let r = w.bkt(&["vm", "create", "--iso", &iso, "--yes"]);
    r.failure();
    assert!(normalize(&w, &r.stdout()).contains("  ✗ manifest       the manifest $TMP/home/.config/bootc/vms.json is not valid (fix or move it aside; bkt will not overwrite it): EOF while parsing a list at line 1 column 9\n"), "{}", r.stdout());
    assert_eq!(
        std::fs::read_to_string(w.manifest_path()).unwrap(),
        "{\"vms\": ["
    );
}

#[test]
fn two_concurrent_creates_of_different_names_both_land() {
    let w = World::new();
    w.libvirt_up().domains(&[]).creation_works(80 * GIB);
    let iso = w.iso("Win11.iso");
    let a = w
        .command(&["vm", "create", "--name", "a", "--iso", &iso, "--yes"])
        .spawn()
        .unwrap();
    let b = w
        .command(&["vm", "create", "--name", "b", "--iso", &iso, "--yes"])
        .spawn()
        .unwrap();
    assert!(a.wait_with_output().unwrap().status.success());
    assert!(b.wait_with_output().unwrap().status.success());
    let mut names: Vec<String> = w.manifest()["vms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["a", "b"]);
}
