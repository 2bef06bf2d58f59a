//! Install media on the machine that runs libvirt, and taking media out of
//! a VM's drives when they are no longer wanted (the install ISO once
//! Windows is installed, the answer ISO).
//!
//! A host reached over ssh cannot open an ISO of this machine: it is sent
//! once, into the images directory there, under a name that says which
//! file it is (the start of its SHA-256), and found there the next time.
//! When the ssh user may write that directory (root), the file is written
//! there over ssh under a temporary name, checked by its SHA-256 on the
//! host, then renamed: a file under the final name is always whole. When
//! it may not (a user of the libvirt group), libvirt writes it: a volume
//! of the directory's pool is made (`vol-create`) and filled
//! (`vol-upload`), then checked the same way, and deleted if it is not
//! right. Either way a copy found there is hashed again before it is
//! used. Media are never deleted by bkt once whole (`destroy` keeps
//! them).

pub mod iso_contents;
pub mod unattended;
pub mod windows_iso;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow};

use crate::exec::shell_quote;
use crate::tools::virsh::{DiskDevice, DomainXml};
use crate::ui::{self, HintExt};
use crate::units::human;
use crate::vm::ctx::{Ctx, Kind, LeftBehind};

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

/// How files of this machine reach a directory of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// We write there: this machine, or the ssh user on the host (media
    /// over ssh as a temporary file, renamed once checked).
    Direct,
    /// Through libvirt, into this pool of that directory.
    Pool(String),
}

/// How media get into `images` on the host reached over ssh; None when
/// neither the ssh user nor a libvirt pool can write there.
pub fn route(ctx: &Ctx, images: &Path) -> Result<Option<Route>> {
    if ctx.host.writable(images) {
        return Ok(Some(Route::Direct));
    }
    Ok(ctx.pool_holding(images)?.map(Route::Pool))
}

/// How files get into `dir` on the host: written directly on this
/// machine, else by [`route`]; an error with its fix when neither the ssh
/// user nor a libvirt pool can write there.
pub fn route_to(ctx: &Ctx, dir: &Path) -> Result<Route> {
    let Some(t) = ctx.uri.ssh() else {
        return Ok(Route::Direct);
    };
    route(ctx, dir)?
        .ok_or_else(|| {
            anyhow!(
                "{} cannot write to {}:{}, and no active libvirt pool holds that directory",
                t.user.as_deref().unwrap_or("the ssh user"),
                t.host,
                dir.display()
            )
        })
        .hint(format!(
            "connect as root: --connect '{}'",
            ctx.uri
                .with_ssh_user("root")
                .unwrap_or_else(|| ctx.uri.to_string())
        ))
}

/// Put a small file bkt built here (`local`) at `dest` on the host, by
/// `route`, never over anything there: in a pool, as a volume libvirt
/// makes (refreshed first, so that it refuses a name a file has).
pub fn place(ctx: &Ctx, local: &Path, dest: &Path, mode: u32, route: &Route) -> Result<()> {
    let pool = match route {
        Route::Direct => return ctx.host.install_new(local, dest, mode),
        Route::Pool(pool) => pool,
    };
    let len = ctx
        .local
        .len(local)
        .with_context(|| format!("reading {}", local.display()))?;
    ctx.libvirt(&ctx.virsh.pool_refresh(pool))
        .with_context(|| format!("refreshing libvirt's pool {pool}"))?;
    make_volume(ctx, pool, dest, len, mode)?;
    if let Err(e) = fill_volume(ctx, pool, local, dest, &mut |_| {}) {
        return Err(match unplace(ctx, dest, route) {
            Ok(()) => e,
            Err(left) => e.context(format!("and {} is left: {left:#}", dest.display())),
        });
    }
    Ok(())
}

/// The volume of `pool` that will hold `dest`: `len` bytes, raw, `mode`,
/// made by libvirt (shielded: a Ctrl-C cannot leave one made but not
/// known).
fn make_volume(ctx: &Ctx, pool: &str, dest: &Path, len: u64, mode: u32) -> Result<()> {
    let name = dest.file_name().unwrap_or_default().to_string_lossy();
    ctx.try_libvirt(
        &ctx.virsh
            .vol_create_stdin(pool, &crate::tools::virsh::volume_xml(&name, len, mode))
            .shielded(),
    )
    .map(|_| ())
    .map_err(|e| ctx.libvirt_error(e))
    .with_context(|| format!("making the volume {name} in libvirt's pool {pool}"))
}

/// Fill the volume at `dest` with `local`, sent by libvirt over its own
/// connection, `sent` told the bytes so far.
fn fill_volume(
    ctx: &Ctx,
    pool: &str,
    local: &Path,
    dest: &Path,
    sent: &mut dyn FnMut(u64),
) -> Result<()> {
    let name = dest.file_name().unwrap_or_default().to_string_lossy();
    ctx.libvirt_upload(&ctx.virsh.vol_upload_stdin(pool, &name), local, sent)
        .context("libvirt's vol-upload failed")
}

