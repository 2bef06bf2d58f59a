//! The small ISOs bkt builds for Windows (the enable-rdp script, the
//! unattended answers): staged in a private directory, written with their
//! final mode from the first byte, never over an existing file; and taking
//! media out of a VM's drives when they are no longer wanted.

use std::fs;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result, anyhow};

use crate::tools::{virsh::DomainXml, xorriso};
use crate::vm::{Ctx, libvirt_error};

/// A fresh directory only we can enter (0700, an unpredictable name,
/// created exclusively), for files that go on an ISO: nobody can plant a
/// symlink in it or swap a script before it is burned. Removed on drop.
pub fn staging(prefix: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(prefix)
        .permissions(fs::Permissions::from_mode(0o700))
        .tempdir()
        .context("creating a private staging directory")
}

/// Give us write permission on a staged tree again (xorriso extracts files
/// and folders read-only), so that it can be removed.
pub fn make_writable(dir: &Path) {
    if let Ok(meta) = fs::symlink_metadata(dir)
        && meta.is_dir()
    {
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
        if let Ok(rd) = fs::read_dir(dir) {
            for e in rd.flatten() {
                make_writable(&e.path());
            }
        }
    }
}

/// Burn `dir` into a new ISO at `out`, created exclusively with `mode`
/// before xorriso writes a byte (it writes to our file through stdout). A
/// failure removes the file again; an existing file is an error and stays.
pub fn write_iso(volume: &str, dir: &Path, out: &Path, mode: u32) -> Result<()> {
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(out)
        .with_context(|| format!("creating {}", out.display()))?;
    let res = xorriso::mkisofs(volume, dir)
        .run_into(file)
        .map_err(crate::tools::program_error)
        .with_context(|| format!("building {}", out.display()));
    if res.is_err() {
        let _ = fs::remove_file(out);
    }
    res
}

/// Empty the drive that holds `medium` (in the definition, and in the
/// running VM), and say so. Nothing to do when no drive holds it.
pub fn eject(ctx: &Ctx, name: &str, dom: &DomainXml, medium: &Path) -> Result<bool> {
    let path = medium.display().to_string();
    let Some(d) = dom
        .disks
        .iter()
        .find(|d| d.path == path && d.device == "cdrom")
    else {
        return Ok(false);
    };
    let live = matches!(ctx.domstate(name), Ok(Some((s, _))) if s.is_active());
    ctx.virsh
        .change_media(name, &d.target, None, live)
        .run()
        .map_err(libvirt_error)
        .with_context(|| format!("ejecting {path} from {name}"))?;
    Ok(true)
}

/// The CD-ROM drive that holds `medium`, for messages.
pub fn drive_of(dom: &DomainXml, medium: &Path) -> Result<String> {
    let path = medium.display().to_string();
    dom.disks
        .iter()
        .find(|d| d.path == path)
        .map(|d| d.target.clone())
        .ok_or_else(|| anyhow!("no drive holds {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn staging_is_private_and_unpredictable() {
        let a = staging("bkt-test-").unwrap();
        let b = staging("bkt-test-").unwrap();
        assert_ne!(a.path(), b.path());
        assert_eq!(fs::metadata(a.path()).unwrap().mode() & 0o777, 0o700);
        let ro = a.path().join("d");
        fs::create_dir(&ro).unwrap();
        fs::write(ro.join("f"), "x").unwrap();
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o500)).unwrap();
        make_writable(a.path());
        let p = a.path().to_path_buf();
        drop(a);
        assert!(!p.exists());
    }

    #[test]
    fn an_existing_file_is_never_overwritten() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("x.iso");
        fs::write(&out, "the user's").unwrap();
        let err = write_iso("V", d.path(), &out, 0o600).unwrap_err();
        assert!(format!("{err:#}").starts_with(&format!("creating {}", out.display())));
        assert_eq!(fs::read_to_string(&out).unwrap(), "the user's");
    }
}
