//! A VM's memory saved to disk (`virsh managedsave`) and given back to the
//! host: saving it (`stop --save`, the idle watcher), knowing it is saved,
//! and what follows a restore (the next `virsh start` restores it).

use anyhow::{Context, Result, anyhow};

use crate::tools::virsh::{self, DomInfo};
use crate::ui::{HintExt, secs};
use crate::units::human;
use crate::vm::ctx::Ctx;

/// `virsh dominfo`: whether the VM is saved, and the memory it uses.
pub fn info(ctx: &Ctx, name: &str) -> Result<DomInfo> {
    let out = ctx
        .libvirt_out(&ctx.virsh.dominfo(name))
        .with_context(|| format!("cannot read {name}'s state"))?;
    virsh::parse_dominfo(&out)
}

/// The VM's memory is saved to disk, waiting for the next start.
pub fn is_saved(ctx: &Ctx, name: &str) -> Result<bool> {
    Ok(info(ctx, name)?.managed_save)
}

/// The file libvirt saves the VM's memory to, and its size when we may
/// read it (libvirt's directory for `qemu:///system` is root's).
pub fn image(ctx: &Ctx, name: &str) -> (std::path::PathBuf, Option<u64>) {
    let path = ctx.save_dir().join(format!("{name}.save"));
    let size = ctx.host.stat(&path).ok().map(|s| s.len);
    (path, size)
}

/// What a saved image's size reads as in messages: ` (93 MiB)`, or nothing.
pub fn size_note(size: Option<u64>) -> String {
    size.map(|s| format!(" ({})", human(s))).unwrap_or_default()
}

/// Save a running VM's memory to disk and stop it. Refuses (changing
/// nothing) when the file system libvirt saves to has no room for it.
pub fn save(ctx: &Ctx, name: &str) -> Result<()> {
    let info = info(ctx, name)?;
    let need = info.used_memory_kib * 1024;
    let dir = ctx.save_dir();
    if let Some(free) = ctx.host.free_space(&dir)
        && free < need + need / 20
    {
        return Err(anyhow!(
            "cannot save {name} to disk: its memory ({}) does not fit in {} ({} free)",
            human(need),
            dir.display(),
            human(free)
        ))
        .hint(format!(
            "free some space there, or shut it down instead: bkt vm stop {name}"
        ));
    }
    let spinner = ctx
        .ui
        .spinner(&format!("saving {name}'s memory ({}) to disk", human(need)));
    let res = ctx.try_libvirt(&ctx.virsh.managedsave(name));
    let took = spinner.elapsed();
    spinner.clear();
    res.map_err(|e| ctx.libvirt_error(e))
        .with_context(|| format!("cannot save {name} to disk; it is still running"))?;
    let (_, size) = image(ctx, name);
    ctx.ui.line(format_args!(
        "Saved {name} to disk{} in {}: its memory is the host's again",
        size_note(size),
        secs(took)
    ));
    ctx.ui.line(format_args!(
        "  `bkt vm start {name}` or `bkt vm connect {name}` restores it where it was"
    ));
    Ok(())
}

/// After a restore the guest's clock is as old as the save: set it from
/// the host's through the guest agent, or say why it could not be.
pub fn sync_clock(ctx: &Ctx, name: &str) {
    match ctx.try_libvirt(&ctx.virsh.domtime_sync(name)) {
        Ok(_) => ctx
            .ui
            .line(format_args!("Set {name}'s clock from the host's")),
        Err(e) if virsh::is_no_agent(e.stderr()) => ctx.ui.line(format_args!(
            "{name}'s clock is behind by the time it was saved until Windows sets it again \
             (the guest agent did not answer; the virtio guest tools install it)"
        )),
        Err(e) => ctx.ui.line(format_args!(
            "could not set {name}'s clock: {}",
            e.stderr().lines().last().unwrap_or_default().trim()
        )),
    }
}

/// Start a saved VM: libvirt restores its memory, and it goes on where it
/// was; then its clock is set.
pub fn restore(ctx: &Ctx, name: &str) -> Result<()> {
    let spinner = ctx.ui.spinner(&format!("restoring {name} from disk"));
    let res = ctx.try_libvirt(&ctx.virsh.start(name));
    let took = spinner.elapsed();
    spinner.clear();
    res.map_err(|e| ctx.libvirt_error(e))
        .with_context(|| format!("cannot restore {name} from disk"))
        .hint(format!(
            "if the saved memory cannot be used, `{}` discards it (Windows then boots \
             afresh, as after a power cut)",
            ctx.virsh.managedsave_remove(name).display()
        ))?;
    // libvirt boots afresh, without a word, when the saved image cannot be
    // used (a damaged file): the state's reason tells.
    match ctx.domstate(name)? {
        Some((_, reason)) if reason == "restored" => {
            ctx.ui
                .line(format_args!("Restored {name} from disk in {}", secs(took)));
            sync_clock(ctx, name);
        }
        _ => ctx.ui.line(format_args!(
            "{name}'s saved memory could not be used (libvirt discarded it): Windows booted \
             afresh, as after a power cut; work that was not saved in it is lost"
        )),
    }
    Ok(())
}
