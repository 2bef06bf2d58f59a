//! `ssh` (OpenSSH): the one connection bkt keeps to a libvirt host reached
//! over `qemu+ssh://`. A ControlMaster bkt starts (`-M -S SOCK -f -N`) and
//! ends (`-O exit`), commands run over it (one handshake per bkt command,
//! not one per step), and local port forwards added to it (`-O forward`).
//! Never a prompt (`BatchMode=yes`), never a password anywhere: a key
//! (`keyfile=` in the URI, or the user's agent and ~/.ssh) or nothing.
//!
//! Also the small POSIX scripts run on the host (`stat`, `df`, a TCP probe)
//! and the parsers of what they print; every path in them is shell-quoted,
//! since ssh hands the command line to the remote user's shell.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};

use crate::exec::{Cmd, shell_quote};
use crate::names::SshTarget;

/// How long ssh waits for the host before giving up (`ConnectTimeout`).
pub const CONNECT_TIMEOUT_SECS: u32 = 15;

/// ssh to one host, through one control socket.
#[derive(Debug, Clone)]
pub struct Ssh {
    target: SshTarget,
    /// The master's socket, in a directory only we can enter.
    control: PathBuf,
}

impl Ssh {
    pub fn new(target: SshTarget, control: &Path) -> Ssh {
        Ssh {
            target,
            control: control.to_path_buf(),
        }
    }

    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    /// `ssh -S SOCK` with the URI's user, port, key and host-key policy,
    /// never prompting: the start of every call.
    fn base(&self) -> Cmd {
        let t = &self.target;
        let mut c = Cmd::new("ssh")
            .arg("-S")
            .arg(self.control.display().to_string())
            .args(["-o", "BatchMode=yes"])
            .arg("-o")
            .arg(format!("ConnectTimeout={CONNECT_TIMEOUT_SECS}"));
        if let Some(p) = t.port {
            c = c.arg("-p").arg(p.to_string());
        }
        if let Some(u) = &t.user {
            c = c.arg("-l").arg(u.clone());
        }
        if let Some(k) = &t.keyfile {
            c = c.arg("-i").arg(k.clone());
        }
        if let Some(k) = &t.known_hosts {
            c = c.arg("-o").arg(format!("UserKnownHostsFile={k}"));
        }
        if t.no_verify {
            c = c.args(["-o", "StrictHostKeyChecking=no"]);
        }
        c
    }

    /// The master: authenticates, then goes to the background (`-f`, its
    /// output closed) holding the connection for the calls that follow,
    /// until [`Ssh::exit`]. It returns only once the host let us in, so a
    /// failure (unreachable, refused key) is this call's.
    pub fn master(&self) -> Cmd {
        self.base()
            .args(["-M", "-o", "ControlPersist=no", "-f", "-N", "--"])
            .arg(self.target.host.clone())
    }

    /// End the master (and with it every forward it holds).
    pub fn exit(&self) -> Cmd {
        self.base()
            .args(["-O", "exit", "--"])
            .arg(self.target.host.clone())
    }

    /// Run a shell command line on the host over the master.
    pub fn run(&self, script: &str) -> Cmd {
        self.base()
            .args(["-o", "ControlMaster=no", "-T", "--"])
            .arg(self.target.host.clone())
            .arg(script)
    }

    /// A tunnel of its own from `127.0.0.1:local` to `guest:port`: a master
    /// on this socket, with a login of its own, that goes to the background
    /// (`-f`: a session of its own) once the host let it in and the local
    /// port listens, so it outlives bkt and bkt's master; [`Ssh::exit`] on
    /// the same socket ends it. A port it cannot take is its failure.
    pub fn tunnel(&self, local: u16, guest: IpAddr, port: u16) -> Cmd {
        self.base()
            .args([
                "-M",
                "-o",
                "ControlPersist=no",
                "-o",
                "ExitOnForwardFailure=yes",
                "-f",
                "-N",
                "-L",
            ])
            .arg(local_forward(local, guest, port))
            .arg("--")
            .arg(self.target.host.clone())
    }

