//! `bkt vm snapshot create|list|revert|delete`: consistent "known good"
//! states of a Windows VM.
//!
//! A libvirt snapshot of a qcow2 disk leaves the UEFI variables (NVRAM) and
//! the TPM state behind, and a revert then meets a TPM that no longer
//! matches: BitLocker's recovery screen. So a snapshot here is three parts
//! taken together while the VM is shut off: libvirt's internal disk snapshot,
//! and copies of the NVRAM file and the swtpm state directory, kept in
//! `<images>/<vm>.snapshots/<snap>/`. Live snapshots are refused: with
//! pflash firmware libvirt needs qcow2 NVRAM for them (Debian's OVMF is
//! raw), and swtpm's state would not be part of them anyway.
//!
//! A revert is all or nothing as far as a filesystem allows: every saved
//! part is checked before anything changes, the NVRAM and TPM copies are
//! staged beside their live paths, the disk is reverted, and only then are
//! the staged copies renamed into place. Ctrl-C waits for that to finish;
//! a step that still fails is reported with what was reverted and what not.

mod create;
mod delete;
mod list;
mod revert;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use crate::tools::virsh::{self, DiskDevice, DomState};
use crate::ui::HintExt;
use crate::vm::ctx::Ctx;
use crate::vm::ctx::{Host, Kind};
use crate::vm::power::save;

pub use create::SnapshotCreateArgs;
pub use delete::SnapshotDeleteArgs;
pub use list::SnapshotListArgs;
pub use revert::SnapshotRevertArgs;

/// Consistent snapshots: the disk, the UEFI variables and the TPM together.
#[derive(Debug, Args)]
#[command(
    long_about = "Consistent \"known good\" snapshots of a VM: the disk, the UEFI variables \
    (NVRAM) and the TPM state, taken together while the VM is shut off.\n\n\
    A disk-only snapshot leaves the NVRAM and TPM behind, and reverting one can end at a \
    BitLocker recovery screen; these do not. The NVRAM and TPM copies are kept in \
    <images>/<vm>.snapshots/ (root only, like libvirt's own files), and `destroy` removes \
    them with the VM.",
    after_help = "Examples:\n  \
    bkt vm snapshot create windows before-update --description 'before the 24H2 update'\n  \
    bkt vm snapshot list windows\n  \
    bkt vm snapshot revert windows before-update\n  \
    bkt vm snapshot delete windows before-update"
)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    pub command: SnapshotCommand,
}

/// What `bkt vm snapshot` does.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    Create(SnapshotCreateArgs),
    List(SnapshotListArgs),
    Revert(SnapshotRevertArgs),
    Delete(SnapshotDeleteArgs),
}

pub fn run(ctx: &Ctx, args: SnapshotArgs) -> Result<()> {
    match args.command {
        SnapshotCommand::Create(args) => create::create(ctx, args),
        SnapshotCommand::List(args) => list::list(ctx, args),
        SnapshotCommand::Revert(args) => revert::revert(ctx, args),
        SnapshotCommand::Delete(args) => delete::delete(ctx, args),
    }
}

/// What one snapshot directory holds besides the copies.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Meta {
    name: String,
    created: String,
    description: String,
    nvram: bool,
    tpm: bool,
}

const META: &str = "snapshot.json";
const NVRAM_COPY: &str = "nvram.fd";
const TPM_COPY: &str = "tpm";

/// Where the parts of a VM live.
#[derive(Debug, Clone)]
pub struct Parts {
    pub nvram: Option<PathBuf>,
    pub tpm: Option<PathBuf>,
    /// `<images>/<vm>.snapshots`
    pub root: PathBuf,
}

/// The snapshot directory of a VM whose disk is `disk`.
pub fn snapshots_root(disk: &Path, name: &str) -> PathBuf {
    disk.parent()
        .unwrap_or(Path::new("/var/lib/libvirt/images"))
        .join(format!("{name}.snapshots"))
}

