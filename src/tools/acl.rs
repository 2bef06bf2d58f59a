//! POSIX permissions for another user: whether QEMU's user may search a
//! directory or read a file, from the mode bits and the POSIX ACL (the
//! `system.posix_acl_access` attribute, whose binary layout the kernel
//! defines in `include/uapi/linux/posix_acl_xattr.h`), and the `setfacl`
//! argv that grants what is missing, as virt-manager does.

use anyhow::{Result, bail};

use crate::exec::Cmd;

/// The name of the extended attribute that holds a file's access ACL.
pub const ACCESS_XATTR: &str = "system.posix_acl_access";

const XATTR_VERSION: u32 = 2;
const USER: u16 = 0x02;
const GROUP_OBJ: u16 = 0x04;
const GROUP: u16 = 0x08;
const MASK: u16 = 0x10;
const OTHER: u16 = 0x20;

/// One ACL entry: a tag, the permission bits (r=4, w=2, x=1) and, for
/// named users and groups, the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub tag: u16,
    pub perm: u16,
    pub id: u32,
}

/// Parse the value of [`ACCESS_XATTR`].
pub fn parse_xattr(bytes: &[u8]) -> Result<Vec<Entry>> {
    if bytes.len() < 4 || !(bytes.len() - 4).is_multiple_of(8) {
        bail!("a POSIX ACL of {} bytes is malformed", bytes.len());
    }
    let version = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
    if version != XATTR_VERSION {
        bail!("POSIX ACL version {version} is unknown");
    }
    Ok(bytes[4..]
        .chunks_exact(8)
        .map(|c| Entry {
            tag: u16::from_le_bytes([c[0], c[1]]),
            perm: u16::from_le_bytes([c[2], c[3]]),
            id: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

/// A user as the kernel checks it: its uid, primary group and the
/// supplementary groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    pub uid: u32,
    pub gids: Vec<u32>,
}

/// What a file says about access: owner, group, mode, and its ACL (empty
/// when it has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Perms {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub acl: Vec<Entry>,
}

/// Whether `who` has every bit of `want` (4 read, 1 search/execute), by
/// the POSIX.1e access check algorithm (`acl(5)`, "ACCESS CHECK ALGORITHM").
/// Root is not special-cased here: QEMU's user never is root.
pub fn allows(p: &Perms, who: &Who, want: u16) -> bool {
    let has = |perm: u16| perm & want == want;
    let mode = |shift: u32| ((p.mode >> shift) & 7) as u16;
    if who.uid == p.uid {
        return has(mode(6));
    }
    if p.acl.is_empty() {
        if who.gids.contains(&p.gid) {
            return has(mode(3));
        }
        return has(mode(0));
    }
    let mask = p
        .acl
        .iter()
        .find(|e| e.tag == MASK)
        .map(|e| e.perm)
        .unwrap_or(7);
    if let Some(e) = p.acl.iter().find(|e| e.tag == USER && e.id == who.uid) {
        return has(e.perm & mask);
    }
    let groups: Vec<&Entry> = p
        .acl
        .iter()
        .filter(|e| {
            (e.tag == GROUP_OBJ && who.gids.contains(&p.gid))
                || (e.tag == GROUP && who.gids.contains(&e.id))
        })
        .collect();
    if !groups.is_empty() {
        return groups.iter().any(|e| has(e.perm & mask));
    }
    let other = p
        .acl
        .iter()
        .find(|e| e.tag == OTHER)
        .map(|e| e.perm)
        .unwrap_or(mode(0));
    has(other)
}

/// `setfacl -m u:USER:PERM PATH`: add one named-user entry, keeping the
/// rest of the ACL. `perm` is `x` for a directory, `r` for a file.
pub fn grant(user: &str, perm: &str, path: &str) -> Cmd {
    Cmd::new("setfacl")
        .arg("-m")
        .arg(format!("u:{user}:{perm}"))
        .arg(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER_OBJ: u16 = 0x01;

    fn xattr(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut v = XATTR_VERSION.to_le_bytes().to_vec();
        for (tag, perm, id) in entries {
            v.extend(tag.to_le_bytes());
            v.extend(perm.to_le_bytes());
            v.extend(id.to_le_bytes());
        }
        v
    }

    const QEMU: u32 = 64055;

    fn qemu() -> Who {
        Who {
            uid: QEMU,
            gids: vec![QEMU, 994],
        }
    }

    fn dir(mode: u32, acl: Vec<Entry>) -> Perms {
        Perms {
            uid: 1000,
            gid: 1000,
            mode,
            acl,
        }
    }

    #[test]
    fn mode_bits_alone() {
        assert!(!allows(&dir(0o700, vec![]), &qemu(), 1));
        assert!(allows(&dir(0o711, vec![]), &qemu(), 1));
        assert!(!allows(&dir(0o711, vec![]), &qemu(), 4));
        // The group's bits count for a member, not the other bits.
        let mut p = dir(0o750, vec![]);
        assert!(!allows(&p, &qemu(), 1));
        p.gid = 994;
        assert!(allows(&p, &qemu(), 1));
        p.mode = 0o701;
        assert!(!allows(&p, &qemu(), 1), "group bits win over other");
        // The owner's bits for the owner.
        let own = Perms {
            uid: QEMU,
            ..dir(0o100, vec![])
        };
        assert!(allows(&own, &qemu(), 1));
    }

    /// What `setfacl -m u:libvirt-qemu:x` leaves on a 0700 directory
    /// (getfacl: user::rwx, user:libvirt-qemu:--x, group::---, mask::--x,
    /// other::---).
    #[test]
    fn a_named_user_entry_within_the_mask() {
        let acl = parse_xattr(&xattr(&[
            (USER_OBJ, 7, u32::MAX),
            (USER, 1, QEMU),
            (GROUP_OBJ, 0, u32::MAX),
            (MASK, 1, u32::MAX),
            (OTHER, 0, u32::MAX),
        ]))
        .unwrap();
        assert_eq!(acl.len(), 5);
        assert!(allows(&dir(0o710, acl.clone()), &qemu(), 1));
        // The same entry, masked out.
        let masked: Vec<Entry> = acl
            .iter()
            .map(|e| {
                if e.tag == MASK {
                    Entry { perm: 0, ..*e }
                } else {
                    *e
                }
            })
            .collect();
        assert!(!allows(&dir(0o700, masked), &qemu(), 1));
        // Another user's entry does nothing for QEMU.
        let other_user = parse_xattr(&xattr(&[
            (USER_OBJ, 7, u32::MAX),
            (USER, 1, 1234),
            (GROUP_OBJ, 0, u32::MAX),
            (MASK, 1, u32::MAX),
            (OTHER, 0, u32::MAX),
        ]))
        .unwrap();
        assert!(!allows(&dir(0o710, other_user), &qemu(), 1));
    }

    #[test]
    fn named_groups_and_other_in_an_acl() {
        let acl = parse_xattr(&xattr(&[
            (USER_OBJ, 7, u32::MAX),
            (GROUP_OBJ, 0, u32::MAX),
            (GROUP, 5, 994),
            (MASK, 5, u32::MAX),
            (OTHER, 0, u32::MAX),
        ]))
        .unwrap();
        assert!(allows(&dir(0o750, acl.clone()), &qemu(), 1));
        assert!(allows(&dir(0o750, acl), &qemu(), 4));
        let only_other = parse_xattr(&xattr(&[
            (USER_OBJ, 7, u32::MAX),
            (GROUP_OBJ, 0, u32::MAX),
            (GROUP, 0, 4242),
            (MASK, 0, u32::MAX),
            (OTHER, 1, u32::MAX),
        ]))
        .unwrap();
        assert!(allows(&dir(0o701, only_other), &qemu(), 1));
    }

    /// The attribute `setfacl -m u:64055:x` (acl 2.3.1) left on a 0700
    /// directory (it is 0710 then: the group bits show the mask).
    #[test]
    fn a_real_acl_from_setfacl() {
        let acl = parse_xattr(include_bytes!("../../fixtures/acl/dir-0700-qemu-x.bin")).unwrap();
        let p = Perms {
            uid: 0,
            gid: 0,
            mode: 0o710,
            acl,
        };
        assert!(allows(&p, &qemu(), 1));
        assert!(!allows(&p, &qemu(), 4));
        let someone = Who {
            uid: 1000,
            gids: vec![1000],
        };
        assert!(!allows(&p, &someone, 1));
    }

    #[test]
    fn malformed_acls_are_errors() {
        assert!(parse_xattr(&[2, 0, 0]).is_err());
        assert!(parse_xattr(&[1, 0, 0, 0]).is_err());
        assert!(parse_xattr(&xattr(&[(USER_OBJ, 7, 0)])[..7]).is_err());
    }

    #[test]
    fn setfacl_argv() {
        assert_eq!(
            grant("libvirt-qemu", "x", "/home/anna").display(),
            "setfacl -m u:libvirt-qemu:x /home/anna"
        );
    }
}
