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
use clap::Args;

use crate::manifest::VmEntry;
use crate::names::VmName;
use crate::tools::virsh::{self, DiskDevice, DiskKind, DomState, DomainXml};
use crate::ui::{self, HintExt, Ui};
use crate::vm::ctx::Ctx;
use crate::vm::ctx::{Host, Kind};
use crate::vm::power::save;
use crate::vm::programs::catalog;
use crate::vm::programs::launchers;

/// How a file bkt made is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    /// Through libvirt when a pool lists it (so the pool forgets it too),
    /// else unlinked.
    File,
    /// A directory of bkt's own (snapshot copies).
    Tree,
}

/// What a file is, for the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum What {
    Disk,
    /// Install media another VM uses too.
    Medium,
    InstallMedia,
    AnswerIso,
    Snapshots,
}

impl What {
    fn label(self) -> &'static str {
        match self {
            What::Disk => "disk",
            What::Medium => "medium",
            What::InstallMedia => "install media",
            What::AnswerIso => "answer ISO",
            What::Snapshots => "snapshots",
        }
    }
}

/// Why a file is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Why {
    /// A volume named by its pool in the definition; `delete` is the
    /// command that would delete it.
    PoolVolume {
        delete: String,
    },
    BlockDevice,
    Shareable,
    UsedBy(Vec<String>),
    InstallMedia,
    NotOurs,
    KeepDisk,
}

impl Why {
    fn text(&self) -> String {
        match self {
            Why::PoolVolume { .. } => "a pool volume bkt did not make".into(),
            Why::BlockDevice => "a block device; bkt never deletes those".into(),
            Why::Shareable => "shareable: meant to be used by several VMs".into(),
            Why::UsedBy(users) => format!("also used by {}", users.join(", ")),
            Why::InstallMedia => "never deleted".into(),
            Why::NotOurs => "not made by bkt".into(),
            Why::KeepDisk => "--keep-disk".into(),
        }
    }

