//! Tier 3: `bkt vm` against a real libvirt 11, QEMU 10, swtpm and OVMF, with
//! software emulation, inside the network namespace that
//! `scripts/libvirt-netns.sh` made. Run by `scripts/test-all.sh` (the
//! README's test command); `#[ignore]` keeps a plain `cargo test` from
//! running it without that environment.
//!
//! Only this tier proves that the VM we define boots with Secure Boot
//! enforced and a TPM, survives a reset, and is gone without a trace after
//! destroy.

use std::fs;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const URI: &str = "qemu:///system";

struct Env {
    guest_dir: PathBuf,
    work: tempfile::TempDir,
    /// A 0700 directory like a Fedora home, holding the install media:
    /// QEMU's user cannot enter it until bkt grants it (an ACL).
    home: tempfile::TempDir,
    /// A directory QEMU's user can read (0755), for what the test gives
    /// QEMU itself: the tiny guest's kernel and initrd. The checkout may be
    /// inside a 0700 directory.
    shared: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let guest_dir = PathBuf::from(std::env::var("BKT_E2E_GUEST_DIR").unwrap_or_else(|_| {
            panic!(
                "BKT_E2E_GUEST_DIR is not set: run the end-to-end tier through scripts/test-all.sh"
            )
        }));
        assert!(
            guest_dir.join("win-standin.iso").exists(),
            "no stand-in ISOs in {}: run scripts/build-test-guest.sh",
            guest_dir.display()
        );
        use std::os::unix::fs::PermissionsExt;
        let home = tempfile::tempdir().unwrap();
        fs::set_permissions(home.path(), fs::Permissions::from_mode(0o700)).unwrap();
        let shared = tempfile::tempdir().unwrap();
        fs::set_permissions(shared.path(), fs::Permissions::from_mode(0o755)).unwrap();
        for f in ["win-standin.iso", "virtio-standin.iso"] {
            fs::copy(guest_dir.join(f), home.path().join(f)).unwrap();
        }
        // bkt's cache in that home too, with the drivers ISO in it (creates
        // without --virtio-iso take it from there), as on a Fedora desktop.
        let cache = home.path().join(".cache/bkt/vm");
        fs::create_dir_all(&cache).unwrap();
        fs::copy(
            guest_dir.join("virtio-standin.iso"),
            cache.join("virtio-win.iso"),
        )
        .unwrap();
        for f in ["vmlinuz", "initrd.gz"] {
            fs::copy(guest_dir.join(f), shared.path().join(f)).unwrap();
        }
        Env {
            guest_dir,
            work: tempfile::tempdir().unwrap(),
            home,
            shared,
        }
    }

    /// `$XDG_CACHE_HOME` of the bkt runs: inside the 0700 home.
    fn cache(&self) -> PathBuf {
        self.home.path().join(".cache")
    }

    /// A stand-in ISO in the 0700 home.
    fn media(&self, file: &str) -> PathBuf {
        self.home.path().join(file)
    }

    fn manifest(&self) -> PathBuf {
        self.work.path().join("vms.json")
    }

    fn bkt(&self, args: &[&str]) -> Output {
        self.bkt_with(&self.manifest(), args)
    }

    /// `bkt ARGS` with another manifest.
    fn bkt_with(&self, manifest: &Path, args: &[&str]) -> Output {
        self.bkt_env(manifest, args, &[])
    }

    /// `bkt ARGS` with another manifest and more environment.
    fn bkt_env(&self, manifest: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_bkt"))
            .args(args)
            .env("XDG_CACHE_HOME", self.cache())
            .envs(env.iter().copied())
            .env("BKT_VM_MANIFEST", manifest)
            .env("NO_COLOR", "1")
            .env_remove("LIBVIRT_DEFAULT_URI")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        eprintln!(
            "$ bkt {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn manifest_names(&self) -> Vec<String> {
        match fs::read_to_string(self.manifest()) {
            Ok(t) => serde_json::from_str::<serde_json::Value>(&t).unwrap()["vms"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["name"].as_str().unwrap().to_string())
                .collect(),
            Err(_) => vec![],
        }
    }
}

fn run(prog: &str, args: &[&str]) -> Output {
    Command::new(prog)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{prog}: {e}"))
}

