//! `bkt vm destroy NAME`: the domain (with libvirt's own NVRAM, TPM state
//! and snapshot metadata for it), the files bkt made for it and recorded in
//! the manifest, and its manifest entry. Nothing else: a file bkt did not
//! make, install media, a block device, a `<shareable/>` disk and a disk
//! that another domain still uses are kept, each listed with the reason
//! and, where it makes sense, the command that would delete it. An entry
//! made on another connection is never touched through this one.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};

use crate::manifest::VmEntry;
use crate::names::VmName;
use crate::tools::virsh::{self, DiskDevice, DiskKind, DomState, DomainXml};
use crate::ui::{self, HintExt, Ui};
use crate::vm::catalog;
use crate::vm::ctx::Ctx;
use crate::vm::ctx::{Host, Kind};
use crate::vm::launchers;
use crate::vm::save;

/// How a file bkt made is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    /// Through libvirt when a pool lists it (so the pool forgets it too),
    /// else unlinked.
    File,
    /// A directory of bkt's own (snapshot copies).
    Tree,
}

#[derive(Debug, Clone)]
struct Delete {
    what: &'static str,
    path: String,
    how: How,
}

#[derive(Debug, Clone)]
struct Keep {
    what: &'static str,
    path: String,
    why: String,
    /// The command that would delete it, for the user to run if they mean it.
    cmd: Option<String>,
}

/// Everything destroy will do, decided before anything is done.
#[derive(Debug, Default)]
struct Plan {
    /// The domain, when libvirt has it: its state and definition.
    domain: Option<(DomState, DomainXml)>,
    delete: Vec<Delete>,
    keep: Vec<Keep>,
    /// Records of files that are gone already, or kept for another owner.
    forget: Vec<String>,
    /// The manifest entry goes too.
    entry: bool,
    /// libvirt's saved image of the VM's memory (it goes with the domain).
    saved: Option<String>,
}

fn is_block_device(host: &dyn Host, path: &str) -> bool {
    host.stat(Path::new(path))
        .is_ok_and(|st| st.kind == Kind::Block)
}

/// Which other domains use which paths, from their live and persistent
/// definitions (one virsh process for all of them).
fn used_elsewhere(ctx: &Ctx, own_uuid: &str) -> Result<BTreeMap<String, Vec<String>>> {
    let uuids: Vec<String> = virsh::parse_names(
        &ctx.libvirt_out(&ctx.virsh.list_uuids())
            .context("listing the other VMs, to see which disks they use")?,
    )
    .into_iter()
    .filter(|u| u != own_uuid)
    .collect();
    let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if uuids.is_empty() {
        return Ok(users);
    }
    // A domain that vanishes meanwhile only fails its own part.
    let out = ctx
        .libvirt_unchecked(&ctx.virsh.batch_dumpxml(&uuids))
        .context("reading the other VMs' definitions")?;
    for dom in virsh::parse_batch_dumpxml(&out.stdout)? {
        for d in dom.disks.iter().filter(|d| !d.path.is_empty()) {
            let names = users.entry(d.path.clone()).or_default();
            if !names.contains(&dom.name) {
                names.push(dom.name.clone());
            }
        }
    }
    Ok(users)
}

/// What a file bkt made is, for the user: `create` makes the disk and
/// `NAME-answer.iso`, `snapshot` the `NAME.snapshots` directory.
fn what_of(path: &str) -> &'static str {
    if path.ends_with(".snapshots") {
        "snapshots"
    } else if path.ends_with("-answer.iso") {
        "answer ISO"
    } else {
        "disk"
    }
}

