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
    /// How to reach the host over ssh (`qemu+ssh` only).
    ssh: Option<SshTarget>,
}

/// The ssh parts of a `qemu+ssh://[user@]host[:port]/system?keyfile=...`
/// URI, each safe to hand to `ssh` as the value of an option: nothing here
/// starts with '-' or holds a control character or a space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    /// `keyfile=PATH`: the private key (`ssh -i`).
    pub keyfile: Option<String>,
    /// `known_hosts=PATH`: the host keys to trust (`UserKnownHostsFile`).
    pub known_hosts: Option<String>,
    /// `no_verify=1`: accept a host key not seen before, as libvirt does
    /// (`StrictHostKeyChecking=no`).
    pub no_verify: bool,
}

impl SshTarget {
    /// `user@host` or `host`, for messages and the fix lines.
    pub fn destination(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        }
    }
}

/// `%XX` escapes decoded (libvirt URIs escape a query value that way).
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The ssh parts of a URI's authority (`user@host:port`) and query.
fn parse_ssh(authority: &str, query: &str) -> Result<SshTarget, String> {
    // A value ssh could take for an option of its own, or that a control
    // character could split: never passed on.
    let unsafe_word =
        |w: &str| w.starts_with('-') || w.chars().any(|c| c.is_control() || c.is_whitespace());
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (host, port) = match hostport.strip_prefix('[') {
        Some(v6) => {
            let (h, rest) = v6
                .split_once(']')
                .ok_or("an IPv6 address needs its closing ']'")?;
            (h, rest.strip_prefix(':'))
        }
        None => match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        },
    };
    if host.is_empty() {
        return Err("a qemu+ssh URI needs a host (qemu+ssh://user@host/system)".into());
    }
    if unsafe_word(host) || host.contains(['@', '/', '%']) {
        return Err(format!("the host {host:?} is not a host name or address"));
    }
    let user = match user {
        Some(u) => {
            let u = percent_decode(u).ok_or_else(|| format!("bad escape in the user {u:?}"))?;
            if u.is_empty() || unsafe_word(&u) || u.contains(['@', ':', '/']) {
                return Err(format!("the user {u:?} is not a user name"));
            }
            Some(u)
        }
        None => None,
    };
    let port = match port {
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("the port {p:?} is not a port number (1-65535)"))?,
        ),
        None => None,
    };
    let mut t = SshTarget {
        user,
        host: host.to_string(),
        port,
        keyfile: None,
        known_hosts: None,
        no_verify: false,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v).ok_or_else(|| format!("bad escape in {k}={v:?}"))?;
        let path = |v: String| {
            // A space is fine in a path (ssh gets it as one argument).
            if v.is_empty() || v.starts_with('-') || v.chars().any(char::is_control) {
                Err(format!("{k}={v:?} is not a path"))
            } else {
                Ok(Some(v))
            }
        };
        match k {
            "keyfile" => t.keyfile = path(v)?,
            "known_hosts" => t.known_hosts = path(v)?,
            "no_verify" => t.no_verify = v != "0",
            // libvirt's own (socket, mode, command, netcat, ...): for virsh,
            // not for the ssh bkt runs.
            _ => {}
        }
    }
    Ok(t)
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
        let (rest, query) = match rest.split('#').next().unwrap_or_default().split_once('?') {
            Some((r, q)) => (r, q),
            None => (rest.split('#').next().unwrap_or_default(), ""),
        };
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
        let ssh = match transport.as_deref() {
            Some("ssh") => Some(
                parse_ssh(authority, query)
                    .map_err(|why| format!("invalid libvirt URI {s:?}: {why}"))?,
            ),
            _ => None,
        };
        Ok(Uri {
            raw: s.to_string(),
            driver: driver.to_string(),
            transport,
            ssh,
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

    /// A URI that names another machine over anything but ssh
    /// (`qemu+tcp://server/system`, `qemu://server/system`, libvirt's own
    /// `qemu+libssh2://`): the `qemu+ssh://` URI to use instead. bkt works
    /// on the host of a URI through its own ssh login; without one it
    /// would take the other machine for this one (probe a guest's address
    /// here, hand the RDP client a VM of this machine that has it).
    /// `qemu:///system` and `qemu+unix:///system` name this machine.
    pub fn remote_without_ssh(&self) -> Option<String> {
        if self.host.is_empty() || self.ssh.is_some() {
            return None;
        }
        let (_, rest) = self.raw.split_once("://")?;
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let ssh = format!("{}+ssh://", self.driver);
        Some(match self.transport.as_deref() {
            // libvirt's own ssh: the same user, port and key, through ours.
            Some("libssh" | "libssh2") => format!("{ssh}{authority}{tail}"),
            // Their port is libvirt's, not ssh's, their query libvirt's.
            _ => {
                let host = if self.host.contains(':') {
                    format!("[{}]", self.host)
                } else {
                    self.host.clone()
                };
                let path = if self.path.is_empty() {
                    "/system"
                } else {
                    &self.path
                };
                format!("{ssh}[user@]{host}{path}")
            }
        })
    }

    /// How to reach the host when libvirt is reached over ssh
    /// (`qemu+ssh://`): the host is another machine, and bkt works on it
    /// through ssh too.
    pub fn ssh(&self) -> Option<&SshTarget> {
        self.ssh.as_ref()
    }

    /// This URI with another ssh user (`qemu+ssh://USER@host...`), the
    /// rest as it was: the fix that says "connect as root".
    pub fn with_ssh_user(&self, user: &str) -> Option<String> {
        self.ssh.as_ref()?;
        let (scheme, rest) = self.raw.split_once("://")?;
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let hostport = authority.rsplit('@').next().unwrap_or(authority);
        Some(format!("{scheme}://{user}@{hostport}{tail}"))
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

    #[test]
    fn another_machine_is_reached_only_over_ssh() {
        let fix = |s: &str| s.parse::<Uri>().unwrap().remote_without_ssh();
        for here in [
            "qemu:///system",
            "qemu:///session",
            "qemu+unix:///system",
            "qemu+tcp:///system",
            "test:///default",
            "qemu+ssh://root@server/system",
        ] {
            assert_eq!(fix(here), None, "{here}");
        }
        for (there, to) in [
            (
                "qemu+tcp://server/system",
                "qemu+ssh://[user@]server/system",
            ),
            (
                "qemu+tcp://127.0.0.1:16509/system/",
                "qemu+ssh://[user@]127.0.0.1/system",
            ),
            (
                "qemu+tls://server.lan/session",
                "qemu+ssh://[user@]server.lan/session",
            ),
            (
                "qemu://server/system?pkipath=/p",
                "qemu+ssh://[user@]server/system",
            ),
            (
                "qemu+unix://server/system",
                "qemu+ssh://[user@]server/system",
            ),
            (
                "qemu+tcp://[fe80::1]:16509",
                "qemu+ssh://[user@][fe80::1]/system",
            ),
            (
                "qemu+libssh2://anna@server:2222/system?keyfile=/k",
                "qemu+ssh://anna@server:2222/system?keyfile=/k",
            ),
            ("qemu+libssh://server/system", "qemu+ssh://server/system"),
        ] {
            assert_eq!(fix(there).as_deref(), Some(to), "{there}");
            assert_eq!(there.parse::<Uri>().unwrap().ssh(), None, "{there}");
        }
    }

    #[test]
    fn another_ssh_user_keeps_the_rest_of_the_uri() {
        let u = |s: &str| s.parse::<Uri>().unwrap();
        assert_eq!(
            u("qemu+ssh://anna@server:2222/system?keyfile=/k&no_verify=1")
                .with_ssh_user("root")
                .as_deref(),
            Some("qemu+ssh://root@server:2222/system?keyfile=/k&no_verify=1")
        );
        assert_eq!(
            u("qemu+ssh://[fe80::1]/session")
                .with_ssh_user("root")
                .as_deref(),
            Some("qemu+ssh://root@[fe80::1]/session")
        );
        assert_eq!(u("qemu:///system").with_ssh_user("root"), None);
    }

    #[test]
    fn the_ssh_parts_of_a_remote_uri() {
        let u: Uri =
            "qemu+ssh://anna@server.lan:2222/system?keyfile=/home/anna/.ssh/id%20x&no_verify=1"
                .parse()
                .unwrap();
        assert_eq!(
            u.ssh(),
            Some(&SshTarget {
                user: Some("anna".into()),
                host: "server.lan".into(),
                port: Some(2222),
                keyfile: Some("/home/anna/.ssh/id x".into()),
                known_hosts: None,
                no_verify: true,
            })
        );
        assert_eq!(u.ssh().unwrap().destination(), "anna@server.lan");
        let u: Uri = "qemu+ssh://server/system".parse().unwrap();
        let t = u.ssh().unwrap();
        assert_eq!(
            (t.user.as_deref(), t.port, t.no_verify),
            (None, None, false)
        );
        assert_eq!(t.destination(), "server");
        let u: Uri = "qemu+ssh://root@[::1]:22/system?known_hosts=/k&no_verify=0&mode=legacy"
            .parse()
            .unwrap();
        let t = u.ssh().unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", Some(22)));
        assert_eq!((t.known_hosts.as_deref(), t.no_verify), (Some("/k"), false));
        assert_eq!("qemu:///system".parse::<Uri>().unwrap().ssh(), None);
        assert_eq!(
            "qemu+tcp://server/system".parse::<Uri>().unwrap().ssh(),
            None
        );
    }

    #[test]
    fn nothing_in_a_remote_uri_reaches_ssh_as_an_option() {
        for (bad, why) in [
            (
                "qemu+ssh:///system",
                "a qemu+ssh URI needs a host (qemu+ssh://user@host/system)",
            ),
            (
                "qemu+ssh://-oProxyCommand=x/system",
                "the host \"-oProxyCommand=x\" is not a host name or address",
            ),
            (
                "qemu+ssh://-x@host/system",
                "the user \"-x\" is not a user name",
            ),
            (
                "qemu+ssh://a%0Ab@host/system",
                "the user \"a\\nb\" is not a user name",
            ),
            (
                "qemu+ssh://a%20b@host/system",
                "the user \"a b\" is not a user name",
            ),
            (
                "qemu+ssh://host:0/system",
                "the port \"0\" is not a port number (1-65535)",
            ),
            (
                "qemu+ssh://host:22x/system",
                "the port \"22x\" is not a port number (1-65535)",
            ),
            (
                "qemu+ssh://host/system?keyfile=-oProxyCommand=x",
                "keyfile=\"-oProxyCommand=x\" is not a path",
            ),
            (
                "qemu+ssh://host/system?keyfile=/k%0A",
                "keyfile=\"/k\\n\" is not a path",
            ),
            (
                "qemu+ssh://host/system?known_hosts=",
                "known_hosts=\"\" is not a path",
            ),
            (
                "qemu+ssh://host/system?keyfile=%zz",
                "bad escape in keyfile=\"%zz\"",
            ),
            (
                "qemu+ssh://[::1/system",
                "an IPv6 address needs its closing ']'",
            ),
        ] {
            assert_eq!(
                bad.parse::<Uri>().unwrap_err(),
                format!("invalid libvirt URI {bad:?}: {why}"),
                "{bad}"
            );
        }
    }
}