fn virsh(args: &[&str]) -> Output {
    let mut a = vec!["-c", URI];
    a.extend_from_slice(args);
    run("virsh", &a)
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "command failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A small `create --yes` under software emulation, for the refusals.
fn small_create<'a>(name: &'a str, iso: &'a str) -> Vec<&'a str> {
    vec![
        "vm",
        "create",
        "--name",
        name,
        "--iso",
        iso,
        "--virt-type",
        "qemu",
        "--memory",
        "1G",
        "--cpus",
        "1",
        "--yes",
    ]
}

fn domains() -> Vec<String> {
    ok(&virsh(&["-q", "list", "--all", "--name"]))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

fn domstate(name: &str) -> String {
    ok(&virsh(&["domstate", "--reason", name]))
        .trim()
        .to_string()
}

fn sha256(path: &Path) -> String {
    ok(&run("sha256sum", &[path.to_str().unwrap()]))
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Poll `cond` every 250 ms until it holds or `limit` passes.
fn wait_for<T>(what: &str, limit: Duration, mut cond: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = cond() {
            eprintln!("  {what}: after {:.1}s", start.elapsed().as_secs_f64());
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn xml_doc(xml: &str) -> roxmltree::Document<'_> {
    roxmltree::Document::parse(xml).unwrap()
}

fn find<'a>(
    doc: &'a roxmltree::Document<'a>,
    tag: &str,
    pred: impl Fn(&roxmltree::Node) -> bool,
) -> Option<roxmltree::Node<'a, 'a>> {
    doc.descendants().find(|n| n.has_tag_name(tag) && pred(n))
}

/// Copy everything the guest writes to its serial console (a pty) into a
/// buffer, from a background thread.
fn capture_serial(pty: &str) -> Arc<Mutex<Vec<u8>>> {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink = buf.clone();
    let mut f = fs::File::open(pty).unwrap_or_else(|e| panic!("{pty}: {e}"));
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = f.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    buf
}

#[test]
#[ignore = "needs the real virt stack: run scripts/test-all.sh"]
fn real_stack() {
    let started = Instant::now();
    let env = Env::new();
    downloads(&env);
    windows_vm(&env);
    ownership(&env);
    failed_creates(&env);
    unattended(&env);
    tiny_guests(&env);
    libvirtd_stopped(&env);
    eprintln!("end-to-end tier: {:.0}s", started.elapsed().as_secs_f64());
}

fn windows_vm(env: &Env) {
    eprintln!("== the Windows-shaped VM");
    let iso = env.media("win-standin.iso");
    let virtio = env.media("virtio-standin.iso");
    let iso_sum = sha256(&iso);
    let virtio_sum = sha256(&virtio);
    let name = "e2e-win";
    let out = env.bkt(&[
        "vm",
        "create",
        "windows",
        "--name",
        name,
        "--iso",
        iso.to_str().unwrap(),
        "--virtio-iso",
        virtio.to_str().unwrap(),
        "--virt-type",
        "qemu",
        "--memory",
        "2G",
        "--cpus",
        "1",
        "--disk-size",
        "20G",
        "--notes",
        "end-to-end",
        "--yes",
    ]);
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
    eprintln!("  firmware said: {}", line.trim());
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
    let level = |checks: &serde_json::Value, label: &str| -> String {
        checks
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["label"] == label)
            .unwrap_or_else(|| panic!("no {label} check in {checks}"))["level"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for label in ["libvirt", "Secure Boot", "swtpm", "tools"] {
        assert_eq!(level(&doc["host"], label), "pass", "host {label}: {doc}");
    }
    let vm = &doc["vms"][0]["checks"];
    for label in ["defined", "firmware", "TPM", "disk", "manifest"] {
        assert_eq!(level(vm, label), "pass", "{label}: {doc}");
    }
    assert_eq!(level(vm, "guest agent"), "warn", "no agent in the stand-in");

    // Bad input against the real stack: each fails and changes nothing.
    let before_domains = domains();
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
    assert_eq!(domains(), before_domains);
    assert_eq!(fs::read_to_string(env.manifest()).unwrap(), before_manifest);
    assert!(!Path::new("/var/lib/libvirt/images/e2e-bad.qcow2").exists());

    enable_rdp(env, name, iso.to_str().unwrap());
    snapshots(env, name, &disk_path, &nvram, &tpm_state);

    // destroy: nothing of the VM is left, and the install media are intact.
    ok(&env.bkt(&["vm", "destroy", name, "--yes"]));
    assert!(!domains().contains(&name.to_string()));
    assert!(!Path::new(&nvram).exists(), "NVRAM {nvram} is left");
    assert!(
        !tpm_state.exists(),
        "TPM state {} is left",
        tpm_state.display()
    );
    let snaps = Path::new(&disk_path).with_file_name(format!("{name}.snapshots"));
    assert!(!snaps.exists(), "snapshots {} are left", snaps.display());
    assert!(!Path::new(&disk_path).exists(), "disk {disk_path} is left");
    assert!(!env.manifest_names().contains(&name.to_string()));
    assert_eq!(sha256(&iso), iso_sum, "the install ISO changed");
    assert_eq!(sha256(&virtio), virtio_sum, "the virtio ISO changed");
}

/// A domain defined by hand (not by bkt) with two disks: `disks` as
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

/// destroy deletes only what bkt made: a VM defined by hand keeps its disk
/// in the images directory and its shareable disk elsewhere; a bkt VM whose
/// disk another domain also uses keeps that disk.
fn ownership(env: &Env) {
    eprintln!("== destroy keeps what bkt did not make");
    let images_disk = "/var/lib/libvirt/images/e2e-hand.img";
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
    assert!(!domains().contains(&"e2e-hand".to_string()));
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

    // A bkt VM, and another domain that uses its disk too.
    let iso = env.media("win-standin.iso");
    ok(&env.bkt(&small_create("e2e-own", iso.to_str().unwrap())));
    let disk = "/var/lib/libvirt/images/e2e-own.qcow2";
    define_by_hand("e2e-twin", &[(disk, false)], env.work.path());
    let out = env.bkt(&["vm", "destroy", "e2e-own", "--yes"]);
    let (stdout, _) = text(&out);
    ok(&out);
    assert!(!domains().contains(&"e2e-own".to_string()));
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

/// A failed create undoes only what that run made, on the real stack.
fn failed_creates(env: &Env) {
    eprintln!("== failed creates");
    let iso = env.media("win-standin.iso");
    // A virt-install that, asked for the domain XML, defines a domain of the
    // same name (as another client would, while bkt ran) and then fails:
    // that domain is not bkt's, and stays. Any other call (the version
    // preflight reads) goes to the real virt-install.
    let fake_bin = env.work.path().join("race-bin");
    fs::create_dir_all(&fake_bin).unwrap();
    let other = env.work.path().join("e2e-race-other.xml");
    fs::write(
        &other,
        "<domain type='qemu'><name>e2e-race</name><memory unit='MiB'>128</memory>\
         <os><type arch='x86_64' machine='q35'>hvm</type></os></domain>",
    )
    .unwrap();
    let stand_in = fake_bin.join("virt-install");
    fs::write(
        &stand_in,
        format!(
            "#!/bin/sh\ncase \"$*\" in *--print-xml*) ;; *) exec /usr/bin/virt-install \"$@\" ;; esac\nvirsh -q -c qemu:///system define {} >/dev/null\necho 'ERROR    Domain e2e-race already exists' >&2\nexit 1\n",
            other.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&stand_in, fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        fake_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = env.bkt_env(
        &env.manifest(),
        &small_create("e2e-race", iso.to_str().unwrap()),
        &[("PATH", &path)],
    );
    assert_eq!(out.status.code(), Some(1));
    let (stdout, stderr) = text(&out);
    assert!(
        stderr.contains("error: creating e2e-race failed; nothing was left behind"),
        "{stderr}"
    );
    assert!(
        stdout.ends_with(
            "Rolled back\n  • removed        disk /var/lib/libvirt/images/e2e-race.qcow2\n  • removed        manifest entry\n"
        ),
        "{stdout}"
    );
    assert_eq!(
        domstate("e2e-race"),
        "shut off (unknown)",
        "the other e2e-race stays"
    );
    assert!(!Path::new("/var/lib/libvirt/images/e2e-race.qcow2").exists());
    assert!(!env.manifest_names().contains(&"e2e-race".to_string()));
    ok(&virsh(&["undefine", "e2e-race"]));

    // QEMU cannot start (far more memory than it can map): the domain this
    // run defined goes with the NVRAM and TPM state libvirt made for it.
    let tpm_before: Vec<_> = fs::read_dir("/var/lib/libvirt/swtpm")
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    let nvram = Path::new("/var/lib/libvirt/qemu/nvram/e2e-nomem_VARS.fd");
    let mut args = small_create("e2e-nomem", iso.to_str().unwrap());
    let i = args.iter().position(|a| *a == "1G").unwrap();
    args[i] = "2000G";
    let out = env.bkt_env(&env.manifest(), &args, &[("BKT_VM_HOST_MEMORY", "8T")]);
    assert_eq!(out.status.code(), Some(1));
    let (stdout, stderr) = text(&out);
    assert!(
        stderr.contains("caused by: starting the domain"),
        "{stderr}"
    );
    assert!(stderr.contains("Cannot allocate memory"), "{stderr}");
    assert!(
        stdout.contains("  • removed        domain e2e-nomem with its NVRAM and TPM state\n"),
        "{stdout}"
    );
    assert!(!domains().contains(&"e2e-nomem".to_string()));
    assert!(!nvram.exists(), "{} is left", nvram.display());
    let tpm_after: Vec<_> = fs::read_dir("/var/lib/libvirt/swtpm")
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert_eq!(tpm_after, tpm_before, "no TPM state is left");
    assert!(!Path::new("/var/lib/libvirt/images/e2e-nomem.qcow2").exists());
}

/// The source of a domain's drive, from `virsh domblklist`.
fn drive_source(name: &str, target: &str) -> String {
    ok(&virsh(&["domblklist", name]))
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 2 && f[0] == target).then(|| f[1].to_string())
        })
        .unwrap_or_default()
}

/// enable-rdp puts a real script ISO (real xorriso) into the real CD-ROM
/// drive, and on timeout puts the install ISO back and deletes the script's.
fn enable_rdp(env: &Env, name: &str, install_iso: &str) {
    eprintln!("== enable-rdp");
    assert_eq!(drive_source(name, "sda"), install_iso);
    let child = Command::new(env!("CARGO_BIN_EXE_bkt"))
        .args(["vm", "enable-rdp", name, "--timeout", "10"])
        .env("BKT_VM_MANIFEST", env.manifest())
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
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    eprintln!("$ bkt vm enable-rdp {name} --timeout 10\n{stdout}{stderr}");
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
}

/// `create --unattended` on the real stack: the answer ISO is built by the
/// real xorriso from the stand-in virtio ISO's driver folders, attached as
/// a third CD-ROM, keys are sent for the "Press any key" prompt, and with
/// nothing installing (a stand-in) the watch reports the stall with a real
/// screenshot. destroy removes the answer ISO with the VM.
fn unattended(env: &Env) {
    eprintln!("== unattended");
    let name = "e2e-auto";
    let iso = env.media("win-standin.iso");
    let virtio = env.media("virtio-standin.iso");
    let pw = env.work.path().join("pw");
    fs::write(&pw, "Not-a-real-pw1\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&pw, fs::Permissions::from_mode(0o600)).unwrap();
    let out = env.bkt(&[
        "vm",
        "create",
        "--name",
        name,
        "--iso",
        iso.to_str().unwrap(),
        "--virtio-iso",
        virtio.to_str().unwrap(),
        "--virt-type",
        "qemu",
        "--memory",
        "1G",
        "--cpus",
        "1",
        "--disk-size",
        "8G",
        "--yes",
        "--unattended",
        "--username",
        "anna",
        "--password-file",
        pw.to_str().unwrap(),
        "--install-timeout",
        "15",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let (stdout, stderr) = text(&out);
    assert!(
        stderr.contains("error: the install made no progress for 15s (booting the installer"),
        "{stderr}"
    );
    let answer = "/var/lib/libvirt/images/e2e-auto-answer.iso";
    assert!(
        stdout.contains(&format!(
            "  • answers        {answer} (autounattend.xml, VirtIO drivers; 0600)"
        )),
        "{stdout}"
    );
    let mode = fs::metadata(answer).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the answer ISO holds the password");
    let listing = ok(&run(
        "xorriso",
        &["-indev", answer, "-find", "/", "-type", "f"],
    ));
    for f in [
        "'/autounattend.xml'",
        "'/$WinPEDriver$/viostor/viostor.inf'",
        "'/$WinPEDriver$/vioscsi/vioscsi.inf'",
        "'/$WinPEDriver$/NetKVM/NetKVM.inf'",
        "'/virtio-win-guest-tools.exe'",
    ] {
        assert!(listing.contains(f), "{f} missing from\n{listing}");
    }
    let extracted = env.work.path().join("autounattend.xml");
    ok(&run(
        "xorriso",
        &[
            "-osirrox",
            "on",
            "-indev",
            answer,
            "-extract",
            "/autounattend.xml",
            extracted.to_str().unwrap(),
        ],
    ));
    let xml = fs::read_to_string(&extracted).unwrap();
    roxmltree::Document::parse(&xml).expect("a well-formed answer file");
    assert!(!xml.contains("Not-a-real-pw1"), "no clear-text password");
    assert_eq!(drive_source(name, "sdc"), answer);
    assert_eq!(domstate(name), "running (booted)");
    let shot = env.cache().join("bkt/vm/e2e-auto-install-stalled.ppm");
    assert!(stderr.contains(&shot.display().to_string()), "{stderr}");
    assert!(
        fs::metadata(&shot).unwrap().len() > 1000,
        "a real screenshot"
    );
    let _ = fs::remove_file(&shot);
    ok(&env.bkt(&["vm", "destroy", name, "--yes"]));
    assert!(
        !Path::new(answer).exists(),
        "destroy removes the answer ISO"
    );
}

/// The downloader against a real HTTP server (Python's) on 127.0.0.1.
fn downloads(env: &Env) {
    eprintln!("== downloads");
    let root = env.work.path().join("mirror");
    fs::create_dir_all(&root).unwrap();
    fs::copy(
        env.guest_dir.join("virtio-standin.iso"),
        root.join("virtio-win.iso"),
    )
    .unwrap();
    let mut exe = vec![0u8; 300 << 10];
    exe[..2].copy_from_slice(b"MZ");
    fs::write(root.join("tools.exe"), &exe).unwrap();
    let mut server = Command::new("python3")
        .args(["-m", "http.server", "--bind", "127.0.0.1", "0"])
        .current_dir(&root)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let port = {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(server.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
        line.split_whitespace()
            .skip_while(|w| *w != "port")
            .nth(1)
            .unwrap_or_else(|| panic!("python said {line:?}"))
            .to_string()
    };
    let cache = env.work.path().join("cache");
    let out = Command::new(env!("CARGO_BIN_EXE_bkt"))
        .args([
            "vm",
            "download",
            "--virtio-url",
            &format!("http://127.0.0.1:{port}/virtio-win.iso"),
            "--guest-tools-url",
            &format!("http://127.0.0.1:{port}/tools.exe"),
            "--virtio-sha256",
            &sha256(&root.join("virtio-win.iso")),
        ])
        .env("XDG_CACHE_HOME", &cache)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    // A full disk: the cache on a 1 MiB tmpfs of our own.
    let small = env.work.path().join("small");
    fs::create_dir_all(&small).unwrap();
    ok(&run(
        "mount",
        &[
            "-t",
            "tmpfs",
            "-o",
            "size=1m",
            "tmpfs",
            small.to_str().unwrap(),
        ],
    ));
    let full = Command::new(env!("CARGO_BIN_EXE_bkt"))
        .args([
            "vm",
            "download",
            "--virtio-url",
            &format!("http://127.0.0.1:{port}/virtio-win.iso"),
        ])
        .env("XDG_CACHE_HOME", &small)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let leftover: Vec<_> = fs::read_dir(small.join("bkt/vm"))
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    // What is free once bkt removed its part (`stat -f`: free blocks, size).
    let statfs = ok(&run(
        "stat",
        &["-f", "-c", "%a %S", small.to_str().unwrap()],
    ));
    let free: Vec<u64> = statfs
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    let free = free[0] * free[1];
    let _ = run("umount", &[small.to_str().unwrap()]);
    let (_, full_err) = text(&full);
    eprintln!("$ bkt vm download (cache on a 1 MiB tmpfs)\n{full_err}");
    assert_eq!(full.status.code(), Some(1));
    let message = regex::Regex::new(&format!(
        "^downloading virtio-win.iso from .*\nerror: getting the VirtIO drivers\ncaused by: the disk is full: virtio-win.iso needs (.+) more in {}, (.+) free\nhint: make room there, or set XDG_CACHE_HOME to a disk with space, and run it again\n$",
        regex::escape(&small.join("bkt/vm").display().to_string())
    ))
    .unwrap();
    let said = message
        .captures(&full_err)
        .unwrap_or_else(|| panic!("{full_err}"));
    // The figures, to the rounding of one decimal.
    let bytes = |human: &str| {
        let (v, unit) = human.split_once(' ').unwrap();
        let scale = match unit {
            "B" => 1.0,
            "KiB" => 1024.0,
            "MiB" => 1024.0 * 1024.0,
            _ => panic!("{human}"),
        };
        v.parse::<f64>().unwrap() * scale
    };
    let size = fs::metadata(root.join("virtio-win.iso")).unwrap().len();
    for (shown, real) in [(&said[1], size - free), (&said[2], free)] {
        let shown = bytes(shown);
        assert!(
            (shown - real as f64).abs() <= real as f64 * 0.05,
            "{shown} is not {real}: {full_err}"
        );
    }
    assert_eq!(
        leftover
            .iter()
            .filter(|f| f.to_string_lossy().starts_with("virtio-win.iso"))
            .collect::<Vec<_>>(),
        ["virtio-win.iso.lock"],
        "no final file and no part on a full disk"
    );

    // SAFETY: ending the server we started, by its PID.
    unsafe {
        libc::kill(server.id() as i32, libc::SIGTERM);
    }
    let _ = server.wait();
    eprintln!(
        "$ bkt vm download ...\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ok(&out);
    assert_eq!(
        sha256(&cache.join("bkt/vm/virtio-win.iso")),
        sha256(&root.join("virtio-win.iso"))
    );
    assert_eq!(
        sha256(&cache.join("bkt/vm/virtio-win-guest-tools.exe")),
        sha256(&root.join("tools.exe"))
    );
}

/// Checksums of the three parts a snapshot must cover: the first 4 MiB the
/// guest sees of its disk, the NVRAM file, and every file of the TPM state.
fn parts_sums(env: &Env, disk: &str, nvram: &str, tpm: &Path) -> (String, String, String) {
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

/// A snapshot covers disk, NVRAM and TPM: change all three, revert, and
/// the checksums are back to what they were.
fn snapshots(env: &Env, name: &str, disk: &str, nvram: &str, tpm: &Path) {
    eprintln!("== snapshots");
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

    // Change all three parts.
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
}

/// Define the tiny busybox guest directly (it stands in for a booted
/// Windows: a lease, port 3389, ACPI power-off).
fn define_tiny(env: &Env, name: &str, extra_args: &str) {
    let kernel = env.shared.path().join("vmlinuz");
    let initrd = env.shared.path().join("initrd.gz");
    let boot = format!(
        "kernel={},initrd={},kernel_args=console=ttyS0 quiet{extra_args}",
        kernel.display(),
        initrd.display()
    );
    ok(&run(
        "virt-install",
        &[
            "--connect",
            URI,
            "--name",
            name,
            "--osinfo",
            "linux2022",
            "--virt-type",
            "qemu",
            "--memory",
            "256",
            "--vcpus",
            "1",
            "--import",
            "--disk",
            "none",
            "--boot",
            &boot,
            "--network",
            "network=default,model=virtio",
            "--graphics",
            "spice",
            "--noautoconsole",
        ],
    ));
}

fn rdp_answers(ip: &str) -> bool {
    let addr: SocketAddr = format!("{ip}:3389").parse().unwrap();
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

fn tiny_guests(env: &Env) {
    eprintln!("== the tiny guests");
    define_tiny(env, "e2e-tiny", "");
    define_tiny(env, "e2e-deaf", " bkt.acpi=off");

    // status finds the lease address of each, the same virsh domifaddr reports.
    for name in ["e2e-tiny", "e2e-deaf"] {
        let ip = wait_for(
            &format!("{name}'s address in bkt vm status"),
            Duration::from_secs(120),
            || {
                let out = env.bkt(&["vm", "status", "--json"]);
                let v: serde_json::Value = serde_json::from_str(&text(&out).0).ok()?;
                v["vms"].as_array()?.iter().find(|r| r["name"] == name)?["ip"]
                    .as_str()
                    .map(String::from)
            },
        );
        let domifaddr = ok(&virsh(&["domifaddr", name]));
        assert!(domifaddr.contains(&format!("{ip}/")), "{domifaddr}");
        let (table, _) = text(&env.bkt(&["vm", "status", name]));
        assert!(table.contains(&ip), "{table}");
        assert!(table.contains("(not in manifest)"), "{table}");
        // Booted far enough to have acpid running: port 3389 answers.
        wait_for(
            &format!("{name}'s port 3389"),
            Duration::from_secs(60),
            || rdp_answers(&ip).then_some(()),
        );
    }

    // doctor finds the tiny guest's address and its open port.
    let doc: serde_json::Value =
        serde_json::from_str(&text(&env.bkt(&["vm", "doctor", "e2e-tiny", "--json"])).0).unwrap();
    let checks = doc["vms"][0]["checks"].as_array().unwrap().clone();
    let find = |label: &str| {
        checks
            .iter()
            .find(|c| c["label"] == label)
            .cloned()
            .unwrap()
    };
    assert_eq!(find("IP")["level"], "pass", "{doc}");
    assert_eq!(find("RDP")["level"], "pass", "{doc}");
    assert_eq!(find("manifest")["level"], "warn", "{doc}");

    // Resource warnings count the running VMs against half the host.
    let st: serde_json::Value =
        serde_json::from_str(&ok(&env.bkt(&["vm", "status", "--json"]))).unwrap();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let warned = st["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w.as_str().unwrap().starts_with("2 running VMs use 2 vCPUs"));
    assert_eq!(warned, 2 > (cores / 2).max(1), "{st}");

    // A graceful stop ends in "shut off (shutdown)".
    let out = env.bkt(&["vm", "stop", "e2e-tiny", "--timeout", "60"]);
    let (stdout, _) = text(&out);
    ok(&out);
    assert!(
        stdout.starts_with("e2e-tiny is shut off (shutdown) after "),
        "{stdout}"
    );
    assert_eq!(domstate("e2e-tiny"), "shut off (shutdown)");

    // The ACPI-deaf guest: stop times out and leaves it running; --force works.
    let t = Instant::now();
    let out = env.bkt(&["vm", "stop", "e2e-deaf", "--timeout", "4"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(t.elapsed() < Duration::from_secs(15));
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains("error: e2e-deaf did not shut down within 4s; it is still running"),
        "{stderr}"
    );
    assert!(stderr.contains("bkt vm stop e2e-deaf --force"), "{stderr}");
    assert_eq!(domstate("e2e-deaf"), "running (booted)");
    ok(&env.bkt(&["vm", "stop", "e2e-deaf", "--force"]));
    assert_eq!(domstate("e2e-deaf"), "shut off (destroyed)");

    // start brings it back; start again is a no-op.
    let (o, _) = text(&env.bkt(&["vm", "start", "e2e-tiny"]));
    assert_eq!(o, "Started e2e-tiny\n");
    assert_eq!(domstate("e2e-tiny"), "running (booted)");
    let (o, _) = text(&env.bkt(&["vm", "start", "e2e-tiny"]));
    assert_eq!(o, "e2e-tiny is already running\n");

    connect_from_shut_off(env);

    // Unmanaged VMs are destroyed with what they own, too.
    ok(&env.bkt(&["vm", "destroy", "e2e-tiny", "--yes"]));
    ok(&env.bkt(&["vm", "destroy", "e2e-deaf", "--yes"]));
    assert!(!domains().iter().any(|d| d.starts_with("e2e-")));
    assert!(env.shared.path().join("vmlinuz").exists());
}

/// An X server of our own for the GUI clients; ended by PID on drop.
struct Xvfb {
    child: std::process::Child,
    display: String,
}

impl Xvfb {
    /// Xvfb picks a free display and writes its number on stdout
    /// (`-displayfd 1`) once it accepts connections: the real readiness
    /// signal, where a socket file may be a stale one.
    fn start() -> Xvfb {
        use std::io::BufRead;
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1280x800x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb (apt install xvfb)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let n: u32 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("Xvfb said {line:?}"));
        eprintln!("  Xvfb on :{n}");
        Xvfb {
            child,
            display: format!(":{n}"),
        }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        // SIGTERM lets Xvfb remove its lock and socket.
        // SAFETY: signalling our own child by its PID.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

/// The PIDs of a process's children.
fn children(pid: u32) -> Vec<u32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// From shut off, `connect` starts the guest, finds its lease, sees 3389
/// open, runs the real xfreerdp (which fails on the stand-in listener) and
/// falls back to the real virt-viewer, whose window shows on the display.
fn connect_from_shut_off(env: &Env) {
    eprintln!("== connect");
    let name = "e2e-tiny";
    ok(&env.bkt(&["vm", "stop", name, "--force"]));
    let x = Xvfb::start();
    let out_path = env.work.path().join("connect.out");
    let err_path = env.work.path().join("connect.err");
    let mut bkt = Command::new(env!("CARGO_BIN_EXE_bkt"))
        .args(["vm", "connect", name, "--user", "anna", "--timeout", "120"])
        .env("BKT_VM_MANIFEST", env.manifest())
        .env("NO_COLOR", "1")
        .env("DISPLAY", &x.display)
        .env("XDG_CACHE_HOME", env.work.path())
        .env("BKT_VM_RDP_PASSWORD", "not-a-real-password")
        .env("BKT_VM_RDP_CLIENT", "xfreerdp")
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let window = wait_for("the viewer's window", Duration::from_secs(180), || {
        if let Ok(Some(st)) = bkt.try_wait() {
            panic!(
                "bkt vm connect ended ({st}) before a viewer window showed\n{}{}",
                fs::read_to_string(&out_path).unwrap_or_default(),
                fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        let tree = ok(&run(
            "xwininfo",
            &["-display", &x.display, "-root", "-tree"],
        ));
        tree.lines()
            .find(|l| l.contains(name) && l.contains("virt-viewer"))
            .map(|l| l.trim().to_string())
    });
    eprintln!("  window: {window}");
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/e2e-artifacts");
    fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("connect-fallback-viewer.png");
    ok(&run(
        "import",
        &[
            "-display",
            &x.display,
            "-window",
            "root",
            shot.to_str().unwrap(),
        ],
    ));
    assert!(fs::metadata(&shot).unwrap().len() > 1000);
    eprintln!("  screenshot: {}", shot.display());

    // Close the viewer (our grandchild, by PID); connect then returns.
    for pid in children(bkt.id()) {
        ok(&run("kill", &[&pid.to_string()]));
    }
    bkt.wait().unwrap();
    let stdout = fs::read_to_string(&out_path).unwrap();
    let stderr = fs::read_to_string(&err_path).unwrap();
    eprintln!("$ bkt vm connect {name} --user anna\n{stdout}{stderr}");
    assert!(
        stdout.starts_with(&format!("{name} is shut off; starting it\n")),
        "{stdout}"
    );
    let ip = ok(&env.bkt(&["vm", "ip", name])).trim().to_string();
    let domifaddr = ok(&virsh(&["domifaddr", name]));
    assert!(
        domifaddr.contains(&format!(" {ip}/")),
        "bkt vm ip {ip} vs\n{domifaddr}"
    );
    assert!(stdout.contains(&format!(
        "→ FreeRDP 2.11.7: xfreerdp /v:{ip} /u:anna /from-stdin:force /cert:tofu /dynamic-resolution +clipboard /sound /t:{name}\n"
    )), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "→ falling back to SPICE: virt-viewer --connect qemu:///system --attach {name}\n"
        )),
        "{stdout}"
    );
    assert!(
        stderr.contains("✗ RDP: xfreerdp exited with code 147: connection failed (transport)"),
        "{stderr}"
    );
    assert!(!stdout.contains("not-a-real-password") && !stderr.contains("not-a-real-password"));
    let log = env.work.path().join(format!("bkt/vm/{name}-rdp.log"));
    let log_text = fs::read_to_string(&log).unwrap();
    assert!(
        log_text.contains("ERRCONNECT_CONNECT_TRANSPORT_FAILED"),
        "{log_text}"
    );
    assert!(!log_text.contains("not-a-real-password"));
}

fn libvirtd_stopped(env: &Env) {
    eprintln!("== libvirtd stopped");
    let pid: i32 = fs::read_to_string("/run/libvirtd.pid")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The daemon is this run's own (scripts/libvirt-netns.sh started it).
    ok(&run("kill", &[&pid.to_string()]));
    wait_for("libvirtd to exit", Duration::from_secs(30), || {
        (!Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    });

    let iso = env.media("win-standin.iso");
    let out = env.bkt(&small_create("e2e-nolibvirt", iso.to_str().unwrap()));
    assert_eq!(out.status.code(), Some(1));
    let (stdout, stderr) = text(&out);
    assert!(
        stdout.contains("  ✗ libvirt        cannot reach qemu:///system: "),
        "{stdout}"
    );
    assert!(
        stderr.starts_with("error: preflight failed (libvirt: cannot reach qemu:///system: "),
        "{stderr}"
    );
    assert!(!env.manifest_names().contains(&"e2e-nolibvirt".to_string()));
    assert!(!Path::new("/var/lib/libvirt/images/e2e-nolibvirt.qcow2").exists());
    let out = env.bkt(&["vm", "status"]);
    assert_eq!(out.status.code(), Some(1));
    let (_, stderr) = text(&out);
    assert!(
        stderr.starts_with(
            "error: cannot list the VMs\ncaused by: `virsh -c qemu:///system 'echo @@bkt leases; net-dhcp-leases default; echo @@bkt domstats; domstats"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: libvirt is not reachable"),
        "{stderr}"
    );

    // Bring it back for whatever runs next (and for the teardown).
    let status = Command::new("libvirtd")
        .arg("-d")
        .env(
            "PATH",
            format!(
                "{}:/usr/sbin:/sbin",
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .status()
        .or_else(|_| Command::new("/usr/sbin/libvirtd").arg("-d").status())
        .unwrap();
    assert!(status.success());
    wait_for("libvirtd to answer again", Duration::from_secs(30), || {
        virsh(&["version"]).status.success().then_some(())
    });
}
