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

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use crate::interrupt::{self, Interrupted};
use crate::names::{SnapName, VmName};
use crate::tools::virsh::{self, DiskDevice, DomState};
use crate::ui::{self, HintExt};
use crate::units::human;
use crate::vm::ctx::Ctx;
use crate::vm::ctx::{Host, Kind};
use crate::vm::power::{self, save};

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

fn read_meta(host: &dyn Host, dir: &Path) -> Option<Meta> {
    serde_json::from_str(&host.read_to_string(&dir.join(META)).ok()?).ok()
}

/// `2026-01-25 14:03 UTC`, for `snapshot list`.
fn now_utc(ctx: &Ctx) -> String {
    jiff::Timestamp::from_second(ctx.local.now() as i64)
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
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

fn ensure_off(ctx: &Ctx, name: &str, state: DomState, yes: bool, why: &str) -> Result<()> {
    if !state.is_active() {
        return Ok(());
    }
    let reason = format!(
        "{name} is {}; {why} (a live snapshot would leave out the UEFI variables, which are in \
         raw NVRAM here, and the TPM state)",
        state.label()
    );
    let consent = yes
        || (ui::stdin_is_terminal()
            && dialoguer::Confirm::new()
                .with_prompt(format!("{reason}. Shut it down now?"))
                .default(false)
                .interact()?);
    if !consent {
        return Err(anyhow!("{reason}")).hint(format!(
            "shut it down first (bkt vm stop {name}), or pass --yes to do it now"
        ));
    }
    power::shut_down(ctx, name, state, std::time::Duration::from_secs(180))
}

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

/// Take a snapshot (the VM is shut down first, with your consent).
#[derive(Debug, Args)]
pub struct SnapshotCreateArgs {
    /// The VM's name.
    pub name: VmName,
    /// The snapshot's name.
    pub snap: SnapName,
    /// What this state is (shown by `list`).
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub description: String,
    /// Shut the VM down without asking if it is running.
    #[arg(long, short)]
    pub yes: bool,
}

/// List snapshots: name, date, description, size, and the current one.
#[derive(Debug, Args)]
pub struct SnapshotListArgs {
    /// The VM's name.
    pub name: VmName,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

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

/// Delete a snapshot and free its space.
#[derive(Debug, Args)]
pub struct SnapshotDeleteArgs {
    /// The VM's name.
    pub name: VmName,
    /// The snapshot's name.
    pub snap: SnapName,
}

pub fn run(ctx: &Ctx, args: SnapshotArgs) -> Result<()> {
    match args.command {
        SnapshotCommand::Create(args) => create(ctx, args),
        SnapshotCommand::List(args) => list(ctx, args),
        SnapshotCommand::Revert(args) => revert(ctx, args),
        SnapshotCommand::Delete(args) => delete(ctx, args),
    }
}

fn create(ctx: &Ctx, args: SnapshotCreateArgs) -> Result<()> {
    let SnapshotCreateArgs {
        ref name,
        ref snap,
        ref description,
        yes,
    } = args;
    let (host, name, snap) = (ctx.host.as_ref(), name.as_str(), snap.as_str());
    if description.chars().any(char::is_control) {
        bail!("--description must be one line without control characters");
    }
    let (state, _) = ctx.domstate(name)?.ok_or_else(|| ctx.unknown_vm(name))?;
    // In use until the snapshot is taken: the idle watcher must not save
    // the VM while it is being shut down for one.
    let _busy = crate::vm::power::idle::busy(ctx, name);
    let (p, w) = ready_to_take(ctx, name, snap, state, yes)?;

    // The directory of all of a VM's snapshots is bkt's to delete with the
    // VM: noted in the manifest before it exists, so that no crash leaves it
    // unrecorded.
    let root_is_new = host.lstat(&p.root).is_err();
    if root_is_new {
        ctx.manifest.update(|m| {
            m.record(name, &ctx.uri, &p.root.display().to_string());
            Ok(())
        })?;
    }
    let t = Taking {
        ctx,
        name,
        snap,
        description,
        tmp: p.root.join(format!(".{snap}.tmp-{}", std::process::id())),
        dir: p.root.join(snap),
        root_is_new,
        p,
        w,
    };
    // Any failure removes what the steps done made, in reverse.
    for (i, step) in TAKE.iter().enumerate() {
        if let Err(e) = t.run(*step) {
            for done in TAKE[..i].iter().rev() {
                t.undo(*done);
            }
            return Err(e.context(format!(
                "snapshot {snap} of {name} failed; nothing was kept"
            )));
        }
    }
    t.taken()
}

/// Everything a snapshot needs, checked before anything is made: not
/// saved to disk, a free name, access to the parts, room for the copies,
/// and the VM shut off (with consent). The VM's parts, and where they are.
fn ready_to_take(
    ctx: &Ctx,
    name: &str,
    snap: &str,
    state: DomState,
    yes: bool,
) -> Result<(Parts, Where)> {
    let host = ctx.host.as_ref();
    refuse_saved(ctx, name, state, "take a snapshot")?;
    let existing = virsh::parse_names(&ctx.libvirt_out(&ctx.virsh.snapshot_names(name))?);
    let p = parts(ctx, name)?;
    let w = Where::of(ctx);
    require_access(ctx, &p, &w, &format!("a snapshot of {name}"), true)?;
    if existing.iter().any(|s| s == snap) || host.lstat(&p.root.join(snap)).is_ok() {
        bail!(
            "{name} already has a snapshot named {snap:?}; choose another name or delete it first"
        );
    }
    // Room for the copies (the disk part is copy-on-write inside the qcow2).
    let need: u64 = p
        .nvram
        .iter()
        .chain(p.tpm.iter())
        .map(|x| host.tree_size(x))
        .sum();
    if let Some(free) = host.free_space(&p.root)
        && free < need
    {
        bail!(
            "not enough space for the snapshot: {} needed in {}, {} free",
            human(need),
            p.root.display(),
            human(free)
        );
    }
    ensure_off(
        ctx,
        name,
        state,
        yes,
        "snapshots are taken with the VM shut off",
    )?;
    Ok((p, w))
}

/// One step of taking a snapshot, in the order of [`TAKE`]; when one
/// fails, the steps done are undone in reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Take {
    /// The NVRAM and TPM copies and the metadata, in a temporary
    /// directory, flushed to disk. Undone: that directory removed, and
    /// the snapshots' directory with its record if this run made it.
    Copies,
    /// libvirt's internal snapshot of the disk. Undone: deleted.
    Disk,
    /// The rename of the temporary directory that makes the snapshot exist.
    Rename,
}

/// Copies first, then the disk snapshot, then the rename.
const TAKE: [Take; 3] = [Take::Copies, Take::Disk, Take::Rename];

/// A snapshot being taken: what its steps work on.
struct Taking<'a> {
    ctx: &'a Ctx,
    name: &'a str,
    snap: &'a str,
    description: &'a str,
    p: Parts,
    w: Where,
    /// The temporary directory of the copies, beside the snapshots.
    tmp: PathBuf,
    /// The snapshot's directory, once it exists.
    dir: PathBuf,
    /// The snapshots' directory did not exist (and is recorded now).
    root_is_new: bool,
}