    /// Forward `127.0.0.1:local` of this machine to `guest:port` as the
    /// host sees it, over the master (it lasts until [`Ssh::exit`]).
    pub fn forward(&self, local: u16, guest: IpAddr, port: u16) -> Cmd {
        self.base()
            .args(["-O", "forward", "-L"])
            .arg(local_forward(local, guest, port))
            .arg("--")
            .arg(self.target.host.clone())
    }
}

/// The `ssh` that libvirt's own ssh transport (virsh, virt-install on a
/// `qemu+ssh://` URI) finds first on its `PATH`: a script that runs the
/// real one (`real`, absolute) through bkt's master, so those programs cost
/// no handshake of their own. Without a master (its socket gone) ssh
/// connects by itself, still never prompting. libvirt's own options (user,
/// port, key, `--`, host, the remote command) follow as they are.
pub fn through_master(real: &Path, control: &Path) -> String {
    format!(
        "#!/bin/sh\nexec {} -S {} -o ControlMaster=no -o BatchMode=yes -o ConnectTimeout={CONNECT_TIMEOUT_SECS} \"$@\"\n",
        quote_path(real),
        quote_path(control)
    )
}

/// `rm -rf -- DIR` by absolute paths: bkt's private directory (the
/// master's socket, the ssh libvirt goes through), removed by the shell
/// that outlives bkt ([`crate::exec::Cmd::on_exit`]).
pub fn remove_private_dir(dir: &Path) -> Cmd {
    Cmd::new("/bin/rm")
        .args(["-rf", "--"])
        .arg(dir.display().to_string())
}

/// The hash `sha256sum FILE` printed (64 hex digits, then the name).
pub fn parse_sha256sum(out: &str) -> Result<String> {
    let h = out.split_whitespace().next().unwrap_or_default();
    if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(h.to_ascii_lowercase())
    } else {
        bail!("sha256sum printed no hash: {:?}", out.trim())
    }
}

/// `127.0.0.1:LOCAL:GUEST:PORT`, an IPv6 guest in brackets.
fn local_forward(local: u16, guest: IpAddr, port: u16) -> String {
    match guest {
        IpAddr::V4(g) => format!("127.0.0.1:{local}:{g}:{port}"),
        IpAddr::V6(g) => format!("127.0.0.1:{local}:[{g}]:{port}"),
    }
}

/// Why ssh itself failed (its exit status 255, or libvirt's own ssh under
/// virsh), from its stderr, with the fix; None when the failure was not
/// ssh's. Without the target, the fix names it generically.
pub fn failure(stderr: &str, target: Option<&SshTarget>) -> Option<(String, String)> {
    let (dest, host, port) = match target {
        Some(t) => (
            t.destination(),
            t.host.clone(),
            t.port.map(|p| format!(" -p {p}")).unwrap_or_default(),
        ),
        None => ("USER@HOST".into(), "the host".into(), String::new()),
    };
    let line = stderr
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or_default()
        .trim_start_matches("error: Cannot recv data: ")
        .trim_end_matches(": Connection reset by peer");
    let unreachable = [
        "Connection refused",
        "Connection timed out",
        "No route to host",
        "Could not resolve hostname",
        "Network is unreachable",
        "Name or service not known",
        "Connection closed by",
    ];
    if stderr.contains("Permission denied (") || stderr.contains("Too many authentication failures")
    {
        Some((
            format!("ssh could not log in to {dest}: the host refused every key ({line})"),
            format!(
                "bkt never asks for an ssh password (BatchMode): give it a key the host accepts, \
                 `ssh-copy-id{port} {dest}`, or name one in the URI (?keyfile=PATH)"
            ),
        ))
    } else if stderr.contains("Host key verification failed")
        || stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
    {
        Some((
            format!("ssh does not trust {host}'s host key ({line})"),
            format!(
                "check the key and accept it once by hand, `ssh{port} {dest} true`, or name a \
                 known_hosts file in the URI (?known_hosts=PATH)"
            ),
        ))
    } else if unreachable.iter().any(|u| stderr.contains(u)) {
        Some((
            format!("cannot reach {host} over ssh ({line})"),
            format!(
                "check that the host is up and runs sshd, and that --connect names it right: \
                 `ssh{port} {dest} true` should work"
            ),
        ))
    } else {
        None
    }
}

