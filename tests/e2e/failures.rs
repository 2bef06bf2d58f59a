//! What fails on the real stack: a create that another client races, a
//! domain QEMU cannot start, a libvirt that does not answer. Each leaves
//! nothing of its own behind and nothing of anyone else's changed.

use std::fs;
use std::path::Path;

use crate::harness::*;

/// A virt-install that, asked for the domain XML, defines a domain of the
/// same name (as another client would, while bkt ran) and then fails: that
/// domain is not bkt's, and stays. Any other call (the version the
/// preflight reads) goes to the real virt-install.
#[test]
#[ignore = "needs the real virt stack: run scripts/test-all.sh"]
fn failed_create_keeps_a_domain_another_client_defined() {
    let env = Env::new("failed_create_race", &["e2e-race"]);
    let iso = env.media("win-standin.iso");
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
}

/// QEMU cannot start (far more memory than it can map): the domain this
/// run defined goes with the NVRAM and TPM state libvirt made for it.
#[test]
#[ignore = "needs the real virt stack: run scripts/test-all.sh"]
fn failed_start_removes_the_domain_with_its_nvram_and_tpm_state() {
    let env = Env::new("failed_start", &["e2e-nomem"]);
    let iso = env.media("win-standin.iso");
    let nvram = Path::new("/var/lib/libvirt/qemu/nvram/e2e-nomem_VARS.fd");
    let mut args = small_create("e2e-nomem", iso.to_str().unwrap());
    let i = args.iter().position(|a| *a == "1G").unwrap();
    args[i] = "2000G";
    // -v: the UUID bkt gave the domain is on the virt-install line.
    args.insert(1, "-v");
    let out = env.bkt_env(&env.manifest(), &args, &[("BKT_VM_HOST_MEMORY", "8T")]);
    assert_eq!(out.status.code(), Some(1));
    let (stdout, stderr) = text(&out);
    let uuid = regex::Regex::new(r"virt-install .*--uuid ([0-9a-f-]{36}) ")
        .unwrap()
        .captures(&stderr)
        .unwrap_or_else(|| panic!("no virt-install --uuid in\n{stderr}"))[1]
        .to_string();
    assert!(
        stderr.contains("caused by: starting the domain"),
        "{stderr}"
    );
    assert!(stderr.contains("Cannot allocate memory"), "{stderr}");
    assert!(
        stdout.contains("  • removed        domain e2e-nomem with its NVRAM and TPM state\n"),
        "{stdout}"
    );
    assert!(!defined("e2e-nomem"));
    assert!(!defined(&uuid));
    assert!(!nvram.exists(), "{} is left", nvram.display());
    let tpm = Path::new("/var/lib/libvirt/swtpm").join(&uuid);
    assert!(!tpm.exists(), "TPM state {} is left", tpm.display());
    assert!(!Path::new("/var/lib/libvirt/images/e2e-nomem.qcow2").exists());
}

/// libvirtd not running, as bkt sees it: no socket under /run/libvirt.
/// The daemon is shared by every test, so it is hidden from this bkt
/// alone (a mount namespace of its own with an empty /run/libvirt), not
/// stopped.
#[test]
#[ignore = "needs the real virt stack: run scripts/test-all.sh"]
fn without_libvirt_create_and_status_say_so_and_make_nothing() {
    let env = Env::new("libvirt_unreachable", &["e2e-nolibvirt"]);
    let hidden = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        "mount -t tmpfs -o size=64k bkt-e2e-no-libvirt /run/libvirt && exec \"$@\"",
        "sh",
    ];
    let iso = env.media("win-standin.iso");
    let out = env.bkt_via(
        &hidden,
        &env.manifest(),
        &small_create("e2e-nolibvirt", iso.to_str().unwrap()),
        &[],
    );
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
    let out = env.bkt_via(&hidden, &env.manifest(), &["vm", "status"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let (_, stderr) = text(&out);
    assert!(
        stderr.starts_with(
            "error: cannot list the VMs\ncaused by: `virsh -c qemu:///system 'echo @@bkt leases; net-dhcp-leases default; echo @@bkt saved; list --all --name --with-managed-save; echo @@bkt domstats; domstats"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: libvirt is not reachable"),
        "{stderr}"
    );
    // Only this bkt was cut off.
    assert!(virsh(&["version"]).status.success());
    assert!(!defined("e2e-nolibvirt"));
}