impl Taking<'_> {
    fn run(&self, step: Take) -> Result<()> {
        let (ctx, host) = (self.ctx, self.ctx.host.as_ref());
        match step {
            // Whole or not at all: what it made before failing goes.
            Take::Copies => self.copies().inspect_err(|_| self.undo(Take::Copies)),
            Take::Disk => ctx
                .libvirt(
                    &ctx.virsh
                        .snapshot_create(self.name, self.snap, self.description),
                )
                .map(|_| ())
                .context("taking the disk snapshot"),
            Take::Rename => host
                .rename(&self.tmp, &self.dir)
                .with_context(|| format!("creating {}", self.dir.display())),
        }
    }

    /// The copies and the metadata in the temporary directory.
    fn copies(&self) -> Result<()> {
        let (host, p) = (self.ctx.host.as_ref(), &self.p);
        host.create_dir_all(&self.tmp)
            .with_context(|| format!("creating {}", self.tmp.display()))?;
        host.set_mode(&p.root, 0o700)?;
        if let Some(nv) = &p.nvram {
            permission_hint(host.copy_tree(nv, &self.tmp.join(NVRAM_COPY)), &self.w, nv)?;
        }
        if let Some(tpm) = &p.tpm {
            permission_hint(host.copy_tree(tpm, &self.tmp.join(TPM_COPY)), &self.w, tpm)?;
        }
        let meta = Meta {
            name: self.snap.to_string(),
            created: now_utc(self.ctx),
            description: self.description.to_string(),
            nvram: p.nvram.is_some(),
            tpm: p.tpm.is_some(),
        };
        host.write_new(
            &self.tmp.join(META),
            serde_json::to_string_pretty(&meta)?.as_bytes(),
            0o600,
        )?;
        host.sync(&self.tmp)
    }

    /// Undo a step done (or, for the copies, begun); what cannot be
    /// undone stays (the error already says the snapshot failed).
    fn undo(&self, step: Take) {
        let (ctx, host) = (self.ctx, self.ctx.host.as_ref());
        match step {
            Take::Copies => {
                let _ = host.remove_tree(&self.tmp);
                if self.root_is_new && host.remove_dir(&self.p.root).is_ok() {
                    let _ = ctx.manifest.update(|m| {
                        m.forget(self.name, &ctx.uri, &self.p.root.display().to_string());
                        Ok(())
                    });
                }
            }
            Take::Disk => {
                let _ = ctx.try_libvirt(&ctx.virsh.snapshot_delete(self.name, self.snap));
            }
            Take::Rename => {}
        }
    }

    /// The snapshot exists: its rename (and a new root's entry in its
    /// parent) on disk too, and what was kept said.
    fn taken(&self) -> Result<()> {
        let (host, p, name, snap) = (self.ctx.host.as_ref(), &self.p, self.name, self.snap);
        let mut dirs = vec![p.root.clone()];
        if self.root_is_new {
            dirs.extend(p.root.parent().map(Path::to_path_buf));
        }
        for d in &dirs {
            host.sync(d).with_context(|| {
                format!("snapshot {snap} of {name} is taken but may not be on disk yet; run `sync`")
            })?;
        }
        self.ctx
            .ui
            .line(format_args!("Snapshot {snap} of {name} taken"));
        self.ctx
            .ui
            .step("disk", "internal qcow2 snapshot (libvirt)");
        if let Some(nv) = &p.nvram {
            self.ctx.ui.step("NVRAM", &nv.display().to_string());
        }
        if let Some(tpm) = &p.tpm {
            self.ctx.ui.step("TPM state", &tpm.display().to_string());
        }
        self.ctx.ui.step("kept in", &self.dir.display().to_string());
        Ok(())
    }
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

