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

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

use crate::manifest;
use crate::tools::virsh::{self, DomState};
use crate::ui::{self, HintExt};
use crate::units::human;
use crate::vm::{Ctx, libvirt_error, name_is_valid, preflight, validate_name};

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

/// libvirt keeps each VM's swtpm state in `<dir>/<uuid>`.
fn swtpm_dir(uri: &str) -> PathBuf {
    if let Some(d) = std::env::var_os("BKT_VM_SWTPM_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if uri.ends_with("/session") {
        let home = std::env::var_os("HOME").unwrap_or_default();
        PathBuf::from(home).join(".config/libvirt/qemu/swtpm")
    } else {
        PathBuf::from("/var/lib/libvirt/swtpm")
    }
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
        .find(|d| d.device == "disk" && !d.path.is_empty())
        .ok_or_else(|| anyhow!("{name} has no disk to snapshot"))?;
    if !disk.path.ends_with(".qcow2") {
        bail!(
            "{name}'s disk {} is not qcow2; libvirt can only snapshot qcow2 disks internally",
            disk.path
        );
    }
    Ok(Parts {
        nvram: dom.nvram.map(PathBuf::from),
        tpm: (dom.tpm_emulator && !dom.uuid.is_empty())
            .then(|| swtpm_dir(&ctx.uri).join(&dom.uuid)),
        root: snapshots_root(Path::new(&disk.path), name),
    })
}

fn validate_snap(snap: &str) -> Result<()> {
    if name_is_valid(snap) {
        Ok(())
    } else {
        bail!(
            "invalid snapshot name {snap:?}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    }
}

/// Bytes under a path (a file, or a directory tree).
fn size_of(path: &Path) -> u64 {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::read_dir(path)
            .map(|rd| rd.flatten().map(|e| size_of(&e.path())).sum())
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

fn permission_hint<T>(res: Result<T>, what: &Path) -> Result<T> {
    res.map_err(|e| {
        let denied = e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
        });
        if denied {
            Err::<(), _>(e)
                .hint(format!(
                    "{} belongs to libvirt; snapshots of qemu:///system VMs need root: sudo bkt vm snapshot ...",
                    what.display()
                ))
                .unwrap_err()
        } else {
            e
        }
    })
}

/// Flush a file or a directory (its entries) to disk.
fn sync(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", path.display()))
}

/// Copy a file or a tree to a path that does not exist yet (never over
/// anything), keeping modes and (as root) owners, so swtpm and QEMU can
/// still open what we put back. Every file and directory of the copy is on
/// disk when it returns.
fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(src).with_context(|| format!("reading {}", src.display()))?;
    if meta.is_dir() {
        fs::create_dir(dst).with_context(|| format!("creating {}", dst.display()))?;
        for e in fs::read_dir(src).with_context(|| format!("reading {}", src.display()))? {
            let e = e?;
            copy_tree(&e.path(), &dst.join(e.file_name()))?;
        }
    } else if meta.is_file() {
        let mut from = File::open(src).with_context(|| format!("reading {}", src.display()))?;
        let mut to = create_new(dst)?;
        std::io::copy(&mut from, &mut to)
            .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
    } else {
        // Sockets and the like are not state.
        return Ok(());
    }
    sync(dst)?;
    fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777))
        .with_context(|| format!("setting the mode of {}", dst.display()))?;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(dst, Some(meta.uid()), Some(meta.gid()))
            .with_context(|| format!("setting the owner of {}", dst.display()))?;
    }
    Ok(())
}

/// A file that did not exist, private until its mode is set.
fn create_new(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))
}