pub fn parts(ctx: &Ctx, name: &str) -> Result<Parts> {
    let dom = ctx.domain_xml(name)?;
    let disk = dom
        .disks
        .iter()
        .find(|d| d.device == DiskDevice::Disk && !d.path.is_empty())
        .ok_or_else(|| anyhow!("{name} has no disk to snapshot"))?;
    if !disk.path.ends_with(".qcow2") {
        bail!(
            "{name}'s disk {} is not qcow2; libvirt can only snapshot qcow2 disks internally",
            disk.path
        );
    }
    Ok(Parts {
        nvram: dom.nvram.map(PathBuf::from),
        tpm: (dom.tpm_emulator && !dom.uuid.is_empty()).then(|| ctx.swtpm_dir().join(&dom.uuid)),
        root: snapshots_root(Path::new(&disk.path), name),
    })
}

/// Whether an error comes from a permission the user lacks.
fn denied(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
    })
}

/// Where libvirt's files are, for the fix of a denied permission: this
/// machine, or a host reached over ssh (its name, and the URI as root
/// there).
#[derive(Debug, Clone, Default)]
struct Where {
    remote: Option<(String, String)>,
}

impl Where {
    fn of(ctx: &Ctx) -> Where {
        Where {
            remote: ctx.uri.ssh().map(|t| {
                let root = ctx
                    .uri
                    .with_ssh_user("root")
                    .unwrap_or_else(|| ctx.uri.to_string());
                (t.host.clone(), root)
            }),
        }
    }

    /// " on HOST", or nothing for this machine.
    fn on(&self) -> String {
        self.remote
            .as_ref()
            .map(|(h, _)| format!(" on {h}"))
            .unwrap_or_default()
    }

    /// The fix: root, here with sudo, there by connecting as root.
    fn owns(&self, what: &Path) -> String {
        match &self.remote {
            None => format!(
                "{} belongs to libvirt; snapshots of qemu:///system VMs need root: sudo bkt vm snapshot ...",
                what.display()
            ),
            Some((host, root)) => format!(
                "{} on {host} belongs to libvirt; snapshots there need root on {host}: \
                 bkt vm --connect '{root}' snapshot ... (with a key root accepts there)",
                what.display()
            ),
        }
    }
}

fn permission_hint<T>(res: Result<T>, w: &Where, what: &Path) -> Result<T> {
    match res {
        Err(e) if denied(&e) => Err(e).hint(w.owns(what)),
        res => res,
    }
}

/// Snapshots read libvirt's NVRAM and TPM state and write beside the
/// disk. As a user other than root (over ssh: one in the libvirt group
/// drives libvirt, but cannot read its files), make sure we may before
/// anything is made. Only a denied permission refuses here; a part that
/// is missing is the later steps' to judge. `parts`: the live NVRAM and
/// TPM state are read too (create and revert; delete only removes).
fn require_access(ctx: &Ctx, p: &Parts, w: &Where, doing: &str, parts: bool) -> Result<()> {
    let host = ctx.host.as_ref();
    if host.is_root() {
        return Ok(());
    }
    let mut checks: Vec<(PathBuf, Result<()>)> = Vec::new();
    if let (true, Some(nv)) = (parts, &p.nvram) {
        let r = check_readable(host, nv, false)
            .with_context(|| format!("cannot read the NVRAM {}", nv.display()));
        checks.push((nv.clone(), r));
    }
    if let (true, Some(tpm)) = (parts, &p.tpm) {
        let r = check_readable(host, tpm, true)
            .with_context(|| format!("cannot read the TPM state {}", tpm.display()));
        checks.push((tpm.clone(), r));
    }
    let dir = match host.lstat(&p.root) {
        Ok(_) => Some(p.root.clone()),
        Err(_) => p.root.parent().map(Path::to_path_buf),
    };
    if let Some(d) = dir
        && !host.writable(&d)
    {
        let r = Err(anyhow::Error::new(std::io::Error::from(
            std::io::ErrorKind::PermissionDenied,
        )))
        .with_context(|| format!("cannot write in {}", d.display()));
        checks.push((d, r));
    }
    for (path, r) in checks {
        if let Err(e) = r
            && denied(&e)
        {
            return Err(e.context(format!("{doing} needs root{}; nothing was changed", w.on())))
                .hint(w.owns(&path));
        }
    }
    Ok(())
}

