//! Install media on the machine that runs libvirt, and taking media out of
//! a VM's drives when they are no longer wanted (the install ISO once
//! Windows is installed, the answer ISO).
//!
//! A host reached over ssh cannot open an ISO of this machine: it is sent
//! once, into the images directory there, under a name that says which
//! file it is (the start of its SHA-256), and found there the next time.
//! It is written under a temporary name, checked by its SHA-256 on the
//! host, then renamed: a file under the final name is always whole. Media
//! are never deleted by bkt (`destroy` keeps them).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow};

use crate::tools::virsh::{DiskDevice, DomainXml};
use crate::ui;
use crate::units::human;
use crate::vm::ctx::{Ctx, Kind, libvirt_error};

/// The name a medium gets on the host: `bkt-media-`, 16 hex digits of its
/// SHA-256, and its own name in characters every tool takes as they are
/// (virt-install writes some wrongly; see `checks::mangled_path`).
pub fn upload_name(file: &str, sha256: &str) -> String {
    let plain: String = file
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let plain = plain.trim_start_matches(['.', '-']);
    let plain = if plain.to_ascii_lowercase().ends_with(".iso") {
        plain.to_string()
    } else {
        format!("{plain}.iso")
    };
    format!("bkt-media-{}-{plain}", &sha256[..16])
}

/// Where the host finds `local` (an ISO of this machine): itself when the
/// host is this machine; else the copy in `images` on the host, sent now
/// unless the same file (by SHA-256) is there already.
pub fn on_host(ctx: &Ctx, local: &Path, images: &Path) -> Result<PathBuf> {
    let Some(target) = ctx.uri.ssh() else {
        return Ok(local.to_path_buf());
    };
    let host = &target.host;
    let file = local
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let len = ctx
        .local
        .len(local)
        .with_context(|| format!("reading {}", local.display()))?;
    let bar = ui::bytes_bar(&format!("checksumming {file}"), Some(len));
    let sha = ctx.local.sha256(local, &mut |n| bar.set_position(n));
    bar.finish_and_clear();
    let sha = sha?;
    let dest = images.join(upload_name(&file, &sha));
    // A file under that name was checked when it was sent; it is hashed
    // again here, so a copy changed on the host since is sent anew.
    if let Ok(st) = ctx.host.stat(&dest)
        && st.kind == Kind::File
        && st.len == len
    {
        let spinner = ui::Spinner::new(&format!("checking {} on {host}", dest.display()));
        let theirs = ctx.host.sha256(&dest);
        spinner.clear();
        if theirs.as_deref().ok() == Some(sha.as_str()) {
            ui::step(
                "on host",
                &format!(
                    "{file}: {host}:{} has the same SHA-256; not sent again",
                    dest.display()
                ),
            );
            return Ok(dest);
        }
        ui::step(
            "changed",
            &format!(
                "{file}: {host}:{} is not the same file any more; sending it again",
                dest.display()
            ),
        );
    }
    let tag: [u8; 4] = ctx.local.random_bytes()?;
    let tag: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    let part = images.join(format!(
        ".{}.{tag}.part",
        dest.file_name().unwrap_or_default().to_string_lossy()
    ));
    let started = Instant::now();
    let bar = ui::bytes_bar(&format!("uploading {file} to {host}"), Some(len));
    if bar.is_hidden() {
        eprintln!(
            "uploading {file} ({}) to {host}:{} …",
            human(len),
            dest.display()
        );
    }
    let sent = ctx
        .host
        .send_new(local, &part, 0o644, &mut |n| bar.set_position(n));
    bar.finish_and_clear();
    sent.with_context(|| {
        format!("uploading {file} to {host} failed; nothing of it is left there")
    })?;
    let spinner = ui::Spinner::new(&format!("checking the copy on {host}"));
    let theirs = ctx.host.sha256(&part);
    spinner.clear();
    let published = match theirs {
        Ok(s) if s == sha => ctx
            .host
            .rename(&part, &dest)
            .with_context(|| format!("naming the copy {}", dest.display())),
        Ok(s) => Err(anyhow!(
            "the copy on {host} is not the file sent (SHA-256 {s}, not {sha})"
        )),
        Err(e) => Err(e),
    };
    if let Err(e) = published {
        let _ = ctx.host.remove_file(&part);
        return Err(e.context(format!(
            "uploading {file} to {host} failed; nothing of it is left there"
        )));
    }
    ui::step(
        "uploaded",
        &format!(
            "{file} → {host}:{} ({}, {}; kept for the next VM)",
            dest.display(),
            human(len),
            ui::secs(started.elapsed())
        ),
    );
    Ok(dest)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_uploaded_medium_is_named_by_its_hash_in_plain_characters() {
        let sha = "5cdebc148d5b582c11edac50a64b524143ca37f3de66c26dbfa5d0d8a6f4ff16";
        assert_eq!(
            upload_name("Win 11.iso", sha),
            "bkt-media-5cdebc148d5b582c-Win_11.iso"
        );
        assert_eq!(
            upload_name("virtio-win.ISO", sha),
            "bkt-media-5cdebc148d5b582c-virtio-win.ISO"
        );
        assert_eq!(
            upload_name("-.x,y;$(z)", sha),
            "bkt-media-5cdebc148d5b582c-x_y___z_.iso"
        );
        assert_eq!(
            upload_name("Türkçe.iso", sha),
            "bkt-media-5cdebc148d5b582c-T_rk_e.iso"
        );
    }
}