/// Write a new file and flush it.
fn write_new(path: &Path, text: &str) -> Result<()> {
    let mut f = create_new(path)?;
    std::io::Write::write_all(&mut f, text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// Replace a directory tree with a saved one, never leaving it half-made:
/// the copy is built beside it and swapped in with renames.
fn restore_tree(saved: &Path, live: &Path) -> Result<()> {
    let parent = live.parent().unwrap_or(Path::new("/"));
    let base = live.file_name().unwrap_or_default().to_string_lossy();
    let fresh = parent.join(format!(".{base}.bkt-new"));
    let old = parent.join(format!(".{base}.bkt-old"));
    let _ = fs::remove_dir_all(&fresh);
    let _ = fs::remove_dir_all(&old);
    copy_tree(saved, &fresh)?;
    if live.exists() {
        fs::rename(live, &old).with_context(|| format!("moving {} aside", live.display()))?;
    }
    fs::rename(&fresh, live).with_context(|| format!("putting back {}", live.display()))?;
    let _ = fs::remove_dir_all(&old);
    Ok(())
}

/// Put a saved file back over the live one, through a temporary name.
fn restore_file(saved: &Path, live: &Path) -> Result<()> {
    let tmp = live.with_extension("bkt-new");
    copy_tree(saved, &tmp)?;
    fs::rename(&tmp, live).with_context(|| format!("putting back {}", live.display()))
}

fn read_meta(dir: &Path) -> Option<Meta> {
    serde_json::from_str(&fs::read_to_string(dir.join(META)).ok()?).ok()
}

fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "{} {:02}:{:02} UTC",
        crate::manifest::today(),
        secs % 86_400 / 3600,
        secs % 3600 / 60
    )
}

/// Make sure the VM is off: stop it with consent, or refuse and say why.
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
    crate::vm::stop::run(ctx, name, 180, false)
}