fn plan(
    ctx: &Ctx,
    domain: Option<(DomState, DomainXml)>,
    entry: Option<&VmEntry>,
    made: &[String],
    keep_disk: bool,
) -> Result<Plan> {
    let own_uuid = domain
        .as_ref()
        .map(|(_, d)| d.uuid.clone())
        .unwrap_or_default();
    let others = used_elsewhere(ctx, &own_uuid)?;
    let mut p = Plan {
        entry: entry.is_some(),
        ..Plan::default()
    };
    let media: Vec<&String> = entry.iter().flat_map(|e| e.isos.iter()).collect();
    let rm = |path: &str| format!("rm -- {}", crate::exec::shell_quote(path));
    let mut seen: Vec<String> = Vec::new();
    if let Some((_, dom)) = &domain {
        for d in &dom.disks {
            if let DiskKind::Volume { pool, volume } = &d.kind {
                // Named by pool: never one of the paths bkt records.
                p.keep.push(Keep {
                    what: "disk",
                    path: format!("{volume} (pool {pool})"),
                    why: "a pool volume bkt did not make".into(),
                    cmd: Some(ctx.virsh.vol_delete_in_pool(pool, volume).display()),
                });
                continue;
            }
            if d.path.is_empty() || seen.contains(&d.path) {
                continue;
            }
            seen.push(d.path.clone());
            let ours = made.contains(&d.path);
            let (what, why, cmd) = if d.kind == DiskKind::Block
                || is_block_device(ctx.host.as_ref(), &d.path)
            {
                (
                    "disk",
                    "a block device; bkt never deletes those".to_string(),
                    None,
                )
            } else if d.shareable {
                (
                    "disk",
                    "shareable: meant to be used by several VMs".to_string(),
                    Some(rm(&d.path)),
                )
            } else if let Some(users) = others.get(&d.path) {
                (
                    if d.device == DiskDevice::Cdrom {
                        "medium"
                    } else {
                        "disk"
                    },
                    format!("also used by {}", users.join(", ")),
                    None,
                )
            } else if d.device == DiskDevice::Cdrom || d.path.to_ascii_lowercase().ends_with(".iso")
            {
                if ours {
                    p.delete.push(Delete {
                        what: what_of(&d.path),
                        path: d.path.clone(),
                        how: How::File,
                    });
                    continue;
                }
                ("install media", "never deleted".to_string(), None)
            } else if !ours {
                ("disk", "not made by bkt".to_string(), Some(rm(&d.path)))
            } else if keep_disk {
                ("disk", "--keep-disk".to_string(), Some(rm(&d.path)))
            } else {
                p.delete.push(Delete {
                    what: what_of(&d.path),
                    path: d.path.clone(),
                    how: How::File,
                });
                continue;
            };
            if ours {
                p.forget.push(d.path.clone());
            }
            p.keep.push(Keep {
                what,
                path: d.path.clone(),
                why,
                cmd,
            });
        }
    }
    // What bkt made that the definition does not name (an answer ISO
    // already detached, snapshot copies, the disk of a domain libvirt lost).
    for path in made.iter().filter(|p| !seen.contains(p)) {
        let meta = ctx.host.lstat(Path::new(path));
        let what = what_of(path);
        if meta.is_err() {
            p.forget.push(path.clone());
        } else if let Some(users) = others.get(path) {
            p.forget.push(path.clone());
            p.keep.push(Keep {
                what,
                path: path.clone(),
                why: format!("also used by {}", users.join(", ")),
                cmd: None,
            });
        } else if is_block_device(ctx.host.as_ref(), path) {
            p.forget.push(path.clone());
            p.keep.push(Keep {
                what,
                path: path.clone(),
                why: "a block device; bkt never deletes those".into(),
                cmd: None,
            });
        } else if keep_disk && what == "disk" {
            p.forget.push(path.clone());
            p.keep.push(Keep {
                what,
                path: path.clone(),
                why: "--keep-disk".into(),
                cmd: Some(rm(path)),
            });
        } else {
            let dir = meta.is_ok_and(|m| m.kind == Kind::Dir);
            p.delete.push(Delete {
                what: if dir { "snapshots" } else { what },
                path: path.clone(),
                how: if dir { How::Tree } else { How::File },
            });
        }
    }
    // Install media no drive holds any more (ejected after the install).
    for m in media {
        if !p.keep.iter().any(|k| &k.path == m) {
            p.keep.push(Keep {
                what: "install media",
                path: m.clone(),
                why: "never deleted".into(),
                cmd: None,
            });
        }
    }
    p.domain = domain;
    Ok(p)
}

fn kept_line(k: &Keep) -> String {
    match &k.cmd {
        Some(c) => format!("{} ({}; delete it with: {c})", k.path, k.why),
        None => format!("{} ({})", k.path, k.why),
    }
}

