//! `bkt vm snapshot create`: the checks, then the copies, the disk
//! snapshot and the rename as steps, the ones done undone in reverse when
//! one fails.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;

use super::{
    META, Meta, NVRAM_COPY, Parts, TPM_COPY, Where, parts, permission_hint, refuse_saved,
    require_access,
};
use crate::names::{SnapName, VmName};
use crate::tools::virsh::{self, DomState};
use crate::ui::{self, HintExt};
use crate::units::human;
use crate::vm::ctx::Ctx;
use crate::vm::power;

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

pub(super) fn create(ctx: &Ctx, args: SnapshotCreateArgs) -> Result<()> {
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

/// `2026-01-25 14:03 UTC`, for `snapshot list`.
fn now_utc(ctx: &Ctx) -> String {
    jiff::Timestamp::from_second(ctx.local.now() as i64)
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
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

#[cfg(test)]
mod tests {
    // why: tests read fixtures and set up the files and processes they look at.
    #![allow(clippy::disallowed_methods, clippy::disallowed_types)]

    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

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
