//! Whether QEMU can open the media `create` attaches. For `qemu:///system`,
//! QEMU runs as a user of its own (`libvirt-qemu` on Debian, `qemu` on
//! Fedora), so an ISO under a 0700 home directory (Fedora's default) cannot
//! be opened, and virt-install fails half-way with "Permission denied".
//! This finds QEMU's user from libvirt, checks search permission on every
//! directory above a file and read permission on the file, by mode bits and
//! POSIX ACLs, and grants what is missing with ACLs, as virt-manager does.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::tools::acl::{self, Who};
use crate::tools::virsh;
use crate::vm::ctx::Ctx;

/// The account QEMU runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuUser {
    /// Its name (or its uid, when the local user database lacks it).
    pub name: String,
    pub who: Who,
}

/// One permission QEMU's user lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub path: PathBuf,
    /// `x` (search a directory) or `r` (read a file), in setfacl's words.
    pub perm: &'static str,
    /// The mode, for the message (`/home/anna is 0700`).
    pub mode: u32,
    /// Who may grant it: the owner (or root).
    pub owner: u32,
}

/// QEMU's user for the connection, when it is another user on this
/// machine: only `qemu:///system` runs QEMU as a user of its own. Its groups
/// are what libvirt gives the process: the label's group and the groups
/// that list the user as a member (`getgrouplist`).
pub fn qemu_user(ctx: &Ctx) -> Result<Option<QemuUser>> {
    if !ctx.uri.is_local_system() {
        return Ok(None);
    }
    let caps = ctx
        .libvirt_out(&ctx.virsh.capabilities())
        .context("asking libvirt which user QEMU runs as")?;
    let Some((uid, gid)) = virsh::parse_dac_label(&caps)? else {
        return Ok(None);
    };
    let (passwd, groups) = ctx.host.accounts();
    let name = passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
        })
        .unwrap_or_else(|| uid.to_string());
    let mut gids = vec![gid];
    for l in groups.lines() {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() == 4
            && f[3].split(',').any(|m| m == name)
            && let Ok(g) = f[2].parse::<u32>()
            && !gids.contains(&g)
        {
            gids.push(g);
        }
    }
    Ok(Some(QemuUser {
        name,
        who: Who { uid, gids },
    }))
}

/// What `who` lacks to open `file`: search on each directory above it (of
/// the path as given and, for a symlink, of where it leads), read on the
/// file. Directories that do not exist yet are skipped.
pub fn missing(ctx: &Ctx, who: &Who, file: &Path) -> Result<Vec<Missing>> {
    let host = &ctx.host;
    let mut out: Vec<Missing> = Vec::new();
    let mut paths = vec![file.to_path_buf()];
    if let Ok(real) = host.canonicalize(file)
        && real != file
    {
        paths.push(real);
    }
    for p in &paths {
        let mut dirs: Vec<&Path> = p.ancestors().skip(1).collect();
        dirs.reverse();
        for d in dirs {
            if !host.exists(d) || out.iter().any(|m| m.path == d) {
                continue;
            }
            let pm = host.perms(d)?;
            if !acl::allows(&pm, who, 1) {
                out.push(Missing {
                    path: d.to_path_buf(),
                    perm: "x",
                    mode: pm.mode,
                    owner: pm.uid,
                });
            }
        }
    }
    if host.exists(file) {
        let pm = host.perms(file)?;
        if !acl::allows(&pm, who, 4) {
            out.push(Missing {
                path: file.to_path_buf(),
                perm: "r",
                mode: pm.mode,
                owner: pm.uid,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    // why: tests read fixtures and set up the files and processes they look at.
    #![allow(clippy::disallowed_methods, clippy::disallowed_types)]

    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn finds_the_closed_directory_and_the_unreadable_file() {
        let d = tempfile::tempdir().unwrap();
        let home = d.path().join("home");
        let dl = home.join("Downloads");
        fs::create_dir_all(&dl).unwrap();
        let iso = dl.join("Win11.iso");
        fs::write(&iso, "x").unwrap();
        fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
        fs::set_permissions(&dl, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&iso, fs::Permissions::from_mode(0o600)).unwrap();
        // Someone who owns nothing here.
        let who = Who {
            uid: 4_000_000,
            gids: vec![4_000_000],
        };
        let ctx = Ctx::for_tests();
        let m = missing(&ctx, &who, &iso).unwrap();
        let got: Vec<(PathBuf, &str, u32)> =
            m.iter().map(|m| (m.path.clone(), m.perm, m.mode)).collect();
        assert_eq!(got, [(home.clone(), "x", 0o700), (iso.clone(), "r", 0o600)]);
        // Not there yet: nothing to check but the directories that are.
        let later = dl.join("virtio-win.iso");
        assert_eq!(missing(&ctx, &who, &later).unwrap().len(), 1);
        // A symlink into the closed directory needs it too.
        let open = d.path().join("open");
        fs::create_dir_all(&open).unwrap();
        let link = open.join("w.iso");
        std::os::unix::fs::symlink(&iso, &link).unwrap();
        fs::set_permissions(&iso, fs::Permissions::from_mode(0o644)).unwrap();
        let via_link: Vec<PathBuf> = missing(&ctx, &who, &link)
            .unwrap()
            .into_iter()
            .map(|m| m.path)
            .collect();
        assert_eq!(via_link, [home]);
    }
}