/// [`failure`] for virsh's stderr: libvirt words a failure of its ssh
/// child as "Cannot recv data: ...", and its other connection errors
/// ("Failed to connect socket ...: Connection refused", a local libvirtd
/// down) are not ssh's.
pub fn virsh_failure(stderr: &str, target: Option<&SshTarget>) -> Option<(String, String)> {
    if stderr.contains("Cannot recv data") {
        failure(stderr, target)
    } else {
        None
    }
}

/// What one TCP connect to a guest's port found, on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    Open,
    Refused,
    NoAnswer,
}

/// One connect per address to `port`, all at once, on the host, with bash's
/// `/dev/tcp` under `timeout`: each prints `INDEX open|refused|noanswer`.
/// bash says "Connection refused" when the guest answered with a reset;
/// `timeout` ends a connect nothing answers.
pub fn probe_script(ips: &[IpAddr], port: u16, timeout: Duration) -> String {
    let secs = format!("{:.3}", timeout.as_secs_f64());
    let mut s = String::new();
    for (i, ip) in ips.iter().enumerate() {
        let connect = format!("exec 3<>/dev/tcp/{ip}/{port}");
        s.push_str(&format!(
            "(e=$(timeout {secs} bash -c {} 2>&1); r=$?; \
             if [ $r = 0 ]; then echo {i} open; \
             else case $e in *'Connection refused'*) echo {i} refused;; *) echo {i} noanswer;; esac; fi) & ",
            shell_quote(&connect)
        ));
    }
    s.push_str("wait");
    s
}

/// The answers of [`probe_script`], in the order of its addresses (one
/// that printed nothing: no answer).
pub fn parse_probes(out: &str, n: usize) -> Vec<Reach> {
    let mut r = vec![Reach::NoAnswer; n];
    for line in out.lines() {
        let mut f = line.split_whitespace();
        let (Some(i), Some(st)) = (f.next(), f.next()) else {
            continue;
        };
        let Some(slot) = i.parse::<usize>().ok().and_then(|i| r.get_mut(i)) else {
            continue;
        };
        *slot = match st {
            "open" => Reach::Open,
            "refused" => Reach::Refused,
            _ => Reach::NoAnswer,
        };
    }
    r
}

/// `stat` of one path on the host (`-L`: following a symlink): the raw
/// mode in hex, the size, the owner and the group.
pub fn stat_script(p: &Path, follow: bool) -> String {
    format!(
        "stat {}-c '%f %s %u %g' -- {}",
        if follow { "-L " } else { "" },
        quote_path(p)
    )
}

/// A path's raw mode (type and permission bits), size and owner, as
/// [`stat_script`] prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawStat {
    pub mode: u32,
    pub len: u64,
    pub uid: u32,
    pub gid: u32,
}

pub fn parse_stat(out: &str) -> Result<RawStat> {
    let f: Vec<&str> = out.split_whitespace().collect();
    let [mode, len, uid, gid] = f[..] else {
        bail!("unexpected output of stat: {out:?}");
    };
    let bad = || anyhow!("unexpected output of stat: {out:?}");
    Ok(RawStat {
        mode: u32::from_str_radix(mode, 16).map_err(|_| bad())?,
        len: len.parse().map_err(|_| bad())?,
        uid: uid.parse().map_err(|_| bad())?,
        gid: gid.parse().map_err(|_| bad())?,
    })
}

/// The free bytes (for an unprivileged user) of the file system holding
/// `dir` or, when it does not exist yet, its nearest existing parent.
pub fn df_script(dir: &Path) -> String {
    format!(
        "p={}; while [ ! -e \"$p\" ]; do p=$(dirname -- \"$p\"); done; df -PB1 -- \"$p\"",
        quote_path(dir)
    )
}

/// The `Available` column of `df -PB1` (POSIX format: one line per file
/// system after the header).
pub fn parse_df(out: &str) -> Option<u64> {
    out.lines().nth(1)?.split_whitespace().nth(3)?.parse().ok()
}

/// The shell lines of the file operations on a host over ssh, one per
/// [`crate::vm::ctx::Host`] method: each path quoted ([`quote_path`]); the
/// caller has made sure it is absolute.
pub mod script {
    use std::path::Path;

    use super::quote_path;