/// Remove what [`place`] put at `dest` (for a pool, through libvirt).
pub fn unplace(ctx: &Ctx, dest: &Path, route: &Route) -> Result<()> {
    match route {
        Route::Direct => ctx
            .host
            .remove_file(dest)
            .with_context(|| format!("removing {}", dest.display())),
        Route::Pool(_) => ctx
            .try_libvirt(&ctx.virsh.vol_delete(&dest.display().to_string()).shielded())
            .map(|_| ())
            .map_err(|e| ctx.libvirt_error(e))
            .with_context(|| format!("deleting the volume {}", dest.display())),
    }
}

/// A medium of this machine on its way to the host.
struct Sending<'a> {
    ctx: &'a Ctx,
    local: &'a Path,
    file: String,
    len: u64,
    sha: String,
    dest: PathBuf,
}

/// Where the host finds `local` (an ISO of this machine): itself when the
/// host is this machine; else the copy in `images` on the host, sent now
/// (by `route`) unless the same file (by SHA-256) is there already.
pub fn on_host(ctx: &Ctx, local: &Path, images: &Path, route: &Route) -> Result<PathBuf> {
    if ctx.uri.ssh().is_none() {
        return Ok(local.to_path_buf());
    }
    let file = local
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (len, sha) = checksum(ctx, local, &file)?;
    crate::interrupt::check()?;
    let dest = images.join(upload_name(&file, &sha));
    let m = Sending {
        ctx,
        local,
        file,
        len,
        sha,
        dest,
    };
    if m.already_there(route)? {
        return Ok(m.dest);
    }
    let started = Instant::now();
    match route {
        Route::Direct => m.by_ssh(images)?,
        Route::Pool(pool) => m.by_pool(pool)?,
    }
    ctx.ui.step(
        "uploaded",
        &format!(
            "{} → {}:{} ({}, {}; kept for the next VM)",
            m.file,
            m.host(),
            m.dest.display(),
            human(m.len),
            ui::secs(started.elapsed())
        ),
    );
    Ok(m.dest)
}

/// The length and SHA-256 of `local` (named `file`), with a bar.
fn checksum(ctx: &Ctx, local: &Path, file: &str) -> Result<(u64, String)> {
    let len = ctx
        .local
        .len(local)
        .with_context(|| format!("reading {}", local.display()))?;
    let bar = ctx.ui.bytes_bar(&format!("checksumming {file}"), Some(len));
    let sha = ctx.local.sha256(local, &mut |n| bar.set_position(n));
    bar.finish_and_clear();
    Ok((len, sha?))
}

