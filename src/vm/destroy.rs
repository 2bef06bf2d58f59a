//! `bkt vm destroy NAME`: the domain, its NVRAM, TPM state and snapshot
//! metadata, the disks it owns, and its manifest entry. Never install media.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::manifest;
use crate::ui::{self, HintExt};
use crate::vm::{Ctx, libvirt_error, validate_name};

fn confirm(name: &str) -> Result<()> {
    if !ui::stdin_is_terminal() {
        let err: Result<()> = Err(anyhow::anyhow!(
            "refusing to destroy {name} without confirmation; nothing was deleted"
        ));
        return err.hint(format!(
            "run it on a terminal to type the name, or pass --yes: bkt vm destroy {name} --yes"
        ));
    }
    println!("This deletes {name} for good: its disk, UEFI variables and TPM state.");
    let typed: String = dialoguer::Input::new()
        .with_prompt(format!("Type {name} to confirm"))
        .allow_empty(true)
        .interact_text()?;
    if typed.trim() != name {
        bail!("confirmation did not match; nothing was deleted");
    }
    Ok(())
}

pub fn run(ctx: &Ctx, name: &str, yes: bool, keep_disk: bool) -> Result<()> {
    validate_name(name)?;
    let state = ctx.domstate(name)?;
    let entry = manifest::load(&ctx.manifest)?.get(name).cloned();
    if state.is_none() && entry.is_none() {
        return Err(ctx.unknown_vm(name));
    }
    if !yes {
        confirm(name)?;
    }
    let mut removed: Vec<String> = Vec::new();
    let mut kept: Vec<String> = Vec::new();

    // Install media never go, whatever the domain says about them.
    let mut media: BTreeSet<String> = entry.iter().flat_map(|e| e.isos.clone()).collect();
    let mut disks: Vec<String> = Vec::new();

    if let Some((st, _)) = state {
        let dom = ctx.domain_xml(name)?;
        for d in &dom.disks {
            if d.path.is_empty() {
                continue;
            }
            if d.device == "disk" && !d.path.to_ascii_lowercase().ends_with(".iso") {
                disks.push(d.path.clone());
            } else {
                media.insert(d.path.clone());
            }
        }
        if st.is_active() {
            ctx.virsh
                .destroy(name)
                .run()
                .map_err(libvirt_error)
                .with_context(|| format!("cannot power off {name}"))?;
            println!("{name} was running; powered it off");
        }
        ctx.virsh
            .undefine(name)
            .run()
            .map_err(libvirt_error)
            .with_context(|| format!("cannot undefine {name}"))?;
        removed.push(format!("domain {name}"));
        if let Some(nv) = &dom.nvram {
            removed.push(format!("NVRAM {nv}"));
        }
        if dom.tpm_emulator {
            removed.push("TPM state".into());
        }
        removed.push("snapshot metadata".into());
    }
    if let Some(e) = &entry
        && !e.disk.is_empty()
        && !disks.contains(&e.disk)
        && state.is_none()
    {
        disks.push(e.disk.clone());
    }
    disks.retain(|d| !media.contains(d));

    // bkt's snapshot copies (NVRAM, TPM) live beside the disk.
    let snap_roots: Vec<std::path::PathBuf> = disks
        .iter()
        .filter_map(|d| crate::vm::snapshot::root_for(d, name))
        .collect();
    let mut failed = Vec::new();
    for r in &snap_roots {
        match std::fs::remove_dir_all(r) {
            Ok(()) => removed.push(format!("snapshots {}", r.display())),
            Err(e) => failed.push(format!("{}: {e}", r.display())),
        }
    }
    for d in &disks {
        if keep_disk {
            kept.push(format!("disk {d}"));
            continue;
        }
        match std::fs::remove_file(Path::new(d)) {
            Ok(()) => removed.push(format!("disk {d}")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => failed.push(format!("{d}: {e}")),
        }
    }
    // An unattended install's answer ISO is the VM's own (it holds the
    // password): it goes with it.
    if let Some(a) = entry.as_ref().and_then(|e| e.answer_iso.clone()) {
        media.remove(&a);
        match std::fs::remove_file(&a) {
            Ok(()) => removed.push(format!("answer ISO {a}")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => failed.push(format!("{a}: {e}")),
        }
    }
    if entry.is_some() {
        manifest::update(&ctx.manifest, |m| Ok(m.remove(name)))?;
        removed.push("manifest entry".into());
    }
    for m in &media {
        kept.push(format!("install media {m}"));
    }

    println!("Destroyed {name}");
    for r in &removed {
        ui::step("removed", r);
    }
    for k in &kept {
        ui::step("kept", k);
    }
    if !failed.is_empty() {
        bail!("could not delete: {}", failed.join("; "));
    }
    Ok(())
}