/// Whether `path` is a file (or, with `want_dir`, a directory) whose every
/// file can be opened for reading.
fn check_readable(host: &dyn Host, path: &Path, want_dir: bool) -> Result<()> {
    let m = host.lstat(path)?;
    if (m.kind == Kind::Dir) != want_dir {
        bail!(
            "it is not a {}",
            if want_dir { "directory" } else { "file" }
        );
    }
    if !want_dir {
        host.open_read(path)?;
        return Ok(());
    }
    for e in host.list(path)? {
        let kind = host.lstat(&e)?.kind;
        if kind == Kind::Dir || kind == Kind::File {
            check_readable(host, &e, kind == Kind::Dir)
                .with_context(|| format!("cannot read {}", e.display()))?;
        }
    }
    Ok(())
}

/// Make sure the VM is off: stop it with consent, or refuse and say why.
/// A VM saved to disk has its memory in libvirt's saved image, which
/// expects the disk exactly as it was: a snapshot taken or reverted now
/// would not match it.
fn refuse_saved(ctx: &Ctx, name: &str, state: DomState, what: &str) -> Result<()> {
    if state.is_active() || !save::is_saved(ctx, name)? {
        return Ok(());
    }
    Err(anyhow!(
        "{name} is saved to disk (its memory waits in libvirt's saved image, which expects \
         the disk as it is); cannot {what} now"
    ))
    .hint(format!(
        "start it and shut Windows down, then try again: bkt vm start {name} && bkt vm stop {name}"
    ))
}

fn require_snapshot(ctx: &Ctx, name: &str, snap: &str) -> Result<()> {
    let names = virsh::parse_names(&ctx.libvirt_out(&ctx.virsh.snapshot_names(name))?);
    if names.iter().any(|s| s == snap) {
        return Ok(());
    }
    let known = if names.is_empty() {
        "it has none".to_string()
    } else {
        format!("it has: {}", names.join(", "))
    };
    bail!("{name} has no snapshot named {snap:?} ({known})")
}

#[cfg(test)]
mod tests {
    // why: tests read fixtures and set up the files and processes they look at.
    #![allow(clippy::disallowed_methods, clippy::disallowed_types)]

    use super::*;
    use crate::vm::ctx::LocalHost;
    use crate::vm::ctx::host::HostFiles;
    use std::fs;

    pub(super) fn host() -> LocalHost {
        LocalHost::new(&crate::settings::Settings::default())
    }

    #[test]
    fn a_sync_that_cannot_open_its_path_fails() {
        let h = host();
        let d = tempfile::tempdir().unwrap();
        h.sync(d.path()).unwrap();
        let gone = d.path().join("gone");
        assert_eq!(
            format!("{:#}", h.sync(&gone).unwrap_err()),
            format!(
                "syncing {}: No such file or directory (os error 2)",
                gone.display()
            )
        );
    }

    #[test]
    fn a_tree_is_checked_file_by_file() {
        let h = host();
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("tpm");
        fs::create_dir_all(t.join("tpm2")).unwrap();
        fs::write(t.join("tpm2/permall"), "x").unwrap();
        check_readable(&h, &t, true).unwrap();
        assert_eq!(
            format!("{:#}", check_readable(&h, &t, false).unwrap_err()),
            "it is not a file"
        );
        assert_eq!(
            format!(
                "{:#}",
                check_readable(&h, &t.join("tpm2/permall"), true).unwrap_err()
            ),
            "it is not a directory"
        );
        // Links are not state (copies leave them out), so not checked.
        fs::remove_file(t.join("tpm2/permall")).unwrap();
        std::os::unix::fs::symlink("gone", t.join("tpm2/permall")).unwrap();
        check_readable(&h, &t, true).unwrap();
    }
}