/// What will go, as (label, detail) lines: the prompt and the report say
/// the same.
fn going(name: &str, p: &Plan) -> Vec<(String, String)> {
    let mut lines = Vec::new();
    if let Some((st, dom)) = &p.domain {
        let how = if st.is_active() {
            format!(" ({}: powered off first)", st.label())
        } else {
            String::new()
        };
        lines.push(("domain".to_string(), format!("{name}{how}")));
        if let Some(nv) = &dom.nvram {
            lines.push(("NVRAM".into(), nv.clone()));
        }
        if dom.tpm_emulator {
            lines.push((
                "TPM state".into(),
                format!("of {name} (libvirt's, by UUID {})", dom.uuid),
            ));
        }
        if let Some(image) = &p.saved {
            lines.push(("saved memory".into(), image.clone()));
        }
    }
    for d in &p.delete {
        lines.push((d.what.to_string(), d.path.clone()));
    }
    if p.entry {
        lines.push(("manifest entry".into(), name.to_string()));
    }
    lines
}

fn confirm(ui: &Ui, name: &str, p: &Plan) -> Result<()> {
    if !ui::stdin_is_terminal() {
        let err: Result<()> = Err(anyhow!(
            "refusing to destroy {name} without confirmation; nothing was deleted"
        ));
        return err.hint(format!(
            "run it on a terminal to see what goes and type the name, or pass --yes: bkt vm destroy {name} --yes"
        ));
    }
    ui.line(format_args!("This deletes {name} for good:"));
    for (label, detail) in going(name, p) {
        ui.line(format_args!("  {label:<14} {detail}"));
    }
    if !p.keep.is_empty() {
        ui.line("and keeps:");
        for k in &p.keep {
            ui.line(format_args!("  {:<14} {}", k.what, kept_line(k)));
        }
    }
    let typed: String = dialoguer::Input::new()
        .with_prompt(format!("Type {name} to confirm"))
        .allow_empty(true)
        .interact_text()?;
    if typed.trim() != name {
        bail!("confirmation did not match; nothing was deleted");
    }
    Ok(())
}

/// Delete one file bkt made: through libvirt when a pool lists it.
fn delete_file(ctx: &Ctx, path: &str) -> Result<()> {
    match ctx.try_libvirt(&ctx.virsh.vol_delete(path)) {
        Ok(_) => Ok(()),
        Err(e) if virsh::is_no_volume(e.stderr()) => match ctx.host.remove_file(Path::new(path)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        },
        Err(e) => Err(ctx.libvirt_error(e)),
    }
}