    /// The start of a script that makes `q` (quoted) and never replaces
    /// it: it says "File exists" as the kernel would (bash and dash word
    /// `set -C` differently), and `set -C` keeps the race with another
    /// writer closed.
    fn refuse_existing(q: &str) -> String {
        format!(
            "if [ -e {q} ] || [ -L {q} ]; then echo {q}: File exists >&2; exit 1; fi; umask 077; set -C; "
        )
    }

    /// Succeeds when we may create files in `dir`.
    pub fn writable(dir: &Path) -> String {
        format!("test -w {}", quote_path(dir))
    }

    /// Succeeds when a device opens for reading and writing, else says
    /// why as the kernel would.
    pub fn open_rw(dev: &Path) -> String {
        let q = quote_path(dev);
        format!(
            "test -e {q} || {{ echo {q}: No such file or directory >&2; exit 1; }}; \
             test -r {q} && test -w {q} || {{ echo {q}: Permission denied >&2; exit 1; }}"
        )
    }

    /// Succeeds when a file opens for reading.
    pub fn open_read(p: &Path) -> String {
        format!("head -c0 -- {}", quote_path(p))
    }

    /// The path without symlinks.
    pub fn canonicalize(p: &Path) -> String {
        format!("readlink -e -- {}", quote_path(p))
    }

    /// A file's bytes.
    pub fn cat(p: &Path) -> String {
        format!("cat -- {}", quote_path(p))
    }

    /// A directory's entries, each ended by a NUL.
    pub fn list(dir: &Path) -> String {
        format!("find {} -mindepth 1 -maxdepth 1 -print0", quote_path(dir))
    }

    /// An empty new file of `mode` (never over one).
    pub fn create_new(p: &Path, mode: u32) -> String {
        let q = quote_path(p);
        format!("{}: > {q} && chmod {mode:o} -- {q}", refuse_existing(&q))
    }

    /// A new file of `mode` (never over one) filled from stdin, flushed.
    pub fn write_new(p: &Path, mode: u32) -> String {
        let q = quote_path(p);
        format!(
            "{}cat > {q} && chmod {mode:o} -- {q} && sync -- {q}",
            refuse_existing(&q)
        )
    }

    /// A new file of `mode` filled from stdin, flushed. The file is made
    /// first, exclusively (noclobber opens with O_EXCL): exit `exists`
    /// when something is there, `not_made` when it cannot be made (its
    /// reason on stderr); in neither case is anything there ours. Filled
    /// after; a failure from then on leaves a file of ours. `true`, not
    /// `:`: a failed redirection of a special built-in ends a POSIX shell
    /// (dash) before it can say which case it is.
    pub fn send_new(p: &Path, mode: u32, exists: i32, not_made: i32) -> String {
        let q = quote_path(p);
        format!(
            "umask 077; set -C; {{ true > {q}; }} 2>/dev/null || {{ \
             if [ -e {q} ] || [ -L {q} ]; then echo {q}: File exists >&2; exit {exists}; fi; \
             true > {q}; exit {not_made}; }}; \
             cat >> {q} && chmod {mode:o} -- {q} && sync -- {q}"
        )
    }

    /// Remove a file, gone already being fine.
    pub fn remove_if_there(p: &Path) -> String {
        format!("rm -f -- {}", quote_path(p))
    }

    /// A file's SHA-256, as `sha256sum` prints it.
    pub fn sha256(p: &Path) -> String {
        format!("sha256sum -- {}", quote_path(p))
    }

    /// A directory with its parents.
    pub fn create_dir_all(p: &Path) -> String {
        format!("mkdir -p -- {}", quote_path(p))
    }

    pub fn set_mode(p: &Path, mode: u32) -> String {
        format!("chmod {mode:o} -- {}", quote_path(p))
    }

    /// Rename `from` to `to` (`to` a file's or an empty directory's name,
    /// never a directory to move into).
    pub fn rename(from: &Path, to: &Path) -> String {
        format!("mv -f -T -- {} {}", quote_path(from), quote_path(to))
    }

    pub fn remove_file(p: &Path) -> String {
        format!("rm -- {}", quote_path(p))
    }

    pub fn remove_dir(p: &Path) -> String {
        format!("rmdir -- {}", quote_path(p))
    }

