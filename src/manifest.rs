//! The manifest: `bkt`'s own notes about the VMs it made (why a VM exists,
//! what it was made from). Informational only; libvirt is the source of
//! truth for what exists.
//!
//! `$BKT_VM_MANIFEST`, else `$XDG_CONFIG_HOME/bootc/vms.json`, else
//! `~/.config/bootc/vms.json`. Every change is a locked read-modify-write
//! (`flock` on a lock file beside it) that ends in an atomic rename and an
//! fsync of the directory, so two `bkt` processes never lose each other's
//! entries and a crash never leaves half a file. A symlinked manifest stays
//! a symlink: the new contents replace its target. A manifest that cannot be
//! read or parsed is an error and is never overwritten.
//!
//! It also records every file `bkt` makes for a VM (its disk, an answer
//! ISO, snapshot copies), with the VM's connection: `destroy` deletes those
//! and only those.

use std::path::Path;

use anyhow::{Context, Result};
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
    /// The MAC of the VM's NIC on libvirt's `default` network: `status`
    /// finds the guest's DHCP lease by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The Windows account `connect` logs in as (never its password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdp_user: Option<String>,
    /// The answer ISO of an unattended install, until the install is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_iso: Option<String>,
    /// Seconds unused before the idle watcher saves the VM to disk; 0 or
    /// none (VMs made before bkt could save them) is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_save: Option<u64>,
    /// What `run` shares with Windows unless told (`files`, `home`,
    /// `none`); none (a VM made before bkt asked) is `files`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<String>,
    /// Whether the RDP clients share the clipboard; none is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clipboard: Option<bool>,
    /// True while `create` is still making the VM: reserves the name.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub creating: bool,
    /// Fields written by other versions of `bkt`, kept as they were.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A file or directory `bkt` made for a VM on a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MadeFile {
    pub vm: String,
    pub uri: String,
    pub path: String,
}

/// The connection a URI means: an empty one (entries of early versions) is
/// libvirt's default, and a trailing slash changes nothing.
pub fn uri_key(uri: &str) -> &str {
    match uri.trim_end_matches('/') {
        "" => "qemu:///system",
        u => u,
    }
}

/// Whether two URIs name the same libvirt connection.
pub fn same_uri(a: &str, b: &str) -> bool {
    uri_key(a) == uri_key(b)
}

impl VmEntry {
    /// Whether this VM lives on the connection `uri`.
    pub fn is_on(&self, uri: &str) -> bool {
        same_uri(&self.uri, uri)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(default)]
    pub vms: Vec<VmEntry>,
    /// What bkt made, for `destroy`. `None` only in a manifest written before
    /// bkt recorded its files; [`parse`] fills it in then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    files: Option<Vec<MadeFile>>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Default for Manifest {
    /// A new manifest: nothing made yet (as opposed to an old one that
    /// never recorded what it made).
    fn default() -> Self {
        Manifest {
            vms: Vec::new(),
            files: Some(Vec::new()),
            extra: Default::default(),
        }
    }
}

impl Manifest {
    /// Before bkt recorded its files, `create` always made the disk (and an
    /// answer ISO when unattended) and `snapshot` the `<vm>.snapshots`
    /// directory beside the disk: those are the records such a VM gets.
    fn fill_in_files(&mut self) {
        if self.files.is_some() {
            return;
        }
        let mut files = Vec::new();
        for e in &self.vms {
            let mut paths = Vec::new();
            if !e.disk.is_empty() {
                paths.push(e.disk.clone());
                if let Some(dir) = Path::new(&e.disk).parent() {
                    paths.push(
                        dir.join(format!("{}.snapshots", e.name))
                            .display()
                            .to_string(),
                    );
                }
            }
            paths.extend(e.answer_iso.clone());
            for path in paths {
                files.push(MadeFile {
                    vm: e.name.clone(),
                    uri: uri_key(&e.uri).to_string(),
                    path,
                });
            }
        }
        self.files = Some(files);
    }

    /// Note that bkt made `path` for `vm` on `uri` (once).
    pub fn record(&mut self, vm: &str, uri: &str, path: &str) {
        let files = self.files.get_or_insert_with(Vec::new);
        let made = MadeFile {
            vm: vm.to_string(),
            uri: uri_key(uri).to_string(),
            path: path.to_string(),
        };
        if !files.contains(&made) {
            files.push(made);
        }
    }

    /// The paths bkt made for `vm` on `uri`, in the order it made them.
    pub fn made_for(&self, vm: &str, uri: &str) -> Vec<String> {
        self.files
            .iter()
            .flatten()
            .filter(|f| f.vm == vm && same_uri(&f.uri, uri))
            .map(|f| f.path.clone())
            .collect()
    }

