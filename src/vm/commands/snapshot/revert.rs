//! `bkt vm snapshot revert`: every saved part checked, the NVRAM and TPM
//! copies staged beside their live paths, the disk reverted, then the
//! staged copies renamed into place.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;

use super::{
    META, Meta, NVRAM_COPY, Parts, TPM_COPY, Where, check_readable, denied, parts, permission_hint,
    refuse_saved, require_access, require_snapshot,
};
use crate::interrupt::{self, Interrupted};
use crate::names::{SnapName, VmName};
use crate::tools::virsh::DomState;
use crate::ui::{self, HintExt};
use crate::vm::ctx::{Ctx, Host, Kind};

/// Go back to a snapshot: disk, NVRAM and TPM (everything since is lost).
#[derive(Debug, Args)]
pub struct SnapshotRevertArgs {
    /// The VM's name.
    pub name: VmName,
    /// The snapshot's name.
    pub snap: SnapName,
    /// Do not ask for confirmation.
    #[arg(long, short)]
    pub yes: bool,
}

pub(super) fn revert(ctx: &Ctx, args: SnapshotRevertArgs) -> Result<()> {
    let (name, snap, yes) = (&args.name, &args.snap, args.yes);
    let (state, _) = ctx.require(name)?;
    let (host, name, snap) = (ctx.host.as_ref(), name.as_str(), snap.as_str());
    let _busy = crate::vm::power::idle::busy(ctx, name);
    refuse_saved(ctx, name, state, "revert it to a snapshot")?;
    require_snapshot(ctx, name, snap)?;
    let p = parts(ctx, name)?;
    let w = Where::of(ctx);
    require_access(ctx, &p, &w, &format!("reverting {name} to {snap}"), true)?;
    let saved = check_saved(host, &p, &w, name, snap)?;
    confirm_revert(name, snap, &saved.meta, yes)?;

    // From here on Ctrl-C only sets a flag: the revert stops where the VM
    // is whole (before the disk revert, or after the last rename).
    interrupt::catch();
    let staged: Vec<Staged> = saved
        .copies
        .iter()
        .map(|(part, copy, live)| Staged::new(part, copy, live))
        .collect();
    let res = revert_parts(ctx, &w, name, snap, state, &staged);
    // A copy that was put in place is gone from here; one that was not is
    // of no use to anyone.
    for s in &staged {
        remove_any(host, &s.copy);
    }
    let reverted = res?;
    ctx.ui.line(format_args!(
        "Reverted {name} to {snap} ({}); it is shut off",
        and_list(&reverted)
    ));
    Ok(())
}

/// Stage, power off, revert the disk, rename the staged copies into place.
/// Returns the parts reverted.
fn revert_parts(
    ctx: &Ctx,
    w: &Where,
    name: &str,
    snap: &str,
    state: DomState,
    staged: &[Staged],
) -> Result<Vec<&'static str>> {
    let nothing = || format!("reverting {name} to {snap} failed; nothing was reverted");
    let host = ctx.host.as_ref();
    for s in staged {
        s.stage(host, w).with_context(nothing)?;
    }
    if state.is_active() {
        // Everything since the snapshot is being discarded anyway.
        ctx.libvirt(&ctx.virsh.destroy(name).shielded())
            .with_context(|| format!("cannot power off {name}"))
            .with_context(nothing)?;
        ctx.ui
            .line(format_args!("{name} was {}; powered it off", state.label()));
    }
    if interrupt::happened() {
        return Err(Interrupted).with_context(|| {
            format!("stopped before reverting {name} to {snap}: nothing was reverted; {name} is shut off")
        });
    }
    ctx.libvirt(&ctx.virsh.snapshot_revert(name, snap).shielded())
        .context("reverting the disk")
        .with_context(nothing)?;
    let mut done = vec!["disk"];
    for (i, s) in staged.iter().enumerate() {
        if let Err(e) = s.put_in_place(host) {
            let left: Vec<&str> = staged[i..].iter().map(|s| s.part).collect();
            return Err(e
                .context(format!("putting the {} in place", s.part))
                .context(format!(
                    "{name} is only partly reverted to {snap}: {} reverted, {} not; do not start \
                     {name} before the revert is finished",
                    the_parts_are(&done),
                    the_parts_are(&left)
                )))
            .hint(format!(
                "fix the cause, then run the revert again (it reverts every part again): \
                 bkt vm snapshot revert {name} {snap} --yes --connect {}",
                ctx.uri
            ));
        }
        done.push(s.part);
    }
    // The renames on disk too.
    for s in staged {
        let dir = s.live.parent().unwrap_or(Path::new("/"));
        host.sync(dir).with_context(|| {
            format!("{name} is reverted to {snap} but it may not be on disk yet; run `sync`")
        })?;
    }
    if interrupt::happened() {
        return Err(Interrupted).with_context(|| {
            format!(
                "{name} was reverted to {snap} ({}) before stopping; it is shut off",
                and_list(&done)
            )
        });
    }
    Ok(done)
}