    pub fn remove_tree(p: &Path) -> String {
        format!("rm -r -- {}", quote_path(p))
    }

    /// Copy a file or tree to a new path (never over one); sockets are not
    /// state; as root `cp -a` keeps the owners.
    pub fn copy_tree(src: &Path, dst: &Path) -> String {
        let (s, d) = (quote_path(src), quote_path(dst));
        format!(
            "{}cp -a -- {s} {d} && find {d} -type s -delete && sync",
            refuse_existing(&d)
        )
    }

    /// Flush a file or a directory (its entries) to disk.
    pub fn sync(p: &Path) -> String {
        format!("sync -- {}", quote_path(p))
    }

    /// The size of every file under a path, one a line.
    pub fn tree_size(p: &Path) -> String {
        format!("find {} ! -type d -printf '%s\\n'", quote_path(p))
    }
}

/// `len` bytes at byte `off` of a file on the host, as hex text (ssh
/// carries text; `od` is POSIX): the file opened first, so that a missing
/// or unreadable one is the shell's error ("cannot open"), then GNU dd's
/// byte-exact `skip`/`count`. What the ISO check reads of an ISO already
/// on the host (`--remote-iso`): a few sectors and the XML of its
/// install.wim, never the gigabytes.
pub fn read_at_script(p: &Path, off: u64, len: usize) -> String {
    format!(
        "exec < {} && dd iflag=skip_bytes,count_bytes skip={off} count={len} bs=65536 status=none | od -An -v -tx1",
        quote_path(p)
    )
}

/// The bytes [`read_at_script`] printed.
pub fn parse_hex_dump(out: &str) -> Result<Vec<u8>> {
    out.split_whitespace()
        .map(|h| u8::from_str_radix(h, 16).map_err(|_| anyhow!("unexpected output of od: {h:?}")))
        .collect()
}

/// A path for a command line on the host: shell-quoted.
pub fn quote_path(p: &Path) -> String {
    shell_quote(&p.to_string_lossy())
}

#[cfg(test)]
mod tests {
    // why: tests read fixtures and set up the files and processes they look at.
    #![allow(clippy::disallowed_methods, clippy::disallowed_types)]

    use super::*;

    #[test]
    fn file_scripts_quote_every_path() {
        use std::path::Path;
        let p = Path::new("/v/it's");
        let q = r"'/v/it'\''s'";
        let refuse = format!(
            "if [ -e {q} ] || [ -L {q} ]; then echo {q}: File exists >&2; exit 1; fi; umask 077; set -C; "
        );
        assert_eq!(script::writable(p), format!("test -w {q}"));
        assert_eq!(
            script::open_rw(Path::new("/dev/kvm")),
            "test -e /dev/kvm || { echo /dev/kvm: No such file or directory >&2; exit 1; }; \
             test -r /dev/kvm && test -w /dev/kvm || { echo /dev/kvm: Permission denied >&2; exit 1; }"
        );
        assert_eq!(script::open_read(p), format!("head -c0 -- {q}"));
        assert_eq!(script::canonicalize(p), format!("readlink -e -- {q}"));
        assert_eq!(script::cat(p), format!("cat -- {q}"));
        assert_eq!(
            script::list(p),
            format!("find {q} -mindepth 1 -maxdepth 1 -print0")
        );
        assert_eq!(
            script::create_new(p, 0o600),
            format!("{refuse}: > {q} && chmod 600 -- {q}")
        );
        assert_eq!(
            script::write_new(p, 0o644),
            format!("{refuse}cat > {q} && chmod 644 -- {q} && sync -- {q}")
        );
        assert_eq!(
            script::send_new(Path::new("/v/d.qcow2"), 0o600, 17, 18),
            "umask 077; set -C; { true > /v/d.qcow2; } 2>/dev/null || { \
             if [ -e /v/d.qcow2 ] || [ -L /v/d.qcow2 ]; then echo /v/d.qcow2: File exists >&2; exit 17; fi; \
             true > /v/d.qcow2; exit 18; }; \
             cat >> /v/d.qcow2 && chmod 600 -- /v/d.qcow2 && sync -- /v/d.qcow2"
        );
        assert_eq!(script::remove_if_there(p), format!("rm -f -- {q}"));
        assert_eq!(script::sha256(p), format!("sha256sum -- {q}"));
        assert_eq!(script::create_dir_all(p), format!("mkdir -p -- {q}"));
        assert_eq!(script::set_mode(p, 0o2750), format!("chmod 2750 -- {q}"));
        assert_eq!(
            script::rename(p, Path::new("/v/b")),
            format!("mv -f -T -- {q} /v/b")
        );
        assert_eq!(script::remove_file(p), format!("rm -- {q}"));
        assert_eq!(script::remove_dir(p), format!("rmdir -- {q}"));
        assert_eq!(script::remove_tree(p), format!("rm -r -- {q}"));
        let refuse_b = refuse.replace(q, "/v/b");
        assert_eq!(
            script::copy_tree(p, Path::new("/v/b")),
            format!("{refuse_b}cp -a -- {q} /v/b && find /v/b -type s -delete && sync")
        );
        assert_eq!(script::sync(p), format!("sync -- {q}"));
        assert_eq!(
            script::tree_size(p),
            format!("find {q} ! -type d -printf '%s\\n'")
        );
    }

