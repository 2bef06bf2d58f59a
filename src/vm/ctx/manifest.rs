//! The manifest's handle on [`super::Ctx`] (`ctx.manifest`): reading it,
//! and every change as a locked read-modify-write (`flock` on a lock file
//! beside it) ending in an atomic rename and an fsync of the directory. It
//! is bkt's own file on this machine, whichever host libvirt runs on. What
//! the manifest says is [`crate::manifest`] (pure).

// why: the door: the manifest file's lock, read and atomic write.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::manifest::{self, Manifest};

/// bkt's manifest at its path.
#[derive(Debug, Clone)]
pub struct ManifestFile {
    path: PathBuf,
}

impl ManifestFile {
    pub fn new(path: PathBuf) -> ManifestFile {
        ManifestFile { path }
    }

    /// [`ManifestFile::path`], for messages.
    pub fn display(&self) -> std::path::Display<'_> {
        self.path.display()
    }

    /// Read the manifest; a missing file is an empty manifest.
    pub fn load(&self) -> Result<Manifest> {
        load(&self.path)
    }

    /// Change the manifest under its lock. `f` sees the current contents;
    /// when it returns Ok the result is written back atomically, when it
    /// errs nothing is.
    pub fn update<T>(&self, f: impl FnOnce(&mut Manifest) -> Result<T>) -> Result<T> {
        update(&self.path, f)
    }
}

/// Read the manifest; a missing file is an empty manifest.
fn load(path: &Path) -> Result<Manifest> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Manifest::default()),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read the manifest {}", path.display()));
        }
    };
    manifest::parse(&text, path)
}

/// An exclusive lock on the manifest, released on drop.
struct Lock {
    _file: File,
}

fn lock(path: &Path) -> Result<Lock> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the manifest directory {}", dir.display()))?;
    let mut lock_name = path.file_name().unwrap_or_default().to_os_string();
    lock_name.push(".lock");
    let lock_path = dir.join(lock_name);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .with_context(|| format!("cannot open the manifest lock {}", lock_path.display()))?;
    // flock(2): blocks until granted, released when the file is closed.
    file.lock()
        .with_context(|| format!("cannot lock the manifest {}", lock_path.display()))?;
    Ok(Lock { _file: file })
}

/// The file a path finally names: a symlinked manifest (dotfiles managers
/// do that) is written through to its target, so the link survives.
fn resolve_links(path: &Path) -> Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match fs::read_link(&p) {
            Ok(target) => {
                p = match p.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(p),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read the link {}", p.display()));
            }
        }
    }
    bail!("{} is a loop of symbolic links", path.display())
}

fn write_atomic(path: &Path, m: &Manifest) -> Result<()> {
    let path = &resolve_links(path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let text = manifest::render(m)?;
    let res = (|| -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        // The rename is durable only once the directory is on disk too.
        File::open(dir)?.sync_all()
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write the manifest {}", path.display()));
    }
    Ok(())
}

/// Change the manifest under its lock. `f` sees the current contents; when it
/// returns Ok the result is written back atomically, when it errs nothing is.
fn update<T>(path: &Path, f: impl FnOnce(&mut Manifest) -> Result<T>) -> Result<T> {
    let _lock = lock(path)?;
    let mut m = load(path)?;
    let out = f(&mut m)?;
    write_atomic(path, &m)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::VmEntry;

    fn h(p: &Path) -> Result<Manifest> {
        ManifestFile::new(p.to_path_buf()).load()
    }

    fn hu<T>(p: &Path, f: impl FnOnce(&mut Manifest) -> Result<T>) -> Result<T> {
        ManifestFile::new(p.to_path_buf()).update(f)
    }

    #[test]
    fn missing_is_empty_and_corrupt_is_an_error_that_keeps_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vms.json");
        assert_eq!(h(&p).unwrap(), Manifest::default());
        fs::write(&p, "{not json").unwrap();
        let err = hu(&p, |m| {
            m.vms.push(VmEntry::for_tests("x"));
            Ok(())
        })
        .unwrap_err();
        assert!(
            format!("{err:#}").starts_with(&format!(
                "the manifest {} is not valid (fix or move it aside; bkt will not overwrite it): ",
                p.display()
            )),
            "{err:#}"
        );
        assert_eq!(fs::read_to_string(&p).unwrap(), "{not json");
    }

    #[test]
    fn update_is_atomic_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub").join("vms.json");
        hu(&p, |m| {
            m.vms.push(VmEntry::for_tests("a"));
            Ok(())
        })
        .unwrap();
        let failed: Result<()> = hu(&p, |m| {
            m.vms.clear();
            bail!("no")
        });
        assert!(failed.is_err());
        assert_eq!(h(&p).unwrap().vms.len(), 1);
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let leftovers: Vec<_> = fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains(".tmp."))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn concurrent_updates_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vms.json");
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let p = p.clone();
                std::thread::spawn(move || {
                    hu(&p, |m| {
                        m.vms.push(VmEntry::for_tests(&format!("vm{i}")));
                        Ok(())
                    })
                    .unwrap()
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(h(&p).unwrap().vms.len(), 8);
    }

    #[test]
    fn an_old_manifest_gets_the_files_its_bkt_made() {
        let text = r#"{"vms":[{"name":"w","type":"windows11","disk":"/img/w.qcow2",
            "created":"2026-01-25","uri":"qemu:///system","answer_iso":"/img/w-answer.iso"},
            {"name":"s","type":"windows11","disk":"/home/a/s.qcow2","created":"2026-01-25"}]}"#;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vms.json");
        fs::write(&p, text).unwrap();
        let m = h(&p).unwrap();
        assert_eq!(
            m.made_for("w", "qemu:///system"),
            ["/img/w.qcow2", "/img/w.snapshots", "/img/w-answer.iso"]
        );
        // No URI recorded means the default connection.
        assert_eq!(
            m.made_for("s", "qemu:///system/"),
            ["/home/a/s.qcow2", "/home/a/s.snapshots"]
        );
        assert!(m.made_for("w", "qemu:///session").is_empty());
        // Written back, the records are explicit and no longer derived.
        hu(&p, |m| {
            m.forget("w", "qemu:///system", "/img/w-answer.iso");
            Ok(())
        })
        .unwrap();
        let back: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(back["files"].as_array().unwrap().len(), 4);
        assert_eq!(h(&p).unwrap().made_for("w", "qemu:///system").len(), 2);
    }

    #[test]
    fn a_symlinked_manifest_stays_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let real_dir = dir.path().join("dotfiles");
        fs::create_dir_all(&real_dir).unwrap();
        fs::write(real_dir.join("vms.json"), r#"{"vms":[]}"#).unwrap();
        let conf = dir.path().join("config");
        fs::create_dir_all(&conf).unwrap();
        let link = conf.join("vms.json");
        std::os::unix::fs::symlink("../dotfiles/vms.json", &link).unwrap();
        hu(&link, |m| {
            m.vms.push(VmEntry::for_tests("a"));
            Ok(())
        })
        .unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(h(&real_dir.join("vms.json")).unwrap().vms.len(), 1);
        assert_eq!(h(&link).unwrap().vms[0].name, "a");
    }
}
