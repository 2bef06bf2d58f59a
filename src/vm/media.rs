//! Taking media out of a VM's drives when they are no longer wanted (the
//! install ISO once Windows is installed, the answer ISO).

use std::path::Path;

use anyhow::{Context, Result, anyhow};

use crate::tools::virsh::{DiskDevice, DomainXml};
use crate::vm::ctx::{Ctx, libvirt_error};

/// Empty the drive that holds `medium` (in the definition, and in the
/// running VM), and say so. Nothing to do when no drive holds it.
pub fn eject(ctx: &Ctx, name: &str, dom: &DomainXml, medium: &Path) -> Result<bool> {
    let path = medium.display().to_string();
    let Some(d) = dom
        .disks
        .iter()
        .find(|d| d.path == path && d.device == DiskDevice::Cdrom)
    else {
        return Ok(false);
    };
    let live = matches!(ctx.domstate(name), Ok(Some((s, _))) if s.is_active());
    ctx.virsh
        .change_media(name, &d.target, None, live)
        .run()
        .map_err(libvirt_error)
        .with_context(|| format!("ejecting {path} from {name}"))?;
    Ok(true)
}

/// The CD-ROM drive that holds `medium`, for messages.
pub fn drive_of(dom: &DomainXml, medium: &Path) -> Result<String> {
    let path = medium.display().to_string();
    dom.disks
        .iter()
        .find(|d| d.path == path)
        .map(|d| d.target.clone())
        .ok_or_else(|| anyhow!("no drive holds {path}"))
}
