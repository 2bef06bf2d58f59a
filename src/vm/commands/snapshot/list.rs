//! `bkt vm snapshot list`: libvirt's snapshots of a VM, with what bkt kept
//! beside each (date, description, the size of the NVRAM and TPM copies).

use std::path::Path;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use super::{META, Meta, parts};
use crate::names::VmName;
use crate::tools::virsh;
use crate::units::human;
use crate::vm::ctx::{Ctx, Host};

/// List snapshots: name, date, description, size, and the current one.
#[derive(Debug, Args)]
pub struct SnapshotListArgs {
    /// The VM's name.
    pub name: VmName,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One row of `snapshot list`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SnapRow {
    pub name: String,
    pub created: Option<String>,
    pub description: String,
    /// Bytes of the NVRAM and TPM copies.
    pub size_bytes: u64,
    /// NVRAM and TPM were saved with the disk (taken by bkt).
    pub complete: bool,
    pub current: bool,
}

pub fn rows(ctx: &Ctx, name: &VmName) -> Result<Vec<SnapRow>> {
    ctx.require(name)?;
    let host = ctx.host.as_ref();
    let names = virsh::parse_names(&ctx.libvirt_out(&ctx.virsh.snapshot_names(name))?);
    let current = ctx
        .try_libvirt_out(&ctx.virsh.snapshot_current(name))
        .ok()
        .and_then(|o| virsh::parse_names(&o).into_iter().next());
    let p = parts(ctx, name)?;
    Ok(names
        .into_iter()
        .map(|s| {
            let dir = p.root.join(&s);
            let meta = read_meta(host, &dir);
            SnapRow {
                current: current.as_deref() == Some(s.as_str()),
                created: meta.as_ref().map(|m| m.created.clone()),
                description: meta
                    .as_ref()
                    .map(|m| m.description.clone())
                    .unwrap_or_default(),
                size_bytes: host.tree_size(&dir),
                complete: meta.is_some(),
                name: s,
            }
        })
        .collect())
}

pub(super) fn list(ctx: &Ctx, args: SnapshotListArgs) -> Result<()> {
    let (name, json) = (&args.name, args.json);
    let rows = rows(ctx, name)?;
    if json {
        ctx.ui.json(&rows)?;
        return Ok(());
    }
    if rows.is_empty() {
        ctx.ui.line(format_args!(
            "{name} has no snapshots. Take one with: bkt vm snapshot create {name} NAME"
        ));
        return Ok(());
    }
    let w = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    ctx.ui.line(format_args!(
        "  {:<w$}  {:<20}  {:<9}  DESCRIPTION",
        "NAME", "CREATED", "SIZE"
    ));
    for r in &rows {
        let desc = if r.complete {
            r.description.clone()
        } else {
            "(disk only: not taken by bkt, no NVRAM or TPM)".into()
        };
        ctx.ui.line(format_args!(
            "{} {:<w$}  {:<20}  {:<9}  {desc}",
            if r.current { "*" } else { " " },
            r.name,
            r.created.as_deref().unwrap_or("-"),
            human(r.size_bytes),
        ));
    }
    ctx.ui
        .line("(* = the snapshot the VM currently derives from)");
    Ok(())
}

fn read_meta(host: &dyn Host, dir: &Path) -> Option<Meta> {
    serde_json::from_str(&host.read_to_string(&dir.join(META)).ok()?).ok()
}