    /// Drop one record (the file is gone, or no longer bkt's to delete).
    pub fn forget(&mut self, vm: &str, uri: &str, path: &str) {
        if let Some(files) = &mut self.files {
            files.retain(|f| !(f.vm == vm && same_uri(&f.uri, uri) && f.path == path));
        }
    }

    /// The VM `name` on the connection `uri`. A VM of the same name on
    /// another connection is another VM: its settings are never read or
    /// written for this one.
    pub fn get(&self, name: &str, uri: &str) -> Option<&VmEntry> {
        self.vms.iter().find(|v| v.name == name && v.is_on(uri))
    }

    pub fn get_mut(&mut self, name: &str, uri: &str) -> Option<&mut VmEntry> {
        self.vms.iter_mut().find(|v| v.name == name && v.is_on(uri))
    }

    pub fn remove(&mut self, name: &str, uri: &str) -> Option<VmEntry> {
        let i = self
            .vms
            .iter()
            .position(|v| v.name == name && v.is_on(uri))?;
        Some(self.vms.remove(i))
    }

    /// A VM named `name` on any connection: `create` keeps names unique
    /// across connections (bkt's files on this machine, its menu entries
    /// and logs, are named after the VM), and `destroy` says where a VM of
    /// that name lives.
    pub fn named(&self, name: &str) -> Option<&VmEntry> {
        self.vms.iter().find(|v| v.name == name)
    }
}

/// The manifest `path` holds, from its text (empty: an empty manifest).
/// The file itself is read and written by its handle on `Ctx`
/// (`ctx.manifest`).
pub fn parse(text: &str, path: &Path) -> Result<Manifest> {
    if text.trim().is_empty() {
        return Ok(Manifest::default());
    }
    let mut m: Manifest = serde_json::from_str(text).with_context(|| {
        format!(
            "the manifest {} is not valid (fix or move it aside; bkt will not overwrite it)",
            path.display()
        )
    })?;
    m.fill_in_files();
    Ok(m)
}

/// The manifest's text as it is written.
pub fn render(m: &Manifest) -> Result<String> {
    let mut text = serde_json::to_string_pretty(m)?;
    text.push('\n');
    Ok(text)
}

/// The date (UTC) of a moment in seconds since 1970, as YYYY-MM-DD
/// (`ctx.local.today()`).
pub fn date_of(secs: u64) -> String {
    jiff::Timestamp::from_second(secs as i64)
        .map(civil_date)
        .unwrap_or_default()
}

/// A moment's calendar date in UTC.
fn civil_date(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%d").to_string()
}

#[cfg(test)]
impl VmEntry {
    /// An entry of a VM made on the system connection.
    pub fn for_tests(name: &str) -> VmEntry {
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
            auto_save: None,
            share: None,
            clipboard: None,
            creating: false,
            extra: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // An entry from before `config --share/--clipboard`: neither, and
        // none written back (absent means files and on).
        assert_eq!((&m.vms[0].share, m.vms[0].clipboard), (&None, None));
        assert!(back["vms"][0].get("share").is_none());
        assert!(back["vms"][0].get("clipboard").is_none());
        let mut e = m.vms[0].clone();
        e.share = Some("none".into());
        e.clipboard = Some(false);
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            (&v["share"], &v["clipboard"]),
            (&"none".into(), &false.into())
        );
        assert_eq!(serde_json::from_value::<VmEntry>(v).unwrap(), e);
    }

    #[test]
    fn records_are_per_vm_and_connection_and_unique() {
        let mut m = Manifest::default();
        m.record("w", "qemu:///system", "/img/w.qcow2");
        m.record("w", "qemu:///system", "/img/w.qcow2");
        m.record("w", "qemu:///session", "/home/a/w.qcow2");
        m.record("x", "qemu:///system", "/img/x.qcow2");
        assert_eq!(m.made_for("w", "qemu:///system"), ["/img/w.qcow2"]);
        assert_eq!(m.made_for("w", "qemu:///session"), ["/home/a/w.qcow2"]);
        m.forget("w", "qemu:///system", "/img/w.qcow2");
        assert!(m.made_for("w", "qemu:///system").is_empty());
        assert_eq!(m.made_for("x", "qemu:///system"), ["/img/x.qcow2"]);
        assert!(same_uri("", "qemu:///system"));
        assert!(!same_uri("qemu:///session", "qemu:///system"));
    }

    #[test]
    fn dates() {
        let day = |d: i64| civil_date(jiff::Timestamp::from_second(d * 86_400 + 3600).unwrap());
        assert_eq!(day(0), "1970-01-01");
        assert_eq!(day(20_478), "2026-01-25");
        assert_eq!(day(19_782), "2024-02-29");
        assert_eq!(date_of(20_478 * 86_400 + 3600), "2026-01-25");
    }
}
