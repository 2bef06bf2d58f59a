//! Whether QEMU can open the media `create` attaches. For `qemu:///system`,
//! QEMU runs as a user of its own (`libvirt-qemu` on Debian, `qemu` on
//! Fedora), so an ISO under a 0700 home directory (Fedora's default) cannot
//! be opened, and virt-install fails half-way with "Permission denied".
//! This finds QEMU's user from libvirt, checks search permission on every
//! directory above a file and read permission on the file, by mode bits and
//! POSIX ACLs, and grants what is missing with ACLs, as virt-manager does:
//! `checks::qemu_access` decides and returns a [`GrantPlan`], [`grant`]
//! carries it out with the user's consent.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::exec::Cmd;
use crate::tools::acl::{self, Who};
use crate::tools::virsh;
use crate::ui::Check;
use crate::vm::ctx::Ctx;

/// The label of the check, in preflight's list.
pub const ACCESS: &str = "QEMU access";

/// Whether the QEMU access check may change permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// No: report what is missing and the command that fixes it.
    Never,
    /// `--dry-run`: say what a real run would ask to grant (a warning).
    DryRun,
    /// Ask on the terminal.
    Ask,
    /// Yes (`--yes`).
    Yes,
}

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

/// What `who` lacks to open any of `media`, each path once.
pub fn missing_all(ctx: &Ctx, who: &Who, media: &[&Path]) -> Result<Vec<Missing>> {
    let mut all: Vec<Missing> = Vec::new();
    for m in media {
        for f in missing(ctx, who, m)? {
            if !all.iter().any(|x| x.path == f.path) {
                all.push(f);
            }
        }
    }
    Ok(all)
}

/// What QEMU's user lacks to open the media, and the ACL entries that
/// would give it: what `checks::qemu_access` found, for [`grant`] to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantPlan {
    pub user: QemuUser,
    /// The media QEMU opens: looked at again once granted.
    pub media: Vec<PathBuf>,
    /// Each path, the entry it needs (`x` or `r`) and why (its mode).
    pub missing: Vec<Missing>,
}