pub fn create(ctx: &Ctx, name: &str, snap: &str, description: &str, yes: bool) -> Result<()> {
    validate_name(name)?;
    validate_snap(snap)?;
    if description.chars().any(char::is_control) {
        bail!("--description must be one line without control characters");
    }
    let (state, _) = ctx.require(name)?;
    let existing = virsh::parse_names(
        &ctx.virsh
            .snapshot_names(name)
            .stdout()
            .map_err(libvirt_error)?,
    );
    let p = parts(ctx, name)?;
    let dir = p.root.join(snap);
    if existing.iter().any(|s| s == snap) || dir.exists() {
        bail!(
            "{name} already has a snapshot named {snap:?}; choose another name or delete it first"
        );
    }
    // Room for the copies (the disk part is copy-on-write inside the qcow2).
    let need: u64 = p.nvram.iter().chain(p.tpm.iter()).map(|x| size_of(x)).sum();
    if let Some(free) = preflight::free_space(&p.root)
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

    // The directory of all of a VM's snapshots is bkt's to delete with the
    // VM: noted in the manifest before it exists, so that no crash leaves it
    // unrecorded.
    let root_is_new = fs::symlink_metadata(&p.root).is_err();
    let root = p.root.display().to_string();
    if root_is_new {
        manifest::update(&ctx.manifest, |m| {
            m.record(name, &ctx.uri, &root);
            Ok(())
        })?;
    }

    // Copies first, into a temporary directory, flushed to disk; then the
    // disk snapshot; then the rename that makes the snapshot exist. Any
    // failure removes what was made.
    let tmp = p.root.join(format!(".{snap}.tmp-{}", std::process::id()));
    let made = (|| -> Result<()> {
        fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        fs::set_permissions(&p.root, fs::Permissions::from_mode(0o700))?;
        if let Some(nv) = &p.nvram {
            permission_hint(copy_tree(nv, &tmp.join(NVRAM_COPY)), nv)?;
        }
        if let Some(tpm) = &p.tpm {
            permission_hint(copy_tree(tpm, &tmp.join(TPM_COPY)), tpm)?;
        }
        let meta = Meta {
            name: snap.to_string(),
            created: now_utc(),
            description: description.to_string(),
            nvram: p.nvram.is_some(),
            tpm: p.tpm.is_some(),
        };
        write_new(&tmp.join(META), &serde_json::to_string_pretty(&meta)?)?;
        sync(&tmp)?;
        ctx.virsh
            .snapshot_create(name, snap, description)
            .run()
            .map_err(libvirt_error)
            .context("taking the disk snapshot")?;
        if let Err(e) = fs::rename(&tmp, &dir) {
            let _ = ctx.virsh.snapshot_delete(name, snap).run();
            return Err(e).with_context(|| format!("creating {}", dir.display()));
        }
        Ok(())
    })();
    if let Err(e) = made {
        let _ = fs::remove_dir_all(&tmp);
        if root_is_new && fs::remove_dir(&p.root).is_ok() {
            let _ = manifest::update(&ctx.manifest, |m| {
                m.forget(name, &ctx.uri, &root);
                Ok(())
            });
        }
        return Err(e.context(format!(
            "snapshot {snap} of {name} failed; nothing was kept"
        )));
    }
    // The rename, and a new root's entry in its parent, on disk too.
    let mut dirs = vec![p.root.clone()];
    if root_is_new {
        dirs.extend(p.root.parent().map(Path::to_path_buf));
    }
    for d in &dirs {
        sync(d).with_context(|| {
            format!("snapshot {snap} of {name} is taken but may not be on disk yet; run `sync`")
        })?;
    }
    println!("Snapshot {snap} of {name} taken");
    ui::step("disk", "internal qcow2 snapshot (libvirt)");
    if let Some(nv) = &p.nvram {
        ui::step("NVRAM", &nv.display().to_string());
    }
    if let Some(tpm) = &p.tpm {
        ui::step("TPM state", &tpm.display().to_string());
    }
    ui::step("kept in", &dir.display().to_string());
    Ok(())
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

pub fn rows(ctx: &Ctx, name: &str) -> Result<Vec<SnapRow>> {
    ctx.require(name)?;
    let names = virsh::parse_names(
        &ctx.virsh
            .snapshot_names(name)
            .stdout()
            .map_err(libvirt_error)?,
    );
    let current = ctx
        .virsh
        .snapshot_current(name)
        .stdout()
        .ok()
        .and_then(|o| virsh::parse_names(&o).into_iter().next());
    let p = parts(ctx, name)?;
    Ok(names
        .into_iter()
        .map(|s| {
            let dir = p.root.join(&s);
            let meta = read_meta(&dir);
            SnapRow {
                current: current.as_deref() == Some(s.as_str()),
                created: meta.as_ref().map(|m| m.created.clone()),
                description: meta
                    .as_ref()
                    .map(|m| m.description.clone())
                    .unwrap_or_default(),
                size_bytes: size_of(&dir),
                complete: meta.is_some(),
                name: s,
            }
        })
        .collect())
}

pub fn list(ctx: &Ctx, name: &str, json: bool) -> Result<()> {
    validate_name(name)?;
    let rows = rows(ctx, name)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("{name} has no snapshots. Take one with: bkt vm snapshot create {name} NAME");
        return Ok(());
    }
    let w = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    println!(
        "  {:<w$}  {:<20}  {:<9}  DESCRIPTION",
        "NAME", "CREATED", "SIZE"
    );
    for r in &rows {
        let desc = if r.complete {
            r.description.clone()
        } else {
            "(disk only: not taken by bkt, no NVRAM or TPM)".into()
        };
        println!(
            "{} {:<w$}  {:<20}  {:<9}  {desc}",
            if r.current { "*" } else { " " },
            r.name,
            r.created.as_deref().unwrap_or("-"),
            human(r.size_bytes),
        );
    }
    println!("(* = the snapshot the VM currently derives from)");
    Ok(())
}