fn confirm_revert(name: &str, snap: &str, meta: &Meta, yes: bool) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !ui::stdin_is_terminal() {
        return Err(anyhow!(
            "refusing to revert {name} without confirmation; nothing was changed"
        ))
        .hint(format!(
            "run it on a terminal, or pass --yes: bkt vm snapshot revert {name} {snap} --yes"
        ));
    }
    let ok = dialoguer::Confirm::new()
        .with_prompt(format!(
            "Revert {name} to {snap} ({})? Everything since is lost",
            meta.created
        ))
        .default(false)
        .interact()?;
    if !ok {
        bail!("not reverted; nothing was changed");
    }
    Ok(())
}

/// The parts of a snapshot that a revert puts back, each checked readable.
struct Saved {
    meta: Meta,
    /// (part, saved copy, live path) of the NVRAM and the TPM state.
    copies: Vec<(&'static str, PathBuf, PathBuf)>,
}

/// Every part the snapshot was taken with, or an error naming the one that
/// is missing or unreadable.
fn check_saved(host: &dyn Host, p: &Parts, w: &Where, name: &str, snap: &str) -> Result<Saved> {
    let dir = p.root.join(snap);
    if let Err(e) = host.lstat(&dir)
        && e.kind() == std::io::ErrorKind::NotFound
    {
        bail!(
            "snapshot {snap} of {name} has no saved NVRAM and TPM state (it was not taken by bkt); \
             reverting only its disk could leave Windows at a BitLocker recovery screen"
        );
    }
    let checked = (|| -> Result<Saved> {
        let meta_path = dir.join(META);
        let text = host
            .read_to_string(&meta_path)
            .with_context(|| format!("cannot read its metadata {}", meta_path.display()))?;
        let meta: Meta = serde_json::from_str(&text)
            .with_context(|| format!("its metadata {} is not valid", meta_path.display()))?;
        let mut copies = Vec::new();
        let wanted = [
            ("NVRAM", meta.nvram, &p.nvram, NVRAM_COPY, false),
            ("TPM state", meta.tpm, &p.tpm, TPM_COPY, true),
        ];
        for (part, taken, live, file, want_dir) in wanted {
            if let (true, Some(live)) = (taken, live) {
                let copy = dir.join(file);
                check_readable(host, &copy, want_dir)
                    .with_context(|| format!("cannot read its {part} copy {}", copy.display()))?;
                copies.push((part, copy, live.clone()));
            }
        }
        Ok(Saved { meta, copies })
    })();
    checked.map_err(|e| refusal(e, w, &p.root, name, snap))
}

/// A snapshot that cannot be reverted: why, and what to do.
fn refusal(e: anyhow::Error, w: &Where, root: &Path, name: &str, snap: &str) -> anyhow::Error {
    let hint = if denied(&e) {
        w.owns(root)
    } else {
        format!(
            "a revert needs every part the snapshot was taken with: put the missing one back, \
             or delete the snapshot (bkt vm snapshot delete {name} {snap})"
        )
    };
    Err::<(), _>(e.context(format!(
        "snapshot {snap} of {name} cannot be reverted; nothing was changed"
    )))
    .hint(hint)
    .unwrap_err()
}

/// A saved part of a snapshot, copied beside its live path and waiting for
/// the rename that puts it in place.
#[derive(Debug)]
struct Staged {
    /// "NVRAM" or "TPM state", as the user reads it.
    part: &'static str,
    saved: PathBuf,
    copy: PathBuf,
    live: PathBuf,
}

impl Staged {
    fn new(part: &'static str, saved: &Path, live: &Path) -> Staged {
        Staged {
            part,
            saved: saved.to_path_buf(),
            copy: beside(live, "new"),
            live: live.to_path_buf(),
        }
    }

