//! What Windows an install ISO holds: `create` refuses what is not Windows
//! 11 x64 (saying what it is) and makes nothing, an unattended install
//! takes the ISO's Pro image or `--edition`'s, and `bkt vm iso-info` shows
//! it all. The ISOs are made by xorriso from real WIM files (wimcapture,
//! fixtures/wim/).

use crate::create::refused;
use crate::harness::{World, fixture, rdp_listener};

/// A world where create gets as far as its preflight.
fn world() -> World {
    let w = World::new();
    w.libvirt_up().domains(&[]);
    w
}

/// Files of an ISO: (path inside, fixture).
type Files<'a> = &'a [(&'a str, &'a str)];

/// iso-info's list of wim/win11-24h2-x64.wim's editions.
const EDITIONS: &str = "   1  Windows 11 Home       Core
   2  Windows 11 Pro        Professional  (unattended default)
   3  Windows 11 Education  Education
";

const FIX: &str = "    fix: pass a Windows 11 x64 ISO with --iso, or download one: bkt vm download --windows (microsoft.com/software-download/windows11)\n";

#[test]
fn create_refuses_what_is_not_windows_11_x64_and_makes_nothing() {
    let cases: [(&str, Files, String, &str); 3] = [
        (
            "linux.iso",
            &[("boot/image.wim", "wim/win11-24h2-x64.wim")],
            "linux.iso is not a Windows installation ISO: no sources/install.wim or install.esd"
                .into(),
            FIX,
        ),
        (
            "Win10_22H2.iso",
            &[("sources/install.wim", "wim/win10-22h2-x64.wim")],
            "Win10_22H2.iso holds Windows 10 22H2 x64, build 19045.2965, not Windows 11 x64"
                .into(),
            FIX,
        ),
        (
            "Win11_24H2_Arm64.iso",
            &[("sources/install.wim", "wim/win11-24h2-arm64.wim")],
            "Win11_24H2_Arm64.iso holds Windows 11 24H2 ARM64, build 26100.1742, not Windows 11 x64"
                .into(),
            "    fix: bkt makes x64 VMs: pass the x64 ISO of Windows 11 with --iso \
             (microsoft.com/software-download/windows11)\n",
        ),
    ];
    for (name, files, what, fix) in cases {
        let w = world();
        let iso = w.iso_holding(name, files);
        let kib = std::fs::metadata(&iso).unwrap().len() / 1024;
        let (out, err) = refused(&w, &["vm", "create", "--iso", &iso, "--yes"]);
        assert!(
            out.contains(&format!(
                "  ✓ install ISO    {name} (ISO 9660, {kib} KiB)\n  ✗ Windows        {what}\n{fix}  ✓ virtio ISO "
            )),
            "{out}"
        );
        assert_eq!(
            err,
            format!("error: preflight failed (Windows: {what}); nothing was created\n")
        );
        assert!(!w.path("images/windows.qcow2").exists());
        assert!(!w.manifest_path().exists());
    }
}

#[test]
fn an_install_esd_is_read_as_an_install_wim() {
    let w = world();
    w.rule("virt-install", "* --print-xml --dry-run")
        .out(&fixture("virt-install/print-xml-windows-qemu.xml"));
    let iso = w.iso_holding(
        "Win11_esd.iso",
        &[("sources/install.esd", "wim/win11-24h2-x64.esd")],
    );
    let r = w.bkt(&["vm", "create", "--iso", &iso, "--yes", "--dry-run"]);
    r.success();
    assert!(r.stdout().contains(
        "  ✓ Windows        Windows 11 24H2 x64, build 26100.1742: Windows 11 Home, Windows 11 \
         Pro, Windows 11 Education\n"
    ));
}

