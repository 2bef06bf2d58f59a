//! The Windows 11 ISO from (a stand-in of) Microsoft to a running VM:
//! `scripts/ms-standin.py` serves the e2e stand-in ISO (which holds a real
//! install.wim) on 127.0.0.1 inside the namespace, `download --windows`
//! fetches it into bkt's cache through Microsoft's five steps, and
//! `create` boots a VM from that file as the Windows create test does.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::*;

#[test]
#[ignore = "needs the real virt stack: run scripts/test-all.sh"]
fn a_downloaded_windows_iso_passes_create_and_boots() {
    let name = "e2e-dlwin";
    let env = Env::new("download_windows", &[name]);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let d = env.work.path().join("ms");
    std::fs::create_dir_all(&d).unwrap();
    let served = env.guest_dir.join("win-standin.iso");
    let _standin = Stopped(
        Command::new("python3")
            .arg(root.join("scripts/ms-standin.py"))
            .arg("--fixtures")
            .arg(root.join("fixtures/microsoft"))
            .arg("--iso")
            .arg(&served)
            .arg("--tls-dir")
            .arg(&d)
            .arg("--port-file")
            .arg(d.join("port"))
            .arg("--log")
            .arg(d.join("log"))
            .stdin(Stdio::null())
            .spawn()
            .expect("python3 (scripts/packages.txt)"),
    );
    let port: u16 = wait_for("the stand-in's port", Duration::from_secs(30), || {
        std::fs::read_to_string(d.join("port")).ok()?.parse().ok()
    });
    let ms = format!("https://127.0.0.1:{port}");
    let ca = d.join("ca.pem").display().to_string();
    let (www, vlscppe, ovdf) = (
        format!("{ms}/www"),
        format!("{ms}/vlscppe"),
        format!("{ms}/ovdf"),
    );
    let out = env.bkt_env(
        &env.manifest(),
        &["vm", "download", "--windows"],
        &[
            ("BKT_VM_CA_FILE", &ca),
            ("BKT_VM_MS_WWW_URL", &www),
            ("BKT_VM_MS_VLSCPPE_URL", &vlscppe),
            ("BKT_VM_MS_OVDF_URL", &ovdf),
        ],
    );
    let shown = ok(&out);
    // "Next: bkt vm create windows --iso PATH": the file in bkt's cache.
    let iso = PathBuf::from(
        shown
            .lines()
            .find_map(|l| l.strip_prefix("Next: bkt vm create windows --iso "))
            .unwrap_or_else(|| panic!("no Next line in {shown}")),
    );
    assert!(iso.starts_with(env.cache()), "{}", iso.display());
    assert_eq!(sha256(&iso), sha256(&served));

    let virtio = env.media("virtio-standin.iso");
    let mut args = vec!["vm"];
    args.extend(windows_create(name, &iso, &virtio, "2G", "20G"));
    let out = env.bkt(&args);
    let (stdout, stderr) = text(&out);
    let stdout = stdout + &stderr;
    ok(&out);
    // create's edition check read the downloaded file's install.wim.
    assert!(
        stdout.contains("Windows 11 24H2 x64") && stdout.contains("Windows 11 Pro"),
        "{stdout}"
    );
    assert_eq!(domstate(name), "running (booted)");
    let xml = ok(&virsh(&["dumpxml", name]));
    // libvirt quotes attribute values with ' (source file='PATH').
    assert!(
        xml.contains(&format!("<source file='{}'", iso.display())),
        "{xml}"
    );
    // The VM goes with what bkt made; the downloaded ISO stays in the cache.
    ok(&env.bkt(&["vm", "destroy", name, "--yes"]));
    assert!(iso.exists(), "destroy took the downloaded ISO");
}