impl GrantPlan {
    /// What is wrong: `libvirt-qemu (QEMU's user) cannot open the ISOs:
    /// /home/anna is 0700`.
    pub fn what(&self) -> String {
        let why = self
            .missing
            .iter()
            .map(|m| format!("{} is {:04o}", m.path.display(), m.mode))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "{} (QEMU's user) cannot open the ISOs: {why}",
            self.user.name
        )
    }

    /// One `setfacl -m u:UID:PERM PATH` per path: by uid, right whatever
    /// the local name of QEMU's user.
    pub fn commands(&self) -> Vec<Cmd> {
        self.missing
            .iter()
            .map(|m| {
                acl::grant(
                    &self.user.who.uid.to_string(),
                    m.perm,
                    &m.path.display().to_string(),
                )
            })
            .collect()
    }

    /// Whether `euid` may grant it all: root, or the owner of every path.
    pub fn may(&self, euid: u32) -> bool {
        euid == 0 || self.missing.iter().all(|m| m.owner == euid)
    }

    /// The commands for the user to run (under sudo when they may not
    /// grant it themselves), or where else the ISOs could go.
    pub fn fix(&self, sudo: bool) -> String {
        let sudo = if sudo { "sudo " } else { "" };
        format!(
            "{}; or move the ISOs to a directory QEMU can read, such as {}",
            self.commands()
                .iter()
                .map(|c| format!("{sudo}{}", c.display()))
                .collect::<Vec<_>>()
                .join(" && "),
            "/var/lib/libvirt/images"
        )
    }

    /// What was granted, for the check: `search on /home/anna, read on ...`.
    fn granted(&self) -> String {
        self.missing
            .iter()
            .map(|m| {
                format!(
                    "{} on {}",
                    if m.perm == "x" { "search" } else { "read" },
                    m.path.display()
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Carry out `plan` as `grant` allows: with `--dry-run` say a real run
/// would ask, on a terminal ask first, with `--yes` just do it; then look
/// again, since granted is what the file system says, not what setfacl
/// said.
pub fn grant(ctx: &Ctx, plan: &GrantPlan, grant: Grant) -> Check {
    let what = plan.what();
    let fix = plan.fix(false);
    let consent = match grant {
        Grant::DryRun => {
            return Check::warn(ACCESS, format!("{what}; a real run asks to grant it")).fix(fix);
        }
        Grant::Never => false,
        Grant::Yes => true,
        Grant::Ask => ask(&ctx.ui, plan, &what),
    };
    if !consent {
        return Check::fail(ACCESS, what).fix(fix);
    }
    for c in &plan.commands() {
        if let Err(e) = ctx.local.exec(c) {
            return Check::fail(ACCESS, format!("{what}; granting it failed: {e}")).fix(fix);
        }
    }
    let still: Vec<String> = plan
        .media
        .iter()
        .flat_map(|m| missing(ctx, &plan.user.who, m).unwrap_or_default())
        .map(|m| m.path.display().to_string())
        .collect();
    if !still.is_empty() {
        return Check::fail(
            ACCESS,
            format!(
                "{what}; after setfacl {} still cannot: {}",
                plan.user.name,
                still.join(", ")
            ),
        )
        .fix(fix);
    }
    Check::pass(
        ACCESS,
        format!("granted {} {} (setfacl)", plan.user.name, plan.granted()),
    )
}

/// The user's consent on the terminal, after saying what is wrong.
fn ask(ui: &crate::ui::Ui, plan: &GrantPlan, what: &str) -> bool {
    ui.line(format_args!("  {what}"));
    dialoguer::Confirm::new()
        .with_prompt(format!(
            "  Let {} search these directories (an ACL entry, as virt-manager adds)?",
            plan.user.name
        ))
        .default(true)
        .interact()
        .unwrap_or(false)
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

    fn plan() -> GrantPlan {
        GrantPlan {
            user: QemuUser {
                name: "libvirt-qemu".into(),
                who: Who {
                    uid: 64055,
                    gids: vec![64055],
                },
            },
            media: vec![PathBuf::from("/home/anna/Win11.iso")],
            missing: vec![
                Missing {
                    path: PathBuf::from("/home/anna"),
                    perm: "x",
                    mode: 0o700,
                    owner: 1000,
                },
                Missing {
                    path: PathBuf::from("/home/anna/Win11.iso"),
                    perm: "r",
                    mode: 0o600,
                    owner: 1000,
                },
            ],
        }
    }

    #[test]
    fn a_grant_plan_says_what_is_missing_and_the_acl_entries_that_give_it() {
        let p = plan();
        assert_eq!(
            p.what(),
            "libvirt-qemu (QEMU's user) cannot open the ISOs: /home/anna is 0700, \
             /home/anna/Win11.iso is 0600"
        );
        let argv: Vec<String> = p.commands().iter().map(|c| c.display()).collect();
        assert_eq!(
            argv,
            [
                "setfacl -m u:64055:x /home/anna",
                "setfacl -m u:64055:r /home/anna/Win11.iso"
            ]
        );
        assert_eq!(
            p.granted(),
            "search on /home/anna, read on /home/anna/Win11.iso"
        );
        assert_eq!(
            p.fix(true),
            "sudo setfacl -m u:64055:x /home/anna && sudo setfacl -m u:64055:r \
             /home/anna/Win11.iso; or move the ISOs to a directory QEMU can read, such as \
             /var/lib/libvirt/images"
        );
        assert!(
            p.fix(false)
                .starts_with("setfacl -m u:64055:x /home/anna && setfacl")
        );
    }

    #[test]
    fn only_the_owner_of_every_path_or_root_may_grant() {
        let mut p = plan();
        assert!(p.may(1000));
        assert!(p.may(0));
        assert!(!p.may(1001));
        p.missing[1].owner = 0;
        assert!(!p.may(1000), "the file is root's");
    }

    #[test]
    fn without_consent_nothing_is_run_and_the_check_fails_with_the_fix() {
        let ctx = Ctx::for_tests();
        let p = plan();
        let c = grant(&ctx, &p, Grant::Never);
        assert_eq!(c.level, crate::ui::Level::Fail);
        assert_eq!(c.detail, p.what());
        assert_eq!(c.fix.as_deref(), Some(p.fix(false).as_str()));
        let c = grant(&ctx, &p, Grant::DryRun);
        assert_eq!(c.level, crate::ui::Level::Warn);
        assert_eq!(
            c.detail,
            format!("{}; a real run asks to grant it", p.what())
        );
    }
}