impl Sending<'_> {
    /// Whether the host has this medium already at its destination. A
    /// file under that name was checked when it was sent; it is hashed
    /// again here, so a copy changed on the host since is not used: sent
    /// again, or, in a pool (not bkt's to delete), refused.
    fn already_there(&self, route: &Route) -> Result<bool> {
        let (ctx, host, file, dest) = (self.ctx, self.host(), &self.file, &self.dest);
        let Ok(st) = ctx.host.stat(dest) else {
            return Ok(false);
        };
        let same = st.kind == Kind::File && st.len == self.len && {
            let spinner = ctx
                .ui
                .spinner(&format!("checking {} on {host}", dest.display()));
            let theirs = ctx.host.sha256(dest);
            spinner.clear();
            // A copy that cannot be read is not one that differs.
            theirs.with_context(|| {
                format!("cannot check {host}:{}, a copy of {file}", dest.display())
            })? == self.sha
        };
        if same {
            ctx.ui.step(
                "on host",
                &format!(
                    "{file}: {host}:{} has the same SHA-256; not sent again",
                    dest.display()
                ),
            );
            return Ok(true);
        }
        if let Route::Pool(_) = route {
            // Not bkt's to delete: libvirt would, for anyone.
            return Err(anyhow!(
                "{host}:{} is there but is not {file} (changed on the host, or still being sent)",
                dest.display()
            ))
            .hint(format!(
                "if no other bkt is sending it, remove it: {}",
                ctx.virsh.vol_delete(&dest.display().to_string()).display()
            ));
        }
        ctx.ui.step(
            "changed",
            &format!(
                "{file}: {host}:{} is not the same file any more; sending it again",
                dest.display()
            ),
        );
        Ok(false)
    }

    fn host(&self) -> &str {
        self.ctx.uri.ssh().map_or("", |t| t.host.as_str())
    }

    /// A bar of the bytes sent (on a terminal), else a line saying so.
    fn bar(&self) -> indicatif::ProgressBar {
        let bar = self.ctx.ui.bytes_bar(
            &format!("uploading {} to {}", self.file, self.host()),
            Some(self.len),
        );
        if bar.is_hidden() {
            self.ctx.ui.note(format_args!(
                "uploading {} ({}) to {}:{} …",
                self.file,
                human(self.len),
                self.host(),
                self.dest.display()
            ));
        }
        bar
    }

    /// Whether the copy at `there` on the host is the file sent.
    fn check(&self, there: &Path) -> Result<()> {
        let spinner = self
            .ctx
            .ui
            .spinner(&format!("checking the copy on {}", self.host()));
        let theirs = self.ctx.host.sha256(there);
        spinner.clear();
        let theirs = theirs?;
        if theirs == self.sha {
            Ok(())
        } else {
            Err(anyhow!(
                "the copy on {} is not the file sent (SHA-256 {theirs}, not {})",
                self.host(),
                self.sha
            ))
        }
    }

    /// Over ssh into `images`, as a temporary file renamed once checked.
    fn by_ssh(&self, images: &Path) -> Result<()> {
        let tag: [u8; 4] = self.ctx.local.random_bytes()?;
        let tag: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        let part = images.join(format!(
            ".{}.{tag}.part",
            self.dest.file_name().unwrap_or_default().to_string_lossy()
        ));
        let bar = self.bar();
        let sent = self
            .ctx
            .host
            .send_new(self.local, &part, 0o644, &mut |n| bar.set_position(n));
        bar.finish_and_clear();
        // send_new leaves nothing when it fails, or says what it left.
        sent.map_err(|e| {
            let left = e
                .downcast_ref::<LeftBehind>()
                .map(|l| (l.path.clone(), l.why.clone(), self.rm_there(&l.path)));
            match left {
                Some(left) => self.failed(e, Err(left)),
                None => self.failed(e, Ok(())),
            }
        })?;
        let published = crate::interrupt::check()
            .and_then(|()| self.check(&part))
            .and_then(|()| {
                self.ctx
                    .host
                    .rename(&part, &self.dest)
                    .with_context(|| format!("naming the copy {}", self.dest.display()))
            });
        published.map_err(|e| {
            let removed = self
                .ctx
                .host
                .remove_file(&part)
                .map_err(|c| (part.clone(), c.to_string(), self.rm_there(&part)));
            self.failed(e, removed)
        })
    }

    /// The command that removes `left` on the host.
    fn rm_there(&self, left: &Path) -> String {
        // The URI's own ways in: its port, key and known hosts, so the
        // printed command works as printed.
        let (opts, t) = match self.ctx.uri.ssh() {
            Some(t) => {
                let mut o = String::new();
                if let Some(p) = t.port {
                    o.push_str(&format!(" -p {p}"));
                }
                if let Some(k) = &t.keyfile {
                    o.push_str(&format!(" -i {}", shell_quote(k)));
                }
                if let Some(k) = &t.known_hosts {
                    o.push_str(&format!(
                        " -o {}",
                        shell_quote(&format!("UserKnownHostsFile={k}"))
                    ));
                }
                (o, t.destination())
            }
            None => Default::default(),
        };
        format!(
            "ssh{opts} {t} rm -- {}",
            shell_quote(&left.display().to_string())
        )
    }

    /// The error of a failed upload, saying whether anything of it is left
    /// on the host: `removed` is the clean-up's outcome, or what is left,
    /// why it stayed, and the command that removes it.
    fn failed(
        &self,
        err: anyhow::Error,
        removed: std::result::Result<(), (PathBuf, String, String)>,
    ) -> anyhow::Error {
        let host = self.host();
        match removed {
            Ok(()) => err.context(format!(
                "uploading {} to {host} failed; nothing of it is left there",
                self.file
            )),
            Err((left, why, fix)) => Err::<(), _>(err.context(format!(
                "uploading {} to {host} failed, and its partial copy {} is left there ({why})",
                self.file,
                left.display()
            )))
            .hint(format!("remove it: {fix}"))
            .unwrap_err(),
        }
    }

    /// Through libvirt: a volume of `pool` made, filled and checked; one
    /// that is not right is deleted again.
    fn by_pool(&self, pool: &str) -> Result<()> {
        make_volume(self.ctx, pool, &self.dest, self.len, 0o644)
            .map_err(|e| self.failed(e, Ok(())))?;
        let bar = self.bar();
        let filled = fill_volume(self.ctx, pool, self.local, &self.dest, &mut |n| {
            bar.set_position(n)
        });
        bar.finish_and_clear();
        let checked = filled
            .and_then(|()| crate::interrupt::check())
            .and_then(|()| self.check(&self.dest));
        checked.map_err(|e| {
            // libvirt 11.3 deletes a volume even while an upload into it
            // is still open (tried).
            let removed = unplace(self.ctx, &self.dest, &Route::Pool(pool.into())).map_err(|why| {
                (
                    self.dest.clone(),
                    format!("{why:#}"),
                    self.ctx
                        .virsh
                        .vol_delete(&self.dest.display().to_string())
                        .display(),
                )
            });
            self.failed(e, removed)
        })
    }
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
    ctx.libvirt(&ctx.virsh.change_media(name, &d.target, None, live))
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