    /// The command that would delete `path`, for the user to run if they
    /// mean it: none for what bkt never deletes, nor for what another VM
    /// still uses.
    fn cmd(&self, path: &str) -> Option<String> {
        match self {
            Why::PoolVolume { delete } => Some(delete.clone()),
            Why::Shareable | Why::NotOurs | Why::KeepDisk => {
                Some(format!("rm -- {}", crate::exec::shell_quote(path)))
            }
            Why::BlockDevice | Why::UsedBy(_) | Why::InstallMedia => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Delete {
    what: What,
    path: String,
    how: How,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Keep {
    what: What,
    path: String,
    why: Why,
}

/// Where destroy found a file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// A pool volume of the definition: named by pool, never one of the
    /// paths bkt records. `delete` is the command that would delete it.
    Volume { delete: String },
    /// A `<disk>` of the definition.
    Disk { cdrom: bool, shareable: bool },
    /// Only bkt's records name it (an answer ISO already detached,
    /// snapshot copies, the disk of a domain libvirt lost): what is there
    /// now, None when it is gone.
    Record { found: Option<Kind> },
}

/// What is known about one file the definition or bkt's records name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct File {
    /// The path (for a pool volume: `VOLUME (pool POOL)`).
    path: String,
    source: Source,
    /// bkt made it: the manifest records it.
    made: bool,
    /// A block device, by the definition or on the host.
    block: bool,
    /// The other domains that use it.
    used_by: Vec<String>,
}

/// Everything destroy knows about the VM and its files before it decides.
#[derive(Debug, Default)]
struct Facts {
    /// The domain, when libvirt has it: its state and definition.
    domain: Option<(DomState, DomainXml)>,
    /// bkt's manifest has an entry for it on this connection.
    entry: bool,
    /// The install media the entry records.
    media: Vec<String>,
    /// The definition's files in its order, then those only bkt's
    /// records name.
    files: Vec<File>,
    keep_disk: bool,
}

/// What destroy does with one file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Delete {
        what: What,
        how: How,
    },
    /// Kept; `forget` when it was bkt's, so its record goes (another owner
    /// has it now, or the user chose to keep it).
    Keep {
        what: What,
        why: Why,
        forget: bool,
    },
    /// Gone already: only its record goes.
    Forget,
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
fn what_of(path: &str) -> What {
    if path.ends_with(".snapshots") {
        What::Snapshots
    } else if path.ends_with("-answer.iso") {
        What::AnswerIso
    } else {
        What::Disk
    }
}

/// What is known about the VM and its files: the definition's disks (with
/// what the host says of each), bkt's records, and which other domains use
/// which paths. The host is asked only what can change the verdict: each
/// stat over ssh is a call.
fn facts(
    ctx: &Ctx,
    domain: Option<(DomState, DomainXml)>,
    entry: Option<&VmEntry>,
    made: &[String],
    keep_disk: bool,
) -> Result<Facts> {
    let own_uuid = domain
        .as_ref()
        .map(|(_, d)| d.uuid.clone())
        .unwrap_or_default();
    let others = used_elsewhere(ctx, &own_uuid)?;
    let used_by = |path: &str| others.get(path).cloned().unwrap_or_default();
    let mut files: Vec<File> = Vec::new();
    // The definition's paths, each looked at once.
    let mut seen: Vec<&str> = Vec::new();
    for d in domain.iter().flat_map(|(_, dom)| dom.disks.iter()) {
        if let DiskKind::Volume { pool, volume } = &d.kind {
            let delete = ctx.virsh.vol_delete_in_pool(pool, volume).display();
            files.push(File {
                path: format!("{volume} (pool {pool})"),
                source: Source::Volume { delete },
                made: false,
                block: false,
                used_by: Vec::new(),
            });
            continue;
        }
        if d.path.is_empty() || seen.contains(&d.path.as_str()) {
            continue;
        }
        seen.push(&d.path);
        files.push(File {
            path: d.path.clone(),
            source: Source::Disk {
                cdrom: d.device == DiskDevice::Cdrom,
                shareable: d.shareable,
            },
            made: made.contains(&d.path),
            block: d.kind == DiskKind::Block || is_block_device(ctx.host.as_ref(), &d.path),
            used_by: used_by(&d.path),
        });
    }
    for path in made.iter().filter(|p| !seen.contains(&p.as_str())) {
        let found = ctx.host.lstat(Path::new(path)).ok().map(|m| m.kind);
        let used_by = used_by(path);
        // Kept whatever it is when gone or used elsewhere: not asked then.
        let block =
            found.is_some() && used_by.is_empty() && is_block_device(ctx.host.as_ref(), path);
        files.push(File {
            path: path.clone(),
            source: Source::Record { found },
            made: true,
            block,
            used_by,
        });
    }
    Ok(Facts {
        domain,
        entry: entry.is_some(),
        media: entry.iter().flat_map(|e| e.isos.iter().cloned()).collect(),
        files,
        keep_disk,
    })
}

/// What to do with one file: pure, from what is known of it.
fn classify(f: &File, keep_disk: bool) -> Verdict {
    let keep = |what: What, why: Why| Verdict::Keep {
        what,
        why,
        forget: f.made,
    };
    match &f.source {
        Source::Volume { delete } => keep(
            What::Disk,
            Why::PoolVolume {
                delete: delete.clone(),
            },
        ),
        Source::Disk { cdrom, shareable } => {
            let iso = *cdrom || f.path.to_ascii_lowercase().ends_with(".iso");
            let delete = Verdict::Delete {
                what: what_of(&f.path),
                how: How::File,
            };
            if f.block {
                keep(What::Disk, Why::BlockDevice)
            } else if *shareable {
                keep(What::Disk, Why::Shareable)
            } else if !f.used_by.is_empty() {
                let what = if *cdrom { What::Medium } else { What::Disk };
                keep(what, Why::UsedBy(f.used_by.clone()))
            } else if iso && !f.made {
                keep(What::InstallMedia, Why::InstallMedia)
            } else if iso {
                // The answer ISO bkt made: --keep-disk keeps disks only.
                delete
            } else if !f.made {
                keep(What::Disk, Why::NotOurs)
            } else if keep_disk {
                keep(What::Disk, Why::KeepDisk)
            } else {
                delete
            }
        }
        Source::Record { found: None } => Verdict::Forget,
        Source::Record { found: Some(kind) } => {
            let what = what_of(&f.path);
            if !f.used_by.is_empty() {
                keep(what, Why::UsedBy(f.used_by.clone()))
            } else if f.block {
                keep(what, Why::BlockDevice)
            } else if keep_disk && what == What::Disk {
                keep(what, Why::KeepDisk)
            } else if *kind == Kind::Dir {
                Verdict::Delete {
                    what: What::Snapshots,
                    how: How::Tree,
                }
            } else {
                Verdict::Delete {
                    what,
                    how: How::File,
                }
            }
        }
    }
}

/// The plan from the facts: each file's verdict in order, then the
/// install media no drive holds any more (ejected after the install).
fn decide(facts: Facts) -> Plan {
    let mut p = Plan {
        entry: facts.entry,
        ..Plan::default()
    };
    for f in &facts.files {
        let path = f.path.clone();
        match classify(f, facts.keep_disk) {
            Verdict::Delete { what, how } => p.delete.push(Delete { what, path, how }),
            Verdict::Keep { what, why, forget } => {
                if forget {
                    p.forget.push(path.clone());
                }
                p.keep.push(Keep { what, path, why });
            }
            Verdict::Forget => p.forget.push(path),
        }
    }
    for m in facts.media {
        if !p.keep.iter().any(|k| k.path == m) {
            p.keep.push(Keep {
                what: What::InstallMedia,
                path: m,
                why: Why::InstallMedia,
            });
        }
    }
    p.domain = facts.domain;
    p
}

fn kept_line(k: &Keep) -> String {
    match k.why.cmd(&k.path) {
        Some(c) => format!("{} ({}; delete it with: {c})", k.path, k.why.text()),
        None => format!("{} ({})", k.path, k.why.text()),
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
        lines.push((d.what.label().to_string(), d.path.clone()));
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
            ui.line(format_args!("  {:<14} {}", k.what.label(), kept_line(k)));
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

/// What libvirt and bkt's manifest know of a VM on this connection.
struct Known {
    /// The domain: its state and definition.
    domain: Option<(DomState, DomainXml)>,
    entry: Option<VmEntry>,
    /// The files bkt made for it.
    made: Vec<String>,
}

/// What is known of `name`; an error when neither libvirt nor the manifest
/// knows it, or when bkt's `name` lives on another connection and libvirt
/// here has none.
fn look_up(ctx: &Ctx, name: &VmName) -> Result<Known> {
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
    Ok(Known {
        domain,
        entry,
        made,
    })
}

/// Power the domain off if it runs, and undefine it: by UUID, the domain
/// we looked at, not a new one that took its name meanwhile.
fn remove_domain(ctx: &Ctx, name: &VmName, p: &Plan) -> Result<()> {
    let Some((st, dom)) = &p.domain else {
        return Ok(());
    };
    if st.is_active() {
        ctx.libvirt(&ctx.virsh.destroy(&dom.uuid))
            .with_context(|| format!("cannot power off {name}; nothing was deleted"))?;
        ctx.ui
            .line(format_args!("{name} was {}; powered it off", st.label()));
    }
    ctx.libvirt(&ctx.virsh.undefine(&dom.uuid))
        .with_context(|| format!("cannot undefine {name}; no file was deleted"))?;
    Ok(())
}

/// Delete the files the plan deletes and forget them (and the entry) in
/// the manifest; returns what could not be deleted, each as `PATH: why`.
fn remove_files(ctx: &Ctx, name: &VmName, p: &Plan) -> Result<Vec<String>> {
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
    Ok(failed)
}

/// What bkt keeps about the VM outside libvirt and the manifest, said as
/// it goes; what could not be removed is added to `failed`.
fn remove_traces(ctx: &Ctx, name: &VmName, failed: &mut Vec<String>) {
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
    match crate::vm::rdp::pins::forget(ctx, name) {
        Ok(Some(p)) => ctx
            .ui
            .step("removed", &format!("RDP certificate pin {}", p.display())),
        Ok(None) => {}
        Err(e) => failed.push(format!("RDP certificate pin: {e:#}")),
    }
}

/// Delete a VM and the files bkt made for it (never anything else).
#[derive(Debug, Args)]
#[command(
    long_about = "Delete a VM: its domain with libvirt's UEFI variables (NVRAM), TPM state \
    and snapshot metadata, the files bkt made for it (its disk, an answer ISO, snapshot \
    copies: the manifest records them), and its manifest entry.\n\n\
    Never deleted: install media, files bkt did not make, a disk another VM uses, a \
    shareable disk, a block device, anything of a VM made on another connection. A VM bkt \
    did not make loses only its definition; its disks are listed with the command that \
    would delete them. You are shown every path and asked to type the VM's name, unless \
    --yes is given."
)]
pub struct DestroyArgs {
    /// The VM's name.
    pub name: VmName,
    /// Do not ask for confirmation.
    #[arg(long, short)]
    pub yes: bool,
    /// Keep the disk image(s).
    #[arg(long)]
    pub keep_disk: bool,
}

pub fn run(ctx: &Ctx, args: DestroyArgs) -> Result<()> {
    let (name, yes, keep_disk) = (&args.name, args.yes, args.keep_disk);
    let k = look_up(ctx, name)?;
    let mut p = decide(facts(ctx, k.domain, k.entry.as_ref(), &k.made, keep_disk)?);
    if matches!(&p.domain, Some((st, _)) if !st.is_active()) && save::is_saved(ctx, name)? {
        let (image, size) = save::image(ctx, name);
        p.saved = Some(format!("{}{}", image.display(), save::size_note(size)));
    }
    if !yes {
        confirm(&ctx.ui, name, &p)?;
    }
    let lines = going(name, &p);
    remove_domain(ctx, name, &p)?;
    let mut failed = remove_files(ctx, name, &p)?;
    // The idle watcher's state and log: a new VM of this name starts afresh.
    ctx.local
        .forget_watcher(&crate::vm::power::idle::key(ctx, name));
    ctx.ui.line(format_args!("Destroyed {name}"));
    for (label, detail) in lines {
        let failed_here = failed.iter().any(|f| f.starts_with(&format!("{detail}: ")));
        if !failed_here {
            ctx.ui.step("removed", &format!("{label} {detail}"));
        }
    }
    remove_traces(ctx, name, &mut failed);
    for k in &p.keep {
        ctx.ui
            .step("kept", &format!("{} {}", k.what.label(), kept_line(k)));
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

    fn disk(path: &str, made: bool) -> File {
        File {
            path: path.into(),
            source: Source::Disk {
                cdrom: false,
                shareable: false,
            },
            made,
            block: false,
            used_by: Vec::new(),
        }
    }

    fn cdrom(path: &str, made: bool) -> File {
        File {
            source: Source::Disk {
                cdrom: true,
                shareable: false,
            },
            ..disk(path, made)
        }
    }

    fn record(path: &str, found: Option<Kind>) -> File {
        File {
            source: Source::Record { found },
            ..disk(path, true)
        }
    }

    fn keep(what: What, why: Why, forget: bool) -> Verdict {
        Verdict::Keep { what, why, forget }
    }

    const DISK: &str = "/var/lib/libvirt/images/win.qcow2";
    const ANSWER: &str = "/var/lib/libvirt/images/win-answer.iso";

    #[test]
    fn the_disk_bkt_made_goes_unless_kept() {
        let deleted = Verdict::Delete {
            what: What::Disk,
            how: How::File,
        };
        assert_eq!(classify(&disk(DISK, true), false), deleted);
        assert_eq!(
            classify(&disk(DISK, true), true),
            keep(What::Disk, Why::KeepDisk, true)
        );
        assert_eq!(
            classify(&disk(DISK, false), false),
            keep(What::Disk, Why::NotOurs, false)
        );
    }

    #[test]
    fn block_shareable_and_shared_disks_are_kept_whoever_made_them() {
        let block = File {
            block: true,
            ..disk("/dev/vg/win", true)
        };
        assert_eq!(
            classify(&block, false),
            keep(What::Disk, Why::BlockDevice, true)
        );
        let shareable = File {
            source: Source::Disk {
                cdrom: false,
                shareable: true,
            },
            ..disk(DISK, false)
        };
        assert_eq!(
            classify(&shareable, false),
            keep(What::Disk, Why::Shareable, false)
        );
        let shared = File {
            used_by: vec!["other".into()],
            ..disk(DISK, true)
        };
        let used = Why::UsedBy(vec!["other".into()]);
        assert_eq!(
            classify(&shared, false),
            keep(What::Disk, used.clone(), true)
        );
        let shared_medium = File {
            used_by: vec!["other".into()],
            ..cdrom("/isos/Win11.iso", false)
        };
        assert_eq!(
            classify(&shared_medium, false),
            keep(What::Medium, used, false)
        );
    }

    #[test]
    fn install_media_stay_and_the_answer_iso_goes_even_with_keep_disk() {
        assert_eq!(
            classify(&cdrom("/isos/Win11.iso", false), false),
            keep(What::InstallMedia, Why::InstallMedia, false)
        );
        // Named .iso on a disk device: media all the same.
        assert_eq!(
            classify(&disk("/isos/virtio-win.ISO", false), false),
            keep(What::InstallMedia, Why::InstallMedia, false)
        );
        let answer = Verdict::Delete {
            what: What::AnswerIso,
            how: How::File,
        };
        assert_eq!(classify(&cdrom(ANSWER, true), true), answer);
    }

    #[test]
    fn a_pool_volume_is_kept_with_the_command_that_deletes_it() {
        let delete = "virsh vol-delete --pool default win.qcow2".to_string();
        let f = File {
            path: "win.qcow2 (pool default)".into(),
            source: Source::Volume {
                delete: delete.clone(),
            },
            ..disk("", false)
        };
        let v = classify(&f, false);
        assert_eq!(
            v,
            keep(
                What::Disk,
                Why::PoolVolume {
                    delete: delete.clone()
                },
                false
            )
        );
        assert_eq!(
            Why::PoolVolume {
                delete: delete.clone()
            }
            .cmd(&f.path),
            Some(delete)
        );
    }

    #[test]
    fn records_the_definition_does_not_name() {
        assert_eq!(classify(&record(DISK, None), false), Verdict::Forget);
        let snaps = "/var/lib/libvirt/images/win.snapshots";
        assert_eq!(
            classify(&record(snaps, Some(Kind::Dir)), true),
            Verdict::Delete {
                what: What::Snapshots,
                how: How::Tree
            }
        );
        assert_eq!(
            classify(&record(ANSWER, Some(Kind::File)), true),
            Verdict::Delete {
                what: What::AnswerIso,
                how: How::File
            }
        );
        assert_eq!(
            classify(&record(DISK, Some(Kind::File)), true),
            keep(What::Disk, Why::KeepDisk, true)
        );
        let shared = File {
            used_by: vec!["a".into(), "b".into()],
            ..record(DISK, Some(Kind::File))
        };
        assert_eq!(
            classify(&shared, false),
            keep(What::Disk, Why::UsedBy(vec!["a".into(), "b".into()]), true)
        );
        let block = File {
            block: true,
            ..record(DISK, Some(Kind::Symlink))
        };
        assert_eq!(
            classify(&block, false),
            keep(What::Disk, Why::BlockDevice, true)
        );
    }

    #[test]
    fn the_plan_keeps_the_order_forgets_what_goes_elsewhere_and_names_ejected_media() {
        let facts = Facts {
            entry: true,
            media: vec!["/isos/Win11.iso".into(), "/isos/ejected.iso".into()],
            files: vec![
                disk(DISK, true),
                cdrom("/isos/Win11.iso", false),
                record(ANSWER, None),
                File {
                    used_by: vec!["other".into()],
                    ..record("/var/lib/libvirt/images/old.qcow2", Some(Kind::File))
                },
            ],
            ..Facts::default()
        };
        let p = decide(facts);
        assert!(p.entry);
        assert_eq!(
            p.delete,
            [Delete {
                what: What::Disk,
                path: DISK.into(),
                how: How::File
            }]
        );
        assert_eq!(
            p.forget,
            [ANSWER, "/var/lib/libvirt/images/old.qcow2"].map(String::from)
        );
        let kept: Vec<String> = p.keep.iter().map(kept_line).collect();
        assert_eq!(
            kept,
            [
                "/isos/Win11.iso (never deleted)",
                "/var/lib/libvirt/images/old.qcow2 (also used by other)",
                "/isos/ejected.iso (never deleted)",
            ]
        );
    }

    #[test]
    fn what_is_kept_says_why_and_how_to_delete_it() {
        let k = Keep {
            what: What::Disk,
            path: "/data/it's.qcow2".into(),
            why: Why::NotOurs,
        };
        assert_eq!(
            kept_line(&k),
            "/data/it's.qcow2 (not made by bkt; delete it with: rm -- '/data/it'\\''s.qcow2')"
        );
    }

    // Orchestration against the fake host and libvirt (ctx/fake.rs): what
    // libvirt and the manifest know -> what is deleted and kept, in order.

    use crate::vm::ctx::fake::{Fake, virsh_fixture as fixture};

    const T1: &str = "405a8b53-ad14-470a-9963-b210e9f1e0aa";
    const T1_DISK: &str = "/var/lib/libvirt/images/t1.qcow2";

    /// `t1` (fixtures/virsh/dumpxml-windows-running.xml: its disk and an
    /// ISO) made by bkt, in `state`; no other domain; the disk not a
    /// volume of any pool.
    fn t1(state: &str) -> Fake {
        t1_among(state, &[])
    }

    /// [`t1`] among other domains (fixtures/virsh/batch-dumpxml.txt has
    /// their definitions).
    fn t1_among(state: &str, others: &[&str]) -> Fake {
        let f = Fake::new();
        let uuids: String = std::iter::once(T1)
            .chain(others.iter().copied())
            .map(|u| format!("{u}\n"))
            .collect();
        f.host.file(T1_DISK, "disk").file("/tmp/win.iso", "iso");
        f.libvirt
            .ok("domstate", state)
            .ok(
                "dumpxml --inactive t1",
                &fixture("dumpxml-windows-running.xml"),
            )
            .ok("list --all --uuid", &uuids)
            .ok("@@bkt", &fixture("batch-dumpxml.txt"))
            .ok("dominfo t1", &fixture("dominfo-shutoff.txt"))
            .ok("destroy ", "")
            .ok("undefine ", "")
            .fails(
                "vol-delete",
                1,
                "error: Storage volume not found: no storage vol\n",
            );
        f.ctx
            .manifest
            .update(|m| {
                m.vms.push(VmEntry::for_tests("t1"));
                m.record("t1", "qemu:///system", T1_DISK);
                Ok(())
            })
            .unwrap();
        f
    }

    fn name() -> VmName {
        "t1".parse().unwrap()
    }

    /// `bkt vm destroy t1 --yes [--keep-disk]` against the fake.
    fn destroy(f: &Fake, keep_disk: bool) -> Result<()> {
        run(
            &f.ctx,
            DestroyArgs {
                name: name(),
                yes: true,
                keep_disk,
            },
        )
    }

    #[test]
    fn a_destroy_undefines_then_deletes_what_bkt_made_and_keeps_the_media() {
        let f = t1("shut off (unknown)\n");
        destroy(&f, false).unwrap();
        let j = f.journal();
        let undefine = j.iter().position(|c| c.contains("undefine")).unwrap();
        let remove = j
            .iter()
            .position(|c| c == &format!("host: remove_file {T1_DISK}"));
        assert!(undefine < remove.expect("the disk deleted"), "{j:#?}");
        assert!(
            j[undefine].contains(T1),
            "by UUID, not by a name another domain may take"
        );
        assert!(
            !j.iter().any(|c| c.contains("libvirt: destroy")),
            "it was off"
        );
        assert!(!f.host.has(T1_DISK));
        assert!(f.host.has("/tmp/win.iso"), "the install media is not bkt's");
        let m = f.manifest();
        assert!(m.named("t1").is_none());
        assert!(m.made_for("t1", "qemu:///system").is_empty());
        let said = f.said();
        assert!(said.contains("Destroyed t1"), "{said}");
        assert!(said.contains("kept"), "{said}");
    }

    #[test]
    fn a_running_vm_is_powered_off_first() {
        let f = t1("running (booted)\n");
        destroy(&f, false).unwrap();
        let calls = f.libvirt.calls();
        let destroy = calls.iter().position(|c| c == &format!("destroy {T1}"));
        let undefine = calls.iter().position(|c| c.starts_with("undefine"));
        assert!(destroy.expect("powered off") < undefine.expect("undefined"));
        assert!(
            f.said().contains("t1 was running; powered it off"),
            "{}",
            f.said()
        );
    }

    #[test]
    fn keep_disk_keeps_the_disk() {
        let f = t1("shut off (unknown)\n");
        destroy(&f, true).unwrap();
        assert!(f.host.has(T1_DISK));
        assert!(!f.journal().iter().any(|c| c.contains("remove_file")));
        assert!(f.libvirt.calls().iter().any(|c| c.starts_with("undefine")));
    }

    #[test]
    fn a_file_that_will_not_go_stays_recorded_with_the_fix() {
        let f = t1("shut off (unknown)\n");
        f.host
            .fail("remove_file", T1_DISK, std::io::ErrorKind::PermissionDenied);
        let err = destroy(&f, false).unwrap_err();
        assert!(format!("{err:#}").contains("could not delete"), "{err:#}");
        assert!(
            crate::ui::hints_of(&err)
                .iter()
                .any(|h| h.contains("destroy t1 again"))
        );
        let m = f.manifest();
        assert_eq!(m.made_for("t1", "qemu:///system"), [T1_DISK], "still known");
        assert!(m.named("t1").is_none(), "the entry itself is gone");
    }

    #[test]
    fn a_vm_libvirt_lost_still_has_its_files_deleted() {
        let f = Fake::new();
        f.host.file(T1_DISK, "disk");
        f.libvirt
            .fails("domstate", 1, "error: failed to get domain 't1'\n")
            .ok("list --all --uuid", "")
            .fails("vol-delete", 1, "error: Storage volume not found\n");
        f.ctx
            .manifest
            .update(|m| {
                m.vms.push(VmEntry::for_tests("t1"));
                m.record("t1", "qemu:///system", T1_DISK);
                Ok(())
            })
            .unwrap();
        destroy(&f, false).unwrap();
        assert!(!f.host.has(T1_DISK));
        assert!(!f.libvirt.calls().iter().any(|c| c.contains("undefine")));
        assert!(f.manifest().vms.is_empty());
    }

    #[test]
    fn a_recorded_file_another_vm_uses_is_kept() {
        let f = t1_among(
            "shut off (unknown)\n",
            &["11111111-2222-4333-8444-555555555555"],
        );
        let theirs = "/var/lib/libvirt/images/r1.qcow2";
        f.host.file(theirs, "theirs");
        f.ctx
            .manifest
            .update(|m| {
                m.record("t1", "qemu:///system", theirs);
                Ok(())
            })
            .unwrap();
        destroy(&f, false).unwrap();
        assert!(f.host.has(theirs), "r1 uses it");
        assert!(!f.host.has(T1_DISK));
        assert!(f.said().contains("r1"), "{}", f.said());
        assert_eq!(
            f.manifest().made_for("t1", "qemu:///system"),
            Vec::<String>::new(),
            "no longer bkt's to delete"
        );
    }

    #[test]
    fn a_recorded_path_that_is_now_a_block_device_is_kept() {
        let f = t1("shut off (unknown)\n");
        let dev = "/dev/sdz";
        f.host.block(dev);
        f.ctx
            .manifest
            .update(|m| {
                m.record("t1", "qemu:///system", dev);
                Ok(())
            })
            .unwrap();
        destroy(&f, false).unwrap();
        assert!(f.host.has(dev), "a device is never deleted");
        assert!(
            !f.journal()
                .iter()
                .any(|c| c.contains(dev) && c.contains("remove"))
        );
        assert!(!f.host.has(T1_DISK));
    }
}