pub fn run(ctx: &Ctx, name: &VmName, yes: bool, keep_disk: bool) -> Result<()> {
    let state = ctx.domstate(name)?;
    let m = ctx.manifest.load()?;
    let entry = m.get(name, &ctx.uri).cloned();
    if let Some(e) = m.named(name).filter(|_| entry.is_none()) {
        if state.is_none() {
            return Err(anyhow!(
                "{name} was made on {}, not on {}; nothing was deleted",
                e.uri,
                ctx.uri
            ))
            .hint(format!(
                "destroy it on its own connection: bkt vm -c {} destroy {name}",
                e.uri
            ));
        }
        ctx.ui.line(format_args!(
            "note: bkt's {name} lives on {}; the {name} on {} is another VM, which bkt did not make",
            e.uri, ctx.uri
        ));
    }
    let made = m.made_for(name, &ctx.uri);
    if state.is_none() && entry.is_none() && made.is_empty() {
        return Err(ctx.unknown_vm(name));
    }
    let domain = match state {
        Some((st, _)) => Some((st, ctx.domain_xml(name)?)),
        None => None,
    };
    let mut p = plan(ctx, domain, entry.as_ref(), &made, keep_disk)?;
    if matches!(&p.domain, Some((st, _)) if !st.is_active()) && save::is_saved(ctx, name)? {
        let (image, size) = save::image(ctx, name);
        p.saved = Some(format!("{}{}", image.display(), save::size_note(size)));
    }
    if !yes {
        confirm(&ctx.ui, name, &p)?;
    }
    let lines = going(name, &p);
    if let Some((st, dom)) = &p.domain {
        // By UUID from here on: the domain we looked at, not a new one that
        // took its name meanwhile.
        if st.is_active() {
            ctx.libvirt(&ctx.virsh.destroy(&dom.uuid))
                .with_context(|| format!("cannot power off {name}; nothing was deleted"))?;
            ctx.ui
                .line(format_args!("{name} was {}; powered it off", st.label()));
        }
        ctx.libvirt(&ctx.virsh.undefine(&dom.uuid))
            .with_context(|| format!("cannot undefine {name}; no file was deleted"))?;
    }
    let mut failed: Vec<String> = Vec::new();
    let mut gone: Vec<String> = p.forget.clone();
    for d in &p.delete {
        let res = match d.how {
            How::File => delete_file(ctx, &d.path),
            How::Tree => ctx
                .host
                .remove_tree(Path::new(&d.path))
                .map_err(anyhow::Error::new),
        };
        match res {
            Ok(()) => gone.push(d.path.clone()),
            Err(e) => failed.push(format!("{}: {e:#}", d.path)),
        }
    }
    if p.entry || !gone.is_empty() {
        ctx.manifest.update(|m| {
            for path in &gone {
                m.forget(name, &ctx.uri, path);
            }
            if p.entry {
                m.remove(name, &ctx.uri);
            }
            Ok(())
        })?;
    }

    // The idle watcher's state and log: a new VM of this name starts afresh.
    ctx.local.forget_watcher(&crate::vm::idle::key(ctx, name));
    ctx.ui.line(format_args!("Destroyed {name}"));
    for (label, detail) in lines {
        let failed_here = failed.iter().any(|f| f.starts_with(&format!("{detail}: ")));
        if !failed_here {
            ctx.ui.step("removed", &format!("{label} {detail}"));
        }
    }
    // The VM's menu entries (apps --install), found by what they say inside.
    match launchers::uninstall(ctx, name, None) {
        Ok(removed) => {
            for f in removed {
                ctx.ui
                    .step("removed", &format!("menu file {}", f.display()));
            }
        }
        Err(e) => failed.push(format!("menu entries: {e:#}")),
    }
    // The programs `apps` found in its Windows (the cache of this VM on
    // this connection, no other's): a new VM of the same name starts
    // without them.
    match ctx.local.remove_cache_file(&catalog::cache_file(ctx, name)) {
        Ok(Some(p)) => ctx
            .ui
            .step("removed", &format!("program list {}", p.display())),
        Ok(None) => {}
        Err(e) => failed.push(format!("program list: {e:#}")),
    }
    // bkt's pin of its RDP certificate: a new VM of the same name pins its
    // own at its first connection instead of being refused as a changed one.
    match crate::vm::pins::forget(ctx, name) {
        Ok(Some(p)) => ctx
            .ui
            .step("removed", &format!("RDP certificate pin {}", p.display())),
        Ok(None) => {}
        Err(e) => failed.push(format!("RDP certificate pin: {e:#}")),
    }
    for k in &p.keep {
        ctx.ui.step("kept", &format!("{} {}", k.what, kept_line(k)));
    }
    if !failed.is_empty() {
        return Err(anyhow!("could not delete: {}", failed.join("; "))).hint(format!(
            "the manifest still records them: fix the cause and run bkt vm -c {} destroy {name} again",
            ctx.uri
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    // why: tests read fixtures and set up the files and processes they look at.
    #![allow(clippy::disallowed_methods, clippy::disallowed_types)]

    use super::*;
    use crate::vm::ctx::LocalHost;

    /// A block device node of this machine (only looked at, never opened).
    fn some_block_device() -> String {
        let found = std::fs::read_dir("/sys/class/block")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| format!("/dev/{}", e.file_name().to_string_lossy()))
            .find(|p| Path::new(p).exists());
        found.expect("no block device node under /dev to test with")
    }

    #[test]
    fn block_devices_are_told_from_files() {
        let h = LocalHost::new(&crate::settings::Settings::default());
        assert!(is_block_device(&h, &some_block_device()));
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("disk.img");
        std::fs::write(&f, "x").unwrap();
        assert!(!is_block_device(&h, &f.display().to_string()));
        assert!(!is_block_device(&h, "/dev/null"), "a character device");
        assert!(!is_block_device(
            &h,
            &d.path().join("nope").display().to_string()
        ));
    }
}