    fn fx(rel: &str) -> String {
        let p = format!("{}/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    fn ssh(uri: &str) -> Ssh {
        let u: crate::names::Uri = uri.parse().unwrap();
        Ssh::new(u.ssh().unwrap().clone(), Path::new("/run/bkt-ssh.x/m"))
    }

    #[test]
    fn a_positioned_read_is_dd_of_the_opened_file_in_hex() {
        assert_eq!(
            read_at_script(Path::new("/srv/isos/Win 11.iso"), 32768, 2048),
            "exec < '/srv/isos/Win 11.iso' && dd iflag=skip_bytes,count_bytes skip=32768 count=2048 bs=65536 status=none | od -An -v -tx1"
        );
        // od's own layout (coreutils 9.1): sixteen bytes a line.
        let out = " 00 01 43 44 30 30 31 01 00 4c 49 4e 55 58 20 20\n ff\n";
        assert_eq!(
            parse_hex_dump(out).unwrap(),
            [
                0, 1, 0x43, 0x44, 0x30, 0x30, 0x31, 1, 0, 0x4c, 0x49, 0x4e, 0x55, 0x58, 0x20, 0x20,
                0xff
            ]
        );
        assert_eq!(parse_hex_dump("").unwrap(), Vec::<u8>::new());
        // The script run here as the host would: the bytes of the file.
        let iso = format!(
            "{}/fixtures/iso/win11-24h2-x64.iso",
            env!("CARGO_MANIFEST_DIR")
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &read_at_script(Path::new(&iso), 32769, 5)])
            .output()
            .unwrap();
        assert_eq!(
            parse_hex_dump(&String::from_utf8(out.stdout).unwrap()).unwrap(),
            b"CD001"
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &read_at_script(Path::new("/nonexistent/x.iso"), 0, 5)])
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("nonexistent"));
        assert!(parse_hex_dump(" 0g").is_err());
    }

    #[test]
    fn the_master_honours_the_uri_and_never_prompts() {
        let s = ssh(
            "qemu+ssh://anna@server.lan:2222/system?keyfile=/home/anna/.ssh/id%20vm&no_verify=1&known_hosts=/k",
        );
        assert_eq!(
            s.master().display(),
            "ssh -S /run/bkt-ssh.x/m -o BatchMode=yes -o ConnectTimeout=15 -p 2222 -l anna \
             -i '/home/anna/.ssh/id vm' -o UserKnownHostsFile=/k -o StrictHostKeyChecking=no \
             -M -o ControlPersist=no -f -N -- server.lan"
        );
        let s = ssh("qemu+ssh://server/system");
        assert_eq!(
            s.master().display(),
            "ssh -S /run/bkt-ssh.x/m -o BatchMode=yes -o ConnectTimeout=15 \
             -M -o ControlPersist=no -f -N -- server"
        );
        assert_eq!(
            s.exit().display(),
            "ssh -S /run/bkt-ssh.x/m -o BatchMode=yes -o ConnectTimeout=15 -O exit -- server"
        );
    }

    #[test]
    fn commands_and_forwards_go_over_the_master() {
        let s = ssh("qemu+ssh://root@127.0.0.1:2222/system?keyfile=/k");
        assert_eq!(
            s.run("df -PB1 -- /var").display(),
            "ssh -S /run/bkt-ssh.x/m -o BatchMode=yes -o ConnectTimeout=15 -p 2222 -l root -i /k \
             -o ControlMaster=no -T -- 127.0.0.1 'df -PB1 -- /var'"
        );
        assert_eq!(
            s.forward(40123, "192.0.2.7".parse().unwrap(), 3389)
                .display(),
            "ssh -S /run/bkt-ssh.x/m -o BatchMode=yes -o ConnectTimeout=15 -p 2222 -l root -i /k \
             -O forward -L 127.0.0.1:40123:192.0.2.7:3389 -- 127.0.0.1"
        );
        assert_eq!(
            local_forward(1, "fe80::1".parse().unwrap(), 3389),
            "127.0.0.1:1:[fe80::1]:3389"
        );
    }

    #[test]
    fn every_ssh_failure_gets_its_fix() {
        let t = ssh("qemu+ssh://root@127.0.0.1:2222/system")
            .target()
            .clone();
        let (what, fix) = failure(&fx("ssh/master-auth-refused.err"), Some(&t)).unwrap();
        assert_eq!(
            what,
            "ssh could not log in to root@127.0.0.1: the host refused every key \
             (root@127.0.0.1: Permission denied (publickey).)"
        );
        assert_eq!(
            fix,
            "bkt never asks for an ssh password (BatchMode): give it a key the host accepts, \
             `ssh-copy-id -p 2222 root@127.0.0.1`, or name one in the URI (?keyfile=PATH)"
        );
        let t3 = ssh("qemu+ssh://root@127.0.0.1:2223/system")
            .target()
            .clone();
        let (what, fix) = failure(&fx("ssh/master-unreachable.err"), Some(&t3)).unwrap();
        assert_eq!(
            what,
            "cannot reach 127.0.0.1 over ssh (ssh: connect to host 127.0.0.1 port 2223: Connection refused)"
        );
        assert_eq!(
            fix,
            "check that the host is up and runs sshd, and that --connect names it right: \
             `ssh -p 2223 root@127.0.0.1 true` should work"
        );
        let (what, _) = failure(&fx("ssh/master-host-key-unknown.err"), Some(&t)).unwrap();
        assert_eq!(
            what,
            "ssh does not trust 127.0.0.1's host key (Host key verification failed.)"
        );
        assert_eq!(failure(&fx("ssh/stat-missing.err"), Some(&t)), None);
        assert_eq!(failure(&fx("ssh/master-started.err"), Some(&t)), None);
        // virsh's own ssh, as libvirt words it.
        assert_eq!(
            virsh_failure(&fx("ssh/virsh-unreachable.err"), None).unwrap(),
            (
                "cannot reach the host over ssh (ssh: connect to host 127.0.0.1 port 2223: \
                 Connection refused)"
                    .to_string(),
                "check that the host is up and runs sshd, and that --connect names it right: \
                 `ssh USER@HOST true` should work"
                    .to_string()
            )
        );
        assert_eq!(
            virsh_failure(
                "error: Failed to connect socket to '/run/libvirt/libvirt-sock': Connection refused\n",
                None
            ),
            None,
            "a local libvirtd down is not an ssh failure"
        );
        assert_eq!(
            virsh_failure(&fx("virsh/status-batch-no-libvirtd.err"), None),
            None
        );
        assert_eq!(
            virsh_failure(&fx("ssh/virsh-unreachable.err"), Some(&t3))
                .unwrap()
                .1,
            "check that the host is up and runs sshd, and that --connect names it right: \
             `ssh -p 2223 root@127.0.0.1 true` should work"
        );
        assert_eq!(
            virsh_failure(&fx("virsh/status-batch-no-libvirtd.err"), None),
            None
        );
        let (what, _) = virsh_failure(&fx("ssh/virsh-auth-refused.err"), None).unwrap();
        assert_eq!(
            what,
            "ssh could not log in to USER@HOST: the host refused every key \
             (root@127.0.0.1: Permission denied (publickey).)"
        );
    }

    #[test]
    fn stat_and_df_as_the_host_prints_them() {
        assert_eq!(
            stat_script(Path::new("/var/lib/libvirt/images/it's.qcow2"), true),
            r"stat -L -c '%f %s %u %g' -- '/var/lib/libvirt/images/it'\''s.qcow2'"
        );
        assert_eq!(
            stat_script(Path::new("/x"), false),
            "stat -c '%f %s %u %g' -- /x"
        );
        let st = parse_stat(&fx("ssh/stat-file.txt")).unwrap();
        assert_eq!((st.mode & 0o170000, st.mode & 0o7777), (0o100000, 0o640));
        assert_eq!((st.len, st.uid, st.gid), (5, 0, 0));
        let st = parse_stat(&fx("ssh/stat-dir.txt")).unwrap();
        assert_eq!((st.mode & 0o170000, st.mode & 0o7777), (0o040000, 0o711));
        assert!(parse_stat("").is_err());
        assert!(parse_stat("81a0 5 0").is_err());
        assert_eq!(
            df_script(Path::new("/var/lib/libvirt/images/new dir")),
            "p='/var/lib/libvirt/images/new dir'; while [ ! -e \"$p\" ]; do p=$(dirname -- \"$p\"); done; df -PB1 -- \"$p\""
        );
        assert_eq!(parse_df(&fx("ssh/df.txt")), Some(DF_AVAILABLE));
        assert_eq!(
            parse_df("Filesystem 1-blocks Used Available Capacity Mounted on\n"),
            None
        );
    }

    /// The `Available` figure of fixtures/ssh/df.txt.
    const DF_AVAILABLE: u64 = 81_590_988_800;

    #[test]
    fn probes_as_bash_answered_them() {
        let ips: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
        assert_eq!(
            probe_script(&ips, 3389, Duration::from_millis(1500)),
            "(e=$(timeout 1.500 bash -c 'exec 3<>/dev/tcp/127.0.0.1/3389' 2>&1); r=$?; \
             if [ $r = 0 ]; then echo 0 open; else case $e in *'Connection refused'*) echo 0 refused;; \
             *) echo 0 noanswer;; esac; fi) & \
             (e=$(timeout 1.500 bash -c 'exec 3<>/dev/tcp/::1/3389' 2>&1); r=$?; \
             if [ $r = 0 ]; then echo 1 open; else case $e in *'Connection refused'*) echo 1 refused;; \
             *) echo 1 noanswer;; esac; fi) & wait"
        );
        assert_eq!(
            parse_probes(&fx("ssh/probes.txt"), 3),
            [Reach::Refused, Reach::Open, Reach::NoAnswer]
        );
        assert_eq!(parse_probes("9 open\nx\n", 1), [Reach::NoAnswer]);
    }

    #[test]
    fn sha256sum_gives_its_hash_and_nothing_else() {
        // sha256sum of "hello" on the host, recorded.
        assert_eq!(
            parse_sha256sum(&fx("ssh/sha256sum.txt")).unwrap(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert!(parse_sha256sum("").is_err());
        assert!(parse_sha256sum("sha256sum: /x: No such file or directory").is_err());
        assert!(parse_sha256sum(&"g".repeat(64)).is_err());
        assert!(parse_sha256sum(&"a".repeat(63)).is_err());
    }

    #[test]
    fn libvirts_ssh_is_sent_through_the_master_with_every_argument_kept() {
        let dir = tempfile::tempdir().unwrap();
        let wrapper = dir.path().join("ssh");
        // The real ssh stands in as printf, so what it would get is seen.
        let script = through_master(Path::new("/usr/bin/printf"), Path::new("/run/bkt ssh/m"));
        let script = script.replacen("exec /usr/bin/printf", "exec /usr/bin/printf '[%s]'", 1);
        std::fs::write(&wrapper, script).unwrap();
        let out = std::process::Command::new("/bin/sh")
            .arg(&wrapper)
            .args(["-p", "22", "host", "sh -c 'nc $ARG'"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "[-S][/run/bkt ssh/m][-o][ControlMaster=no][-o][BatchMode=yes][-o][ConnectTimeout=15]\
             [-p][22][host][sh -c 'nc $ARG']"
        );
    }
}