/// `create --unattended` of `iso` asking for `edition`, up to its answers.
fn unattended(w: &World, iso: &str, edition: &str) -> Vec<String> {
    [
        "vm",
        "create",
        "--iso",
        iso,
        "--yes",
        "--unattended",
        "--username",
        "anna",
        "--password-file",
        &w.p("pw"),
        "--edition",
        edition,
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn an_edition_the_iso_lacks_is_refused_with_the_ones_it_has() {
    let w = crate::unattended::world("127.0.0.82", 9);
    let iso = w.iso("Win11.iso");
    let args = unattended(&w, &iso, "Windows 11 Ultimate");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (out, err) = refused(&w, &args);
    assert!(
        out.contains(
            "  ✗ Windows        --edition \"Windows 11 Ultimate\" is not on Win11.iso; it has: \
             Windows 11 Home, Windows 11 Pro, Windows 11 Education\n    fix: pass one of them \
             with --edition, or leave it out (Pro, else the first)\n"
        ),
        "{out}"
    );
    assert_eq!(
        err,
        "error: preflight failed (Windows: --edition \"Windows 11 Ultimate\" is not on Win11.iso; \
         it has: Windows 11 Home, Windows 11 Pro, Windows 11 Education); nothing was created\n"
    );
    assert!(!w.path("images/windows-answer.iso").exists());
}

#[test]
fn the_answer_file_installs_the_edition_asked_for_by_its_index() {
    let (_rdp, port) = rdp_listener("127.0.0.81");
    let w = crate::unattended::world("127.0.0.81", port);
    // A 23H2 ISO without Pro would install its first (Home); Education is
    // asked for here, by its edition id, in any case.
    let iso = w.iso("Win11.iso");
    let args = unattended(&w, &iso, "education");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = w.bkt(&args);
    r.success();
    assert!(
        r.stdout()
            .contains("; installing Windows 11 Education (image 3)\n"),
        "{}",
        r.stdout()
    );
    let answer = std::fs::read_to_string(w.path("answer-copy.xml")).unwrap();
    assert!(
        answer.contains(
            "<MetaData wcm:action=\"add\"><Key>/IMAGE/INDEX</Key><Value>3</Value></MetaData>"
        ),
        "{answer}"
    );
    assert!(!answer.contains("/IMAGE/NAME"));
}

#[test]
fn iso_info_shows_release_build_and_editions() {
    let w = World::new();
    let iso = w.iso("Win11.iso");
    let r = w.bkt(&["vm", "iso-info", &iso]);
    r.success();
    assert_eq!(
        crate::normalize(&w, &r.stdout()),
        format!(
            "$TMP/isos/Win11.iso: Windows 11 24H2 x64, build 26100.1742 (sources/install.wim, 3 editions)\n{EDITIONS}"
        )
    );
    // Nothing of libvirt is asked.
    assert!(w.calls().is_empty(), "{:?}", w.calls());
    let r = w.bkt(&["vm", "iso-info", &iso, "--json"]);
    r.success();
    let j: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(j["windows"], "Windows 11 24H2 x64");
    assert_eq!(j["windows11_x64"], true);
    assert_eq!(j["release"], "24H2");
    assert_eq!(j["build"], "26100.1742");
    assert_eq!(j["arch"], "x64");
    assert_eq!(j["default_edition"], 2);
    assert_eq!(j["editions"][2]["name"], "Windows 11 Education");
    assert_eq!(j["editions"][2]["edition_id"], "Education");
    assert_eq!(j["editions"][2]["index"], 3);
}

#[test]
fn iso_info_says_what_create_would_refuse() {
    let w = World::new();
    let iso = w.iso_holding(
        "Win10.iso",
        &[("sources/install.wim", "wim/win10-22h2-x64.wim")],
    );
    let r = w.bkt(&["vm", "iso-info", &iso]);
    r.success();
    assert_eq!(
        crate::normalize(&w, &r.stdout()),
        "$TMP/isos/Win10.iso: Windows 10 22H2 x64, build 19045.2965 (sources/install.wim, 1 edition)
   1  Windows 10 Pro  Professional  (unattended default)
bkt vm create refuses it: it makes Windows 11 x64 VMs
"
    );
    let other = w.iso_holding("other.iso", &[("a/b.wim", "wim/win10-22h2-x64.wim")]);
    let r = w.bkt(&["vm", "iso-info", &other]);
    r.failure();
    assert_eq!(
        crate::normalize(&w, &r.stderr()),
        "error: $TMP/isos/other.iso is not a Windows installation ISO: no sources/install.wim or \
         install.esd\n"
    );
    let r = w.bkt(&["vm", "iso-info", &w.p("isos/none.iso")]);
    r.failure();
    assert_eq!(
        crate::normalize(&w, &r.stderr()),
        "error: cannot tell what $TMP/isos/none.iso holds\ncaused by: No such file or directory \
         (os error 2)\n"
    );
}

#[test]
fn iso_info_remote_needs_a_remote_host() {
    let w = World::new();
    let r = w.bkt(&["vm", "iso-info", "--remote", "/srv/isos/w.iso"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: --remote reads an ISO on a libvirt host reached over ssh, and qemu:///system is \
         this machine\nhint: pass the path of an ISO of this machine, without --remote\n"
    );
}

/// An ISO shaped like Microsoft's: sources/install.wim only in its UDF
/// tree. genisoimage -udf writes it in both trees, so its ISO 9660 record
/// (`INSTALL.WIM;1`; UDF keeps `install.wim` in lower case) is renamed in
/// the bytes; a plain ISO 9660 reader finds nothing then.
#[test]
fn iso_info_reads_the_editions_from_a_udf_only_iso() {
    let w = World::new();
    let tree = w.path("tree-udf");
    std::fs::create_dir_all(tree.join("sources")).unwrap();
    std::fs::copy(
        crate::harness::fixture_path("wim/win11-24h2-x64.wim"),
        tree.join("sources/install.wim"),
    )
    .unwrap();
    std::fs::create_dir_all(w.path("isos")).unwrap();
    let iso = w.path("isos").join("Win11_UDF.iso");
    let out = std::process::Command::new("genisoimage")
        .args(["-quiet", "-no-pad", "-udf", "-input-charset", "utf-8", "-o"])
        .arg(&iso)
        .arg(&tree)
        .output()
        .expect("genisoimage (scripts/packages.txt)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut bytes = std::fs::read(&iso).unwrap();
    let at = bytes
        .windows(13)
        .position(|b| b == b"INSTALL.WIM;1")
        .expect("the ISO 9660 record");
    bytes[at..at + 13].copy_from_slice(b"INSTALL.XXX;1");
    assert!(!bytes.windows(11).any(|b| b == b"INSTALL.WIM"));
    std::fs::write(&iso, bytes).unwrap();
    let r = w.bkt(&["vm", "iso-info", iso.to_str().unwrap()]);
    r.success();
    assert_eq!(
        crate::normalize(&w, &r.stdout()),
        format!(
            "$TMP/isos/Win11_UDF.iso: Windows 11 24H2 x64, build 26100.1742 (sources/install.wim, 3 editions)\n{EDITIONS}"
        )
    );
}
