//! `create --unattended` on the real stack: the answer ISO is built by the
//! real xorriso from the stand-in virtio ISO's driver folders, attached as
//! a third CD-ROM, keys are sent for the "Press any key" prompt, and with
//! nothing installing (a stand-in) the watch reports the stall with a real
//! screenshot. destroy removes the answer ISO with the VM.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::harness::*;

#[test]
#[ignore = "needs the real virt stack: run scripts/test-all.sh"]
fn unattended_install_builds_the_answer_iso_and_reports_a_stall() {
    let name = "e2e-auto";
    let env = Env::new("unattended", &[name]);
    let iso = env.media("win-standin.iso");
    let virtio = env.media("virtio-standin.iso");
    let pw = env.work.path().join("pw");
    fs::write(&pw, "Not-a-real-pw1\n").unwrap();
    fs::set_permissions(&pw, fs::Permissions::from_mode(0o600)).unwrap();
    let mut args = small_create(name, iso.to_str().unwrap());
    args.extend([
        "--virtio-iso",
        virtio.to_str().unwrap(),
        "--disk-size",
        "8G",
        "--unattended",
        "--username",
        "anna",
        "--password-file",
        pw.to_str().unwrap(),
        "--install-timeout",
        "15",
    ]);
    let out = env.bkt(&args);
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
    let shot = env.cache().join("bkt/vm/e2e-auto-install-stalled.png");
    assert!(stderr.contains(&shot.display().to_string()), "{stderr}");
    // A real screenshot: an image of the guest's screen, named for the
    // format QEMU picked (PNG here). A blank screen compresses to a few
    // hundred bytes, so its size proves nothing.
    let bytes = fs::read(&shot).unwrap();
    let (format, width, height) = image_size(&bytes).unwrap_or_else(|| {
        panic!(
            "{} is neither PNG nor PPM: {} bytes, starting {:?}",
            shot.display(),
            bytes.len(),
            &bytes[..bytes.len().min(16)]
        )
    });
    env.log(&format!("screenshot: {format}, {width}x{height}"));
    assert_eq!(format, "PNG", "the name says what the file is");
    assert!(
        width >= 640 && height >= 400,
        "{width}x{height} ({} bytes)",
        bytes.len()
    );
    let _ = fs::remove_file(&shot);
    ok(&env.bkt(&["vm", "destroy", name, "--yes"]));
    assert!(
        !Path::new(answer).exists(),
        "destroy removes the answer ISO"
    );
}

/// The format and size of a PNG or binary PPM image, from its header.
fn image_size(bytes: &[u8]) -> Option<(&'static str, u32, u32)> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.get(12..16)? == b"IHDR" {
        let be = |i: usize| Some(u32::from_be_bytes(bytes.get(i..i + 4)?.try_into().ok()?));
        return Some(("PNG", be(16)?, be(20)?));
    }
    // "P6", then width, height and maxval, separated by white space.
    let head = String::from_utf8_lossy(bytes.get(..64.min(bytes.len()))?);
    let mut fields = head.strip_prefix("P6")?.split_ascii_whitespace();
    Some((
        "PPM",
        fields.next()?.parse().ok()?,
        fields.next()?.parse().ok()?,
    ))
}