    /// Copy the saved part beside the live one. A copy of ours left under
    /// this name (our PID) by a killed run is garbage by definition.
    fn stage(&self, host: &dyn Host, w: &Where) -> Result<()> {
        remove_any(host, &self.copy);
        permission_hint(host.copy_tree(&self.saved, &self.copy), w, &self.live)
            .with_context(|| format!("staging the {} at {}", self.part, self.copy.display()))
    }

    /// Rename the staged copy into place. A file replaces the live one in
    /// one rename; a directory cannot be renamed over a non-empty one, so
    /// the live tree first moves aside (and back, if the second rename
    /// fails) and is deleted once the copy is in place.
    fn put_in_place(&self, host: &dyn Host) -> Result<()> {
        let is_tree = host.lstat(&self.copy).is_ok_and(|m| m.kind == Kind::Dir);
        let aside = beside(&self.live, "old");
        let moved_aside = is_tree && host.lstat(&self.live).is_ok();
        if moved_aside {
            // An existing aside is never replaced: it may be the live state
            // of an earlier, failed revert.
            host.rename(&self.live, &aside).with_context(|| {
                format!(
                    "moving {} aside to {}",
                    self.live.display(),
                    aside.display()
                )
            })?;
        }
        if let Err(e) = host.rename(&self.copy, &self.live) {
            let mut err = anyhow::Error::new(e).context(format!(
                "renaming {} to {}",
                self.copy.display(),
                self.live.display()
            ));
            if moved_aside && let Err(back) = host.rename(&aside, &self.live) {
                err = err.context(format!(
                    "the {} that was live is at {} (moving it back failed: {back})",
                    self.part,
                    aside.display()
                ));
            }
            return Err(err);
        }
        if moved_aside {
            let _ = host.remove_tree(&aside);
        }
        Ok(())
    }
}

/// Remove a file or a tree if it is there.
fn remove_any(host: &dyn Host, path: &Path) {
    match host.lstat(path) {
        Ok(m) if m.kind == Kind::Dir => {
            let _ = host.remove_tree(path);
        }
        Ok(_) => {
            let _ = host.remove_file(path);
        }
        Err(_) => {}
    }
}

/// `.<name>.bkt-<tag>-<pid>` beside `live`: a name in the same directory,
/// so that putting it in place is a rename.
fn beside(live: &Path, tag: &str) -> PathBuf {
    let base = live.file_name().unwrap_or_default().to_string_lossy();
    live.with_file_name(format!(".{base}.bkt-{tag}-{}", std::process::id()))
}

/// "disk", "disk and NVRAM", "disk, NVRAM and TPM state".
fn and_list(parts: &[&str]) -> String {
    match parts {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// "the disk is" / "the disk and NVRAM are".
fn the_parts_are(parts: &[&str]) -> String {
    let verb = if parts.len() == 1 { "is" } else { "are" };
    format!("the {} {verb}", and_list(parts))
}

#[cfg(test)]
mod tests {
    // why: tests read fixtures and set up the files and processes they look at.
    #![allow(clippy::disallowed_methods, clippy::disallowed_types)]

    use super::*;
    use crate::vm::commands::snapshot::tests::host;
    use crate::vm::ctx::host::{HostFiles, HostMachine};
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn copies_keep_modes_and_staged_copies_replace_whole_trees() {
        let h = host();
        let d = tempfile::tempdir().unwrap();
        let live = d.path().join("uuid");
        fs::create_dir_all(live.join("tpm2")).unwrap();
        fs::write(live.join("tpm2/tpm2-00.permall"), "state-1").unwrap();
        fs::set_permissions(
            live.join("tpm2/tpm2-00.permall"),
            fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        // As root the copy keeps the owner too.
        let root = h.is_root();
        if root {
            std::os::unix::fs::chown(live.join("tpm2/tpm2-00.permall"), Some(4321), Some(4322))
                .unwrap();
        }
        let saved = d.path().join("saved");
        h.copy_tree(&live, &saved).unwrap();
        let m = fs::metadata(saved.join("tpm2/tpm2-00.permall")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o640);
        if root {
            assert_eq!((m.uid(), m.gid()), (4321, 4322));
        }
        // Never over an existing copy.
        assert!(h.copy_tree(&live, &saved).is_err());
        fs::write(live.join("tpm2/tpm2-00.permall"), "state-2").unwrap();
        fs::write(live.join("tpm2/extra"), "new").unwrap();
        let tpm = Staged::new("TPM state", &saved, &live);
        tpm.stage(&h, &Where::default()).unwrap();
        assert_eq!(
            tpm.copy,
            d.path()
                .join(format!(".uuid.bkt-new-{}", std::process::id()))
        );
        tpm.put_in_place(&h).unwrap();
        assert_eq!(
            fs::read_to_string(live.join("tpm2/tpm2-00.permall")).unwrap(),
            "state-1"
        );
        assert!(!live.join("tpm2/extra").exists());
        let mode = fs::metadata(live.join("tpm2/tpm2-00.permall"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
        // Nothing but the live tree and the saved one is left.
        let mut left: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["saved", "uuid"]);

        let nv = d.path().join("VARS.fd");
        fs::write(&nv, "vars-1").unwrap();
        let nv_saved = d.path().join("nv");
        h.copy_tree(&nv, &nv_saved).unwrap();
        fs::write(&nv, "vars-2").unwrap();
        let s = Staged::new("NVRAM", &nv_saved, &nv);
        s.stage(&h, &Where::default()).unwrap();
        s.put_in_place(&h).unwrap();
        assert_eq!(fs::read_to_string(&nv).unwrap(), "vars-1");
        assert!(!s.copy.exists());
        assert_eq!(h.tree_size(d.path().join("saved").as_path()), 7);
    }

    fn hint_of(e: &anyhow::Error) -> Option<String> {
        e.chain()
            .find_map(|c| c.downcast_ref::<ui::Hinted>())
            .map(|h| h.hints.join("; "))
    }

    #[test]
    fn a_denied_permission_says_the_files_are_libvirts() {
        let io = |kind: std::io::ErrorKind| {
            anyhow::Error::new(std::io::Error::from(kind)).context("reading /s/clean/tpm")
        };
        let root = Path::new("/s");
        let libvirts = "/s belongs to libvirt; snapshots of qemu:///system VMs need root: sudo bkt vm snapshot ...";
        let here = Where::default();
        let e = permission_hint::<()>(Err(io(std::io::ErrorKind::PermissionDenied)), &here, root)
            .unwrap_err();
        assert_eq!(hint_of(&e).as_deref(), Some(libvirts));
        assert_eq!(format!("{e:#}"), "reading /s/clean/tpm: permission denied");
        let e =
            permission_hint::<()>(Err(io(std::io::ErrorKind::NotFound)), &here, root).unwrap_err();
        assert_eq!(hint_of(&e), None);

        let e = refusal(
            io(std::io::ErrorKind::PermissionDenied),
            &here,
            root,
            "w",
            "clean",
        );
        assert_eq!(hint_of(&e).as_deref(), Some(libvirts));
        assert_eq!(
            format!("{e:#}"),
            "snapshot clean of w cannot be reverted; nothing was changed: reading /s/clean/tpm: permission denied"
        );
        let e = refusal(io(std::io::ErrorKind::NotFound), &here, root, "w", "clean");
        assert_eq!(
            hint_of(&e).as_deref(),
            Some(
                "a revert needs every part the snapshot was taken with: put the missing one back, or delete the snapshot (bkt vm snapshot delete w clean)"
            )
        );
    }

    #[test]
    fn part_lists_read_as_english() {
        assert_eq!(and_list(&[]), "");
        assert_eq!(and_list(&["disk"]), "disk");
        assert_eq!(and_list(&["disk", "NVRAM"]), "disk and NVRAM");
        assert_eq!(
            and_list(&["disk", "NVRAM", "TPM state"]),
            "disk, NVRAM and TPM state"
        );
        assert_eq!(the_parts_are(&["disk"]), "the disk is");
        assert_eq!(
            the_parts_are(&["NVRAM", "TPM state"]),
            "the NVRAM and TPM state are"
        );
    }
}