fn require_snapshot(ctx: &Ctx, name: &str, snap: &str) -> Result<()> {
    let names = virsh::parse_names(
        &ctx.virsh
            .snapshot_names(name)
            .stdout()
            .map_err(libvirt_error)?,
    );
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

pub fn revert(ctx: &Ctx, name: &str, snap: &str, yes: bool) -> Result<()> {
    validate_name(name)?;
    validate_snap(snap)?;
    let (state, _) = ctx.require(name)?;
    require_snapshot(ctx, name, snap)?;
    let p = parts(ctx, name)?;
    let dir = p.root.join(snap);
    let meta = read_meta(&dir).ok_or_else(|| {
        anyhow!(
            "snapshot {snap} of {name} has no saved NVRAM and TPM state (it was not taken by bkt); \
             reverting only its disk could leave Windows at a BitLocker recovery screen"
        )
    })?;
    if !yes {
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
    }
    if state.is_active() {
        // Everything since the snapshot is being discarded anyway.
        ctx.virsh
            .destroy(name)
            .run()
            .map_err(libvirt_error)
            .with_context(|| format!("cannot power off {name}"))?;
        println!("{name} was {}; powered it off", state.label());
    }
    ctx.virsh
        .snapshot_revert(name, snap)
        .run()
        .map_err(libvirt_error)
        .context("reverting the disk")?;
    if let (true, Some(nv)) = (meta.nvram, &p.nvram) {
        permission_hint(restore_file(&dir.join(NVRAM_COPY), nv), nv)
            .context("restoring the NVRAM")?;
    }
    if let (true, Some(tpm)) = (meta.tpm, &p.tpm) {
        permission_hint(restore_tree(&dir.join(TPM_COPY), tpm), tpm)
            .context("restoring the TPM state")?;
    }
    println!("Reverted {name} to {snap} (disk, NVRAM and TPM state); it is shut off");
    Ok(())
}

pub fn delete(ctx: &Ctx, name: &str, snap: &str) -> Result<()> {
    validate_name(name)?;
    validate_snap(snap)?;
    ctx.require(name)?;
    require_snapshot(ctx, name, snap)?;
    let p = parts(ctx, name)?;
    let dir = p.root.join(snap);
    let freed = size_of(&dir);
    ctx.virsh
        .snapshot_delete(name, snap)
        .run()
        .map_err(libvirt_error)
        .context("deleting the disk snapshot")?;
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    // The last one takes the directory, and its record, with it.
    if fs::remove_dir(&p.root).is_ok() {
        let root = p.root.display().to_string();
        manifest::update(&ctx.manifest, |m| {
            m.forget(name, &ctx.uri, &root);
            Ok(())
        })?;
    }
    println!(
        "Deleted snapshot {snap} of {name} ({} of NVRAM and TPM copies freed; the disk's \
         snapshot clusters are freed inside the qcow2)",
        human(freed)
    );
    Ok(())
}

/// For `destroy`: the snapshot directory of a VM, if there is one.
pub fn root_for(disk: &str, name: &str) -> Option<PathBuf> {
    let r = snapshots_root(Path::new(disk), name);
    r.exists().then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_keep_modes_and_restore_swaps_whole_trees() {
        let d = tempfile::tempdir().unwrap();
        let live = d.path().join("uuid");
        fs::create_dir_all(live.join("tpm2")).unwrap();
        fs::write(live.join("tpm2/tpm2-00.permall"), "state-1").unwrap();
        fs::set_permissions(
            live.join("tpm2/tpm2-00.permall"),
            fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let saved = d.path().join("saved");
        copy_tree(&live, &saved).unwrap();
        fs::write(live.join("tpm2/tpm2-00.permall"), "state-2").unwrap();
        fs::write(live.join("tpm2/extra"), "new").unwrap();
        restore_tree(&saved, &live).unwrap();
        assert_eq!(
            fs::read_to_string(live.join("tpm2/tpm2-00.permall")).unwrap(),
            "state-1"
        );
        assert!(!live.join("tpm2/extra").exists());
        let mode = fs::metadata(live.join("tpm2/tpm2-00.permall"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!d.path().join(".uuid.bkt-old").exists());

        let nv = d.path().join("VARS.fd");
        fs::write(&nv, "vars-1").unwrap();
        let nv_saved = d.path().join("nv");
        copy_tree(&nv, &nv_saved).unwrap();
        fs::write(&nv, "vars-2").unwrap();
        restore_file(&nv_saved, &nv).unwrap();
        assert_eq!(fs::read_to_string(&nv).unwrap(), "vars-1");
        assert_eq!(size_of(d.path().join("saved").as_path()), 7);
    }
}
