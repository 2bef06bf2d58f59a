//! The manifest: `bkt`'s own notes about the VMs it made (why a VM exists,
//! what it was made from). Informational only; libvirt is the source of
//! truth for what exists.
//!
//! `$BKT_VM_MANIFEST`, else `$XDG_CONFIG_HOME/bootc/vms.json`, else
//! `~/.config/bootc/vms.json`. Every change is a locked read-modify-write
//! (`flock` on a lock file beside it) that ends in an atomic rename, so two
//! `bkt` processes never lose each other's entries and a crash never leaves
//! half a file. A manifest that cannot be read or parsed is an error and is
//! never overwritten.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// One VM as `bkt` recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmEntry {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub disk: String,
    pub created: String,
    #[serde(default)]
    pub rdp_enabled: bool,
    #[serde(default)]
    pub notes: String,
    /// The libvirt connection the VM lives on.
    #[serde(default)]
    pub uri: String,
    /// Install media attached at create (never deleted by `destroy`).
    #[serde(default)]
    pub isos: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The Windows account `connect` logs in as (never its password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdp_user: Option<String>,
    /// The answer ISO of an unattended install, until the install is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_iso: Option<String>,
    /// True while `create` is still making the VM: reserves the name.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub creating: bool,
    /// Fields written by other versions of `bkt`, kept as they were.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(default)]
    pub vms: Vec<VmEntry>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Manifest {
    pub fn get(&self, name: &str) -> Option<&VmEntry> {
        self.vms.iter().find(|v| v.name == name)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut VmEntry> {
        self.vms.iter_mut().find(|v| v.name == name)
    }

    pub fn remove(&mut self, name: &str) -> Option<VmEntry> {
        let i = self.vms.iter().position(|v| v.name == name)?;
        Some(self.vms.remove(i))
    }
}

/// Where the manifest lives.
pub fn path() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("BKT_VM_MANIFEST").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|p| !p.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => {
            let home = std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .context("cannot find the manifest: neither BKT_VM_MANIFEST, XDG_CONFIG_HOME nor HOME is set")?;
            PathBuf::from(home).join(".config")
        }
    };
    Ok(base.join("bootc").join("vms.json"))
}

/// Read the manifest; a missing file is an empty manifest.
pub fn load(path: &Path) -> Result<Manifest> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Manifest::default()),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read the manifest {}", path.display()));
        }
    };
    if text.trim().is_empty() {
        return Ok(Manifest::default());
    }
    serde_json::from_str(&text).with_context(|| {
        format!(
            "the manifest {} is not valid (fix or move it aside; bkt will not overwrite it)",
            path.display()
        )
    })
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
    // SAFETY: flock on a file descriptor we own; it blocks until granted.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    if rc != 0 {
        bail!(
            "cannot lock the manifest {}: {}",
            lock_path.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok(Lock { _file: file })
}

fn write_atomic(path: &Path, m: &Manifest) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let mut text = serde_json::to_string_pretty(m)?;
    text.push('\n');
    let res = (|| -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write the manifest {}", path.display()));
    }
    Ok(())
}

/// Change the manifest under its lock. `f` sees the current contents; when it
/// returns Ok the result is written back atomically, when it errs nothing is.
pub fn update<T>(path: &Path, f: impl FnOnce(&mut Manifest) -> Result<T>) -> Result<T> {
    let _lock = lock(path)?;
    let mut m = load(path)?;
    let out = f(&mut m)?;
    write_atomic(path, &m)?;
    Ok(out)
}

/// Today's date (UTC) as YYYY-MM-DD.
pub fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    civil_date(secs / 86_400)
}

/// Days since 1970-01-01 to a calendar date (Howard Hinnant's algorithm).
fn civil_date(days: u64) -> String {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str) -> VmEntry {
        VmEntry {
            name: name.into(),
            kind: "windows11".into(),
            disk: format!("/var/lib/libvirt/images/{name}.qcow2"),
            created: "2026-01-25".into(),
            rdp_enabled: false,
            notes: String::new(),
            uri: "qemu:///system".into(),
            isos: vec![],
            mac: None,
            rdp_user: None,
            answer_iso: None,
            creating: false,
            extra: Default::default(),
        }
    }

    #[test]
    fn reads_the_rfc_shape_and_keeps_unknown_fields() {
        let text = r#"{"vms":[{"name":"windows","type":"windows11",
            "disk":"/var/lib/libvirt/images/windows.qcow2","created":"2026-01-25",
            "rdp_enabled":true,"notes":"For Bambu Studio slicer","future":42}],"version":2}"#;
        let m: Manifest = serde_json::from_str(text).unwrap();
        assert_eq!(m.vms[0].notes, "For Bambu Studio slicer");
        assert!(m.vms[0].rdp_enabled);
        let back = serde_json::to_value(&m).unwrap();
        assert_eq!(back["vms"][0]["future"], 42);
        assert_eq!(back["version"], 2);
        assert_eq!(back["vms"][0]["type"], "windows11");
    }

    #[test]
    fn missing_is_empty_and_corrupt_is_an_error_that_keeps_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vms.json");
        assert_eq!(load(&p).unwrap(), Manifest::default());
        fs::write(&p, "{not json").unwrap();
        let err = update(&p, |m| {
            m.vms.push(entry("x"));
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
        update(&p, |m| {
            m.vms.push(entry("a"));
            Ok(())
        })
        .unwrap();
        let failed: Result<()> = update(&p, |m| {
            m.vms.clear();
            bail!("no")
        });
        assert!(failed.is_err());
        assert_eq!(load(&p).unwrap().vms.len(), 1);
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
                    update(&p, |m| {
                        m.vms.push(entry(&format!("vm{i}")));
                        Ok(())
                    })
                    .unwrap()
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(load(&p).unwrap().vms.len(), 8);
    }

    #[test]
    fn dates() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(20_478), "2026-01-25");
        assert_eq!(civil_date(19_782), "2024-02-29");
    }
}