fn list(ctx: &Ctx, args: SnapshotListArgs) -> Result<()> {
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

/// The parts of a snapshot that a revert puts back, each checked readable.
struct Saved {
    meta: Meta,
    /// (part, saved copy, live path) of the NVRAM and the TPM state.
    copies: Vec<(&'static str, PathBuf, PathBuf)>,
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

fn revert(ctx: &Ctx, args: SnapshotRevertArgs) -> Result<()> {
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

fn delete(ctx: &Ctx, args: SnapshotDeleteArgs) -> Result<()> {
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

#[cfg(test)]
mod tests {
    // why: tests read fixtures and set up the files and processes they look at.
    #![allow(clippy::disallowed_methods, clippy::disallowed_types)]

    use super::*;
    use crate::vm::ctx::LocalHost;
    use crate::vm::ctx::host::{HostFiles, HostMachine};
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn host() -> LocalHost {
        LocalHost::new(&crate::settings::Settings::default())
    }

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

    /// A snapshot of a VM with only an NVRAM file, its snapshots'
    /// directory not made yet, in a temporary directory.
    fn taking<'a>(ctx: &'a Ctx, d: &Path, nvram: PathBuf) -> Taking<'a> {
        let root = d.join("images/w.snapshots");
        Taking {
            ctx,
            name: "w",
            snap: "clean",
            description: "before",
            tmp: root.join(".clean.tmp-1"),
            dir: root.join("clean"),
            root_is_new: true,
            p: Parts {
                nvram: Some(nvram),
                tpm: None,
                root,
            },
            w: Where::default(),
        }
    }

    #[test]
    fn the_copies_step_is_whole_or_undone() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("vms.json");
        let settings = crate::settings::Settings::from_vars(|k| {
            (k == "BKT_VM_MANIFEST").then(|| m.clone().into_os_string())
        });
        let ctx = Ctx::new("qemu:///system".parse().unwrap(), settings).unwrap();
        let recorded = || {
            ctx.manifest
                .load()
                .unwrap()
                .made_for("w", "qemu:///system")
                .len()
        };
        fs::create_dir(d.path().join("images")).unwrap();
        let nv = d.path().join("VARS.fd");
        fs::write(&nv, "vars").unwrap();
        let t = taking(&ctx, d.path(), nv);
        // As create does before the step.
        ctx.manifest
            .update(|m| {
                m.record("w", &ctx.uri, &t.p.root.display().to_string());
                Ok(())
            })
            .unwrap();
        assert_eq!(recorded(), 1);
        t.run(Take::Copies).unwrap();
        assert_eq!(fs::read_to_string(t.tmp.join(NVRAM_COPY)).unwrap(), "vars");
        let meta: Meta =
            serde_json::from_str(&fs::read_to_string(t.tmp.join(META)).unwrap()).unwrap();
        assert_eq!(
            (meta.name.as_str(), meta.nvram, meta.tpm),
            ("clean", true, false)
        );
        let mode = fs::metadata(&t.p.root).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        // Undone: the copies, and the snapshots' directory this run made.
        t.undo(Take::Copies);
        assert!(!t.p.root.exists());
        assert!(d.path().join("images").exists());
        assert_eq!(recorded(), 0);

        // A part that cannot be copied: nothing of the step is left.
        let t = taking(&ctx, d.path(), d.path().join("gone.fd"));
        assert!(t.run(Take::Copies).is_err());
        assert!(!t.p.root.exists());
        assert_eq!(TAKE, [Take::Copies, Take::Disk, Take::Rename]);
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

    // Taking a snapshot against the fake host and libvirt (ctx/fake.rs):
    // its steps in order, and on a failure the steps done undone in
    // reverse, the manifest left right.

    use crate::vm::ctx::fake::{Fake, virsh_fixture as fixture};

    const T1: &str = "405a8b53-ad14-470a-9963-b210e9f1e0aa";
    const NV: &str = "/var/lib/libvirt/qemu/nvram/t1_VARS.fd";
    const ROOT: &str = "/var/lib/libvirt/images/t1.snapshots";

    /// t1 (fixtures/virsh/dumpxml-windows-running.xml: NVRAM and an
    /// emulated TPM) shut off, no snapshots yet; libvirt's answers after
    /// `first`, which win.
    fn t1_off(first: &[(&str, i32, &str)]) -> Fake {
        let f = Fake::new();
        f.host
            .file(NV, "vars")
            .file(
                format!("/var/lib/libvirt/swtpm/{T1}/tpm2/tpm2-00.permall"),
                "tpm",
            )
            .file("/var/lib/libvirt/images/t1.qcow2", "disk");
        for (pattern, code, text) in first {
            f.libvirt.once(pattern, *code, text);
        }
        f.libvirt
            .ok("domstate", "shut off (shutdown)\n")
            .ok("dominfo t1", &fixture("dominfo-shutoff.txt"))
            .ok("snapshot-list t1 --name", "\n")
            .ok(
                "dumpxml --inactive t1",
                &fixture("dumpxml-windows-running.xml"),
            )
            .ok("snapshot-create-as", "")
            .ok("snapshot-delete", "");
        f
    }

    fn take(f: &Fake) -> Result<()> {
        create(
            &f.ctx,
            SnapshotCreateArgs {
                name: "t1".parse().unwrap(),
                snap: "clean".parse().unwrap(),
                description: "before".into(),
                yes: true,
            },
        )
    }

    fn tmp() -> String {
        format!("{ROOT}/.clean.tmp-{}", std::process::id())
    }

    fn recorded(f: &Fake) -> Vec<String> {
        f.manifest().made_for("t1", "qemu:///system")
    }

    #[test]
    fn a_snapshot_copies_then_snapshots_the_disk_then_renames() {
        let f = t1_off(&[]);
        take(&f).unwrap();
        let tmp = tmp();
        let changes: Vec<String> = f
            .journal()
            .into_iter()
            .filter(|c| !c.starts_with("libvirt: ") || c.contains("snapshot-create"))
            .collect();
        assert_eq!(
            changes,
            [
                format!("host: create_dir_all {tmp}"),
                format!("host: set_mode {ROOT}"),
                format!("host: copy_tree {NV}"),
                format!("host: copy_tree /var/lib/libvirt/swtpm/{T1}"),
                format!("host: write_new {tmp}/{META}"),
                "libvirt: snapshot-create-as --domain t1 --name clean --description before --atomic"
                    .to_string(),
                format!("host: rename {tmp}"),
            ]
        );
        assert_eq!(
            f.host
                .node(format!("{ROOT}/clean/{NVRAM_COPY}"))
                .unwrap()
                .data,
            b"vars"
        );
        assert!(
            f.host
                .has(format!("{ROOT}/clean/{TPM_COPY}/tpm2/tpm2-00.permall"))
        );
        assert_eq!(f.host.node(ROOT).unwrap().mode, 0o700);
        assert_eq!(recorded(&f), [ROOT], "the snapshots' directory is bkt's");
        let said = f.said();
        assert!(said.contains("Snapshot clean of t1 taken"), "{said}");
        assert!(
            said.contains(&format!("kept in        {ROOT}/clean")),
            "{said}"
        );
    }

    #[test]
    fn a_failed_disk_snapshot_removes_the_copies_and_the_new_directory() {
        let f = t1_off(&[("snapshot-create-as", 1, "error: no space\n")]);
        let err = take(&f).unwrap_err();
        assert!(
            format!("{err:#}").contains("snapshot clean of t1 failed; nothing was kept"),
            "{err:#}"
        );
        assert!(!f.host.has(ROOT));
        assert!(recorded(&f).is_empty(), "its record goes with it");
        assert!(
            !f.libvirt
                .calls()
                .iter()
                .any(|c| c.starts_with("snapshot-delete")),
            "no disk snapshot to delete"
        );
        assert!(f.host.has(NV), "the live NVRAM is untouched");
    }

    #[test]
    fn a_failed_rename_deletes_the_disk_snapshot_then_the_copies() {
        let f = t1_off(&[]);
        f.host
            .fail("rename", tmp(), std::io::ErrorKind::PermissionDenied);
        take(&f).unwrap_err();
        let j = f.journal();
        let delete = j
            .iter()
            .position(|c| c == "libvirt: snapshot-delete t1 clean")
            .expect("the disk snapshot deleted");
        let copies = j
            .iter()
            .position(|c| c == &format!("host: remove_tree {}", tmp()))
            .expect("the copies removed");
        assert!(delete < copies, "undone in reverse: {j:#?}");
        assert!(!f.host.has(ROOT));
        assert!(recorded(&f).is_empty());
    }

    #[test]
    fn a_part_that_cannot_be_copied_makes_nothing_and_asks_libvirt_nothing() {
        let f = t1_off(&[]);
        f.host.fail(
            "copy_tree",
            format!("/var/lib/libvirt/swtpm/{T1}"),
            std::io::ErrorKind::Other,
        );
        take(&f).unwrap_err();
        assert!(
            !f.libvirt
                .calls()
                .iter()
                .any(|c| c.starts_with("snapshot-create"))
        );
        assert!(!f.host.has(ROOT));
        assert!(recorded(&f).is_empty());
    }

    #[test]
    fn an_earlier_snapshots_directory_stays_after_a_failure() {
        let f = t1_off(&[("snapshot-create-as", 1, "error: no space\n")]);
        // Empty (its snapshots deleted): still not this run's to remove.
        f.host.dir(ROOT);
        f.ctx
            .manifest
            .update(|m| {
                m.record("t1", "qemu:///system", ROOT);
                Ok(())
            })
            .unwrap();
        take(&f).unwrap_err();
        assert!(f.host.has(ROOT));
        assert!(!f.host.has(tmp()));
        assert_eq!(recorded(&f), [ROOT]);
    }

    #[test]
    fn a_taken_name_is_refused_before_anything_is_made() {
        let f = t1_off(&[("snapshot-list t1 --name", 0, "clean\n")]);
        let err = take(&f).unwrap_err();
        assert!(format!("{err:#}").contains("already has a snapshot named \"clean\""));
        assert!(
            f.host.calls().is_empty(),
            "nothing made or changed: {:?}",
            f.host.calls()
        );
        assert!(recorded(&f).is_empty());
    }
}
