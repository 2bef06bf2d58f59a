//! Names and addresses as types, validated once where they enter (clap's
//! value parsers): a [`VmName`] is safe in a file name, in a virsh command
//! string and in a shell; a [`Uri`] knows whether libvirt is on this
//! machine and whether it is the system or the session instance.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;

/// 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit.
static NAME_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$").expect("static regex"));

const NAME_RULE: &str =
    "use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit";

macro_rules! name_type {
    ($(#[$doc:meta])* $t:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $t(String);

        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                if NAME_RE.is_match(s) {
                    Ok($t(s.to_string()))
                } else {
                    Err(format!(concat!("invalid ", $what, " {:?}: {}"), s, NAME_RULE))
                }
            }
        }

        impl $t {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $t {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(
    /// A VM's name as bkt accepts it (libvirt accepts more).
    VmName,
    "VM name"
);
name_type!(
    /// A snapshot's name.
    SnapName,
    "snapshot name"
);

/// A libvirt connection URI: `qemu:///system`, `qemu:///session`,
/// `qemu+ssh://anna@server/system?keyfile=...`, `test:///default`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    raw: String,
    /// `qemu` of `qemu+ssh`.
    driver: String,
    /// `ssh` of `qemu+ssh`.
    transport: Option<String>,
    /// The host part (without `user@` and `:port`), empty for this machine.
    host: String,
    /// `/system`, `/session`, `/default`.
    path: String,
}

impl FromStr for Uri {
    type Err = String;
    fn from_str(s: &str) -> Result<Uri, String> {
        let bad = || {
            format!(
                "invalid libvirt URI {s:?}: expected e.g. qemu:///system or qemu+ssh://user@host/system"
            )
        };
        if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad());
        }
        let (scheme, rest) = s.split_once("://").ok_or_else(bad)?;
        let (driver, transport) = match scheme.split_once('+') {
            Some((d, t)) => (d, Some(t.to_string())),
            None => (scheme, None),
        };
        if driver.is_empty()
            || !driver
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(bad());
        }
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let host = authority.rsplit('@').next().unwrap_or_default();
        let host = match host.strip_prefix('[') {
            // [IPv6]:port
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => host.split(':').next().unwrap_or_default(),
        };
        Ok(Uri {
            raw: s.to_string(),
            driver: driver.to_string(),
            transport,
            host: host.to_string(),
            path: path.trim_end_matches('/').to_string(),
        })
    }
}

impl Uri {
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// libvirt runs on this machine (no host, no transport).
    pub fn is_local(&self) -> bool {
        self.host.is_empty() && self.transport.is_none()
    }

    /// QEMU's system instance (`qemu:///system`, or on another host).
    pub fn is_system(&self) -> bool {
        self.driver == "qemu" && self.path == "/system"
    }

    /// QEMU's per-user instance.
    pub fn is_session(&self) -> bool {
        self.driver == "qemu" && self.path == "/session"
    }

    /// QEMU runs as a user of its own (`libvirt-qemu`, `qemu`) on this
    /// machine: what the media access check is about.
    pub fn is_local_system(&self) -> bool {
        self.is_local() && self.is_system()
    }
}

impl std::ops::Deref for Uri {
    type Target = str;
    fn deref(&self) -> &str {
        &self.raw
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["windows", "Win11", "w", "a.b_c-d", &"x".repeat(64)] {
            assert!(ok.parse::<VmName>().is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-rf",
            ".hidden",
            "win 11",
            "a;b",
            "a/b",
            "ä",
            "$(x)",
            &"x".repeat(65),
        ] {
            assert!(bad.parse::<VmName>().is_err(), "{bad}");
        }
        assert_eq!(
            "a;b".parse::<SnapName>().unwrap_err(),
            "invalid snapshot name \"a;b\": use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        );
        let n: VmName = "windows".parse().unwrap();
        assert_eq!(format!("{n}"), "windows");
        assert!(n.starts_with("win"));
    }

    #[test]
    fn uris() {
        let u: Uri = "qemu:///system".parse().unwrap();
        assert!(u.is_local() && u.is_system() && u.is_local_system() && !u.is_session());
        assert_eq!(u.host, "");
        let u: Uri = "qemu:///session".parse().unwrap();
        assert!(u.is_local() && u.is_session() && !u.is_local_system());
        let u: Uri = "qemu+ssh://anna@server.lan:2222/system?keyfile=/k&no_verify=1"
            .parse()
            .unwrap();
        assert!(!u.is_local() && u.is_system() && !u.is_local_system());
        assert_eq!(u.host, "server.lan");
        let u: Uri = "qemu+ssh://root@[::1]:22/system".parse().unwrap();
        assert_eq!(u.host, "::1");
        let u: Uri = "qemu+tcp://server/system/".parse().unwrap();
        assert!(u.is_system());
        let u: Uri = "__virtinst_test__test:///default,caps=/x".parse().unwrap();
        assert!(u.is_local() && !u.is_system());
        for bad in ["", "system", "qemu:/system", "qemu:///sys tem", "://x"] {
            assert!(bad.parse::<Uri>().is_err(), "{bad}");
        }
    }
}
