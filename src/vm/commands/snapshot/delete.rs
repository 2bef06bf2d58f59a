//! `bkt vm snapshot delete`: libvirt's disk snapshot, then the NVRAM and
//! TPM copies; the last one takes the snapshots' directory with it.

use anyhow::{Context, Result};
use clap::Args;

use super::{Where, parts, require_access, require_snapshot};
use crate::names::{SnapName, VmName};
use crate::units::human;
use crate::vm::ctx::Ctx;

/// Delete a snapshot and free its space.
#[derive(Debug, Args)]
pub struct SnapshotDeleteArgs {
    /// The VM's name.
    pub name: VmName,
    /// The snapshot's name.
    pub snap: SnapName,
}

pub(super) fn delete(ctx: &Ctx, args: SnapshotDeleteArgs) -> Result<()> {
    let (name, snap) = (&args.name, &args.snap);
    ctx.require(name)?;
    let (host, name, snap) = (ctx.host.as_ref(), name.as_str(), snap.as_str());
    require_snapshot(ctx, name, snap)?;
    let p = parts(ctx, name)?;
    require_access(
        ctx,
        &p,
        &Where::of(ctx),
        &format!("deleting snapshot {snap} of {name}"),
        false,
    )?;
    let dir = p.root.join(snap);
    let freed = host.tree_size(&dir);
    ctx.libvirt(&ctx.virsh.snapshot_delete(name, snap))
        .context("deleting the disk snapshot")?;
    if host.lstat(&dir).is_ok() {
        host.remove_tree(&dir)
            .with_context(|| format!("removing {}", dir.display()))?;
    }
    // The last one takes the directory, and its record, with it.
    if host.remove_dir(&p.root).is_ok() {
        let root = p.root.display().to_string();
        ctx.manifest.update(|m| {
            m.forget(name, &ctx.uri, &root);
            Ok(())
        })?;
    }
    ctx.ui.line(format_args!(
        "Deleted snapshot {snap} of {name} ({} of NVRAM and TPM copies freed; the disk's \
         snapshot clusters are freed inside the qcow2)",
        human(freed)
    ));
    Ok(())
}
