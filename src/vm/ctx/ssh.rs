//! The host reached over ssh (`qemu+ssh://`): every effect on the machine
//! that runs libvirt done there, through one ssh ControlMaster per bkt
//! command (started on first use, ended on drop), so a command costs one
//! handshake, not one per step. Its size comes from libvirt
//! (`virsh nodeinfo`); files, space and probes from small POSIX commands
//! (`tools::ssh`), every path shell-quoted and absolute.

// why: the door: a host reached over ssh, its files and processes.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};

use super::host::{
    HostFiles, HostMachine, HostNet, HostProcs, HostSize, Kind, LeftBehind, OwnTunnel, PortState,
    Stat, parse_proc_net_tcp,
};
use crate::exec::{Cmd, ExecError, Output, Sentinel, Status};
use crate::names::SshTarget;
use crate::tools::acl::Perms;
use crate::tools::ssh::{self, Reach, Ssh, quote_path, script};
use crate::tools::virsh::{self, Virsh};
use crate::ui::HintExt;

/// Why the master could not start: what failed, and the fix (if known).
type Failure = (String, Option<String>);

pub struct SshHost {
    ssh: Ssh,
    virsh: Virsh,
    /// libvirt's URI there, for the advice on its failures.
    uri: Option<crate::names::Uri>,
    /// The master's socket lives here: 0700, an unpredictable name, ours.
    _dir: tempfile::TempDir,
    /// The master, once started: with the shell that ends it (and removes
    /// this directory) when bkt ends, even by a signal.
    master: OnceLock<std::result::Result<Mutex<Option<Sentinel>>, Failure>>,
    euid: OnceLock<Option<u32>>,
}

impl SshHost {
    /// The host `target` names, libvirt on it at `uri`. `path` is this
    /// process's `PATH`: libvirt's own ssh (virsh, virt-install) runs with
    /// bkt's private directory before it, where an `ssh` goes through the
    /// master ([`ssh::through_master`]).
    pub fn new(target: SshTarget, uri: &str, path: Option<&str>) -> Result<SshHost> {
        let dir = tempfile::Builder::new()
            .prefix("bkt-ssh.")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
            .context("creating a private directory for the ssh connection")?;
        let control = dir.path().join("m");
        let mut virsh = Virsh::new(uri);
        // No ssh here: libvirt says so itself, as it would without bkt.
        if let Ok(real) = which::which("ssh") {
            let bin = dir.path().join("bin");
            std::fs::create_dir(&bin)
                .and_then(|()| {
                    let script = ssh::through_master(&real, &control);
                    std::fs::write(bin.join("ssh"), script)?;
                    std::fs::set_permissions(
                        bin.join("ssh"),
                        std::fs::Permissions::from_mode(0o700),
                    )
                })
                .context("writing the ssh that libvirt's connection goes through")?;
            let rest = path.map(|p| format!(":{p}")).unwrap_or_default();
            virsh = virsh.with_path(format!("{}{rest}", bin.display()));
        }
        Ok(SshHost {
            ssh: Ssh::new(target, &control),
            uri: uri.parse().ok(),
            virsh,
            _dir: dir,
            master: OnceLock::new(),
            euid: OnceLock::new(),
        })
    }

    /// libvirt on the host, through the master.
    pub fn virsh(&self) -> &Virsh {
        &self.virsh
    }

    /// Start the master once; every later call reuses it (or its error).
    fn connect(&self) -> Result<()> {
        let started = self.master.get_or_init(|| match self.ssh.master().run() {
            // The master lives in a session of its own (`-f`): nothing
            // bkt's terminal does reaches it, so its end is arranged now.
            Ok(_) => Ok(Mutex::new(
                Cmd::on_exit(&[self.ssh.exit(), ssh::remove_private_dir(self._dir.path())]).ok(),
            )),
            Err(e) => Err(self.describe(&e)),
        });
        match started {
            Ok(_) => Ok(()),
            Err((what, Some(fix))) => Err(anyhow!("{what}")).hint(fix.clone()),
            Err((what, None)) => Err(anyhow!("{what}")),
        }
    }

    fn describe(&self, e: &ExecError) -> Failure {
        if let ExecError::NotFound { .. } = e {
            return (
                e.to_string(),
                crate::tools::package_hint("ssh").map(|p| format!("install it: {p}")),
            );
        }
        match ssh::failure(e.stderr(), Some(self.ssh.target())) {
            Some((what, fix)) => (what, Some(fix)),
            None => (e.to_string(), None),
        }
    }

    /// Run a command line on the host over the master; its exit status is
    /// the caller's to judge, ssh's own failures are errors.
    fn exec(&self, script: &str, input: Option<Vec<u8>>) -> Result<Output> {
        self.connect()?;
        let mut cmd = self.ssh.run(script);
        if let Some(bytes) = input {
            cmd = cmd.input(bytes);
        }
        let out = cmd.run_unchecked().map_err(crate::tools::program_error)?;
        if out.status.code() == Some(255)
            && let Some((what, fix)) = ssh::failure(&out.stderr, Some(self.ssh.target()))
        {
            return Err(anyhow!("{what}")).hint(fix);
        }
        Ok(out)
    }

    /// [`SshHost::exec`] as an io result: stdout, or the error the
    /// command printed, of the kind its words name.
    fn io(&self, script: &str) -> io::Result<String> {
        self.io_with(script, None)
    }

    fn io_with(&self, script: &str, input: Option<Vec<u8>>) -> io::Result<String> {
        let out = self
            .exec(script, input)
            .map_err(|e| io::Error::other(format!("{e:#}")))?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(remote_io_error(&out.stderr))
        }
    }

    fn checked(&self, script: &str, input: Option<Vec<u8>>, what: &str) -> Result<()> {
        // The io error stays in the chain: a caller tells a denied
        // permission from other failures by its kind.
        self.io_with(script, input)
            .map(|_| ())
            .with_context(|| format!("{what} on {}", self.ssh.target().host))
    }
}

impl Drop for SshHost {
    fn drop(&mut self) {
        if let Some(Ok(sentinel)) = self.master.take() {
            match sentinel.into_inner().ok().flatten() {
                Some(s) => s.finish(),
                None => {
                    let _ = self.ssh.exit().run();
                }
            }
        }
    }
}

/// An error a command printed on the host, as the io error it names.
fn remote_io_error(stderr: &str) -> io::Error {
    let msg = stderr
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("failed")
        .to_string();
    let kind = if msg.contains("No such file or directory") {
        io::ErrorKind::NotFound
    } else if msg.contains("Permission denied") {
        io::ErrorKind::PermissionDenied
    } else if msg.contains("File exists") {
        io::ErrorKind::AlreadyExists
    } else {
        io::ErrorKind::Other
    };
    io::Error::new(kind, msg)
}

/// A path for a command on the host: absolute only (no `-x` that a tool
/// could take for an option, no surprise from the remote login directory).
fn arg(p: &Path) -> io::Result<String> {
    if p.is_absolute() {
        Ok(quote_path(p))
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not an absolute path", p.display()),
        ))
    }
}

/// send_new's exit statuses on the host: a path that is taken, one that
/// cannot be made.
const EXISTS: i32 = 17;
const NOT_MADE: i32 = 18;

fn kind_of(mode: u32) -> Kind {
    match mode & 0o170000 {
        0o100000 => Kind::File,
        0o040000 => Kind::Dir,
        0o060000 => Kind::Block,
        0o120000 => Kind::Symlink,
        _ => Kind::Other,
    }
}

impl SshHost {
    fn stat_of(&self, p: &Path, follow: bool) -> io::Result<Stat> {
        arg(p)?;
        let out = self.io(&ssh::stat_script(p, follow))?;
        let st = ssh::parse_stat(&out).map_err(|e| io::Error::other(e.to_string()))?;
        Ok(Stat {
            kind: kind_of(st.mode),
            len: st.len,
            mode: st.mode & 0o7777,
            uid: st.uid,
            gid: st.gid,
        })
    }

    /// Write `bytes` to a new file (never over one), then flush it.
    fn write_new_file(&self, p: &Path, bytes: Vec<u8>, mode: u32) -> Result<()> {
        arg(p)?;
        self.checked(
            &script::write_new(p, mode),
            Some(bytes),
            &format!("writing {}", p.display()),
        )
    }
}

impl HostFiles for SshHost {
    fn writable(&self, dir: &Path) -> bool {
        arg(dir).is_ok() && self.io(&script::writable(dir)).is_ok()
    }

    fn open_rw(&self, dev: &Path) -> io::Result<()> {
        arg(dev)?;
        self.io(&script::open_rw(dev)).map(|_| ())
    }

    fn open_read(&self, p: &Path) -> io::Result<()> {
        arg(p)?;
        self.io(&script::open_read(p)).map(|_| ())
    }

    fn stat(&self, p: &Path) -> io::Result<Stat> {
        self.stat_of(p, true)
    }

    fn lstat(&self, p: &Path) -> io::Result<Stat> {
        self.stat_of(p, false)
    }

    fn perms(&self, p: &Path) -> Result<Perms> {
        // Only the media access check of a local qemu:///system asks.
        Err(anyhow!(
            "the permissions of {} on {} are not read over ssh",
            p.display(),
            self.ssh.target().host
        ))
    }

    fn canonicalize(&self, p: &Path) -> io::Result<PathBuf> {
        arg(p)?;
        let out = self.io(&script::canonicalize(p))?;
        Ok(PathBuf::from(out.trim_end_matches('\n')))
    }

    fn read_at(&self, p: &Path, off: u64, len: usize) -> io::Result<Vec<u8>> {
        arg(p)?;
        let out = self.io(&ssh::read_at_script(p, off, len))?;
        ssh::parse_hex_dump(&out).map_err(|e| io::Error::other(e.to_string()))
    }

    fn read_to_string(&self, p: &Path) -> io::Result<String> {
        arg(p)?;
        self.io(&script::cat(p))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        arg(dir)?;
        let out = self.io(&script::list(dir))?;
        Ok(out
            .split('\0')
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect())
    }

    fn create_new(&self, p: &Path, mode: u32) -> io::Result<()> {
        arg(p)?;
        self.io(&script::create_new(p, mode)).map(|_| ())
    }

    fn write_new(&self, p: &Path, bytes: &[u8], mode: u32) -> Result<()> {
        self.write_new_file(p, bytes.to_vec(), mode)
    }

    fn send_new(&self, local: &Path, p: &Path, mode: u32, sent: &mut dyn FnMut(u64)) -> Result<()> {
        arg(p)?;
        let mut from =
            std::fs::File::open(local).with_context(|| format!("reading {}", local.display()))?;
        self.connect()?;
        let what = || {
            format!(
                "copying {} to {}:{}",
                local.display(),
                self.ssh.target().host,
                p.display()
            )
        };
        let line = script::send_new(p, mode, EXISTS, NOT_MADE);
        match self.ssh.run(&line).run_feeding(&mut from, sent) {
            Ok(_) => Ok(()),
            // Somebody's file, or none made: never ours to remove.
            Err(e) if matches!(e.status(), Some(Status::Code(EXISTS | NOT_MADE))) => {
                Err(anyhow!("{}", remote_io_error(e.stderr()))).with_context(what)
            }
            Err(e) => {
                let removed = self.io(&script::remove_if_there(p));
                let err = match &e {
                    ExecError::Io { err, .. } if err.kind() == io::ErrorKind::Interrupted => {
                        anyhow::Error::new(crate::interrupt::Interrupted)
                    }
                    _ => match ssh::failure(e.stderr(), Some(self.ssh.target())) {
                        Some((why, fix)) => Err::<(), _>(anyhow!("{why}")).hint(fix).unwrap_err(),
                        None => anyhow!("{}", remote_io_error(e.stderr())),
                    },
                };
                let err = err.context(what());
                match removed {
                    Ok(_) => Err(err),
                    Err(why) => Err(LeftBehind::wrap(err, p, why)),
                }
            }
        }
    }

    fn sha256(&self, p: &Path) -> Result<String> {
        arg(p)?;
        let out = self.io(&script::sha256(p)).map_err(|e| {
            anyhow!(
                "cannot hash {} on {}: {e}",
                p.display(),
                self.ssh.target().host
            )
        })?;
        ssh::parse_sha256sum(&out)
    }

    fn create_dir_all(&self, p: &Path) -> io::Result<()> {
        arg(p)?;
        self.io(&script::create_dir_all(p)).map(|_| ())
    }

    fn set_mode(&self, p: &Path, mode: u32) -> io::Result<()> {
        arg(p)?;
        self.io(&script::set_mode(p, mode)).map(|_| ())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        arg(from)?;
        arg(to)?;
        self.io(&script::rename(from, to)).map(|_| ())
    }

    fn remove_file(&self, p: &Path) -> io::Result<()> {
        arg(p)?;
        self.io(&script::remove_file(p)).map(|_| ())
    }

    fn remove_dir(&self, p: &Path) -> io::Result<()> {
        arg(p)?;
        self.io(&script::remove_dir(p)).map(|_| ())
    }

    fn remove_tree(&self, p: &Path) -> io::Result<()> {
        arg(p)?;
        self.io(&script::remove_tree(p)).map(|_| ())
    }

    fn copy_tree(&self, src: &Path, dst: &Path) -> Result<()> {
        arg(src)?;
        arg(dst)?;
        self.checked(
            &script::copy_tree(src, dst),
            None,
            &format!("copying {} to {}", src.display(), dst.display()),
        )
    }

    fn sync(&self, p: &Path) -> Result<()> {
        self.checked(
            &{
                arg(p)?;
                script::sync(p)
            },
            None,
            &format!("syncing {}", p.display()),
        )
    }

    fn tree_size(&self, p: &Path) -> u64 {
        if arg(p).is_err() {
            return 0;
        }
        self.io(&script::tree_size(p))
            .map(|out| out.lines().filter_map(|l| l.parse::<u64>().ok()).sum())
            .unwrap_or(0)
    }
}

impl HostProcs for SshHost {
    fn open(&self) -> Result<()> {
        self.connect()
    }

    fn run_tool(&self, cmd: &Cmd) -> Result<String> {
        let out = self.exec(&cmd.display(), None)?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(anyhow!(
                "`{}` failed on {}: {}",
                cmd.display(),
                self.ssh.target().host,
                remote_io_error(&out.stderr)
            ))
        }
    }

    fn login(&self) -> Result<u32> {
        self.connect()?;
        let out = self.exec("id -u", None)?;
        let id: u32 = out
            .stdout
            .trim()
            .parse()
            .with_context(|| format!("unexpected output of `id -u`: {:?}", out.stdout))?;
        let _ = self.euid.set(Some(id));
        Ok(id)
    }

    fn program_version(&self, program: &str) -> Option<String> {
        self.io(&crate::tools::version::script(program)).ok()
    }
}

impl HostNet for SshHost {
    fn probe(&self, ip: &str, port: u16, timeout: Duration) -> PortState {
        self.probe_all(&[ip.to_string()], port, timeout)[0]
    }

    fn probe_all(&self, ips: &[String], port: u16, timeout: Duration) -> Vec<PortState> {
        let mut states = vec![PortState::NoAnswer; ips.len()];
        let valid: Vec<(usize, IpAddr)> = ips
            .iter()
            .enumerate()
            .filter_map(|(i, ip)| Some((i, ip.parse().ok()?)))
            .collect();
        if valid.is_empty() {
            return states;
        }
        let addrs: Vec<IpAddr> = valid.iter().map(|(_, a)| *a).collect();
        let Ok(out) = self.io(&ssh::probe_script(&addrs, port, timeout)) else {
            return states;
        };
        for ((i, _), r) in valid.iter().zip(ssh::parse_probes(&out, addrs.len())) {
            states[*i] = match r {
                Reach::Open => PortState::Open,
                Reach::Refused => PortState::Refused,
                Reach::NoAnswer => PortState::NoAnswer,
            };
        }
        states
    }

    fn reach_from_here(&self, ip: &str, port: u16) -> Result<(String, u16)> {
        let guest: IpAddr = ip
            .parse()
            .map_err(|_| anyhow!("{ip:?} is not an IP address"))?;
        self.connect()?;
        // A free port of this machine's loopback: the kernel picks it, ssh
        // takes it over right after (only we listen on 127.0.0.1 there).
        let local = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free local port for the ssh tunnel")?
            .port();
        self.ssh
            .forward(local, guest, port)
            .run()
            .map_err(
                |e| match ssh::failure(e.stderr(), Some(self.ssh.target())) {
                    Some((what, fix)) => Err::<(), _>(anyhow!("{what}")).hint(fix).unwrap_err(),
                    None => anyhow::Error::new(e),
                },
            )
            .with_context(|| {
                format!(
                    "cannot open an ssh tunnel to {ip}:{port} through {}",
                    self.ssh.target().host
                )
            })?;
        Ok(("127.0.0.1".to_string(), local))
    }

    fn own_tunnel(&self, ip: &str, port: u16, socket: &Path) -> Result<Option<OwnTunnel>> {
        let guest: IpAddr = ip
            .parse()
            .map_err(|_| anyhow!("{ip:?} is not an IP address"))?;
        // ssh removes the socket when the tunnel ends.
        let tunnel = Ssh::new(self.ssh.target().clone(), socket);
        let local = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free local port for the ssh tunnel")?
            .port();
        tunnel
            .tunnel(local, guest, port)
            .run()
            .map_err(|e| self.describe(&e))
            .map_err(|(what, fix)| match fix {
                Some(fix) => Err::<(), _>(anyhow!("{what}")).hint(fix).unwrap_err(),
                None => anyhow!("{what}"),
            })
            .with_context(|| {
                format!(
                    "cannot open an ssh tunnel to {ip}:{port} through {}",
                    self.ssh.target().host
                )
            })?;
        Ok(Some(OwnTunnel::new(
            "127.0.0.1".into(),
            local,
            tunnel.exit(),
        )))
    }

    fn tcp_established(&self) -> Vec<(SocketAddr, SocketAddr)> {
        self.io("cat /proc/net/tcp /proc/net/tcp6")
            .map(|t| parse_proc_net_tcp(&t))
            .unwrap_or_default()
    }
}

impl HostMachine for SshHost {
    fn size(&self) -> Result<HostSize> {
        // The first thing most commands ask the host: an ssh that cannot
        // get in is said here, with its fix, rather than as answers that
        // quietly went missing later (no free space known, no probe).
        self.connect()?;
        let out = self
            .virsh
            .nodeinfo()
            .stdout()
            .map_err(|e| super::libvirt_error_on(e, self.uri.as_ref()))
            .context("cannot read the host's size from libvirt")?;
        let (memory_bytes, cpus) = virsh::parse_nodeinfo(&out)?;
        Ok(HostSize { memory_bytes, cpus })
    }

    fn free_space(&self, dir: &Path) -> Option<u64> {
        arg(dir).ok()?;
        ssh::parse_df(&self.io(&ssh::df_script(dir)).ok()?)
    }

    fn accounts(&self) -> (String, String) {
        let out = self
            .io("cat /etc/passwd; echo @@bkt; cat /etc/group")
            .unwrap_or_default();
        match out.split_once("@@bkt\n") {
            Some((p, g)) => (p.to_string(), g.to_string()),
            None => (String::new(), String::new()),
        }
    }

    fn is_root(&self) -> bool {
        self.euid() == 0
    }

    fn euid(&self) -> u32 {
        let id = self
            .euid
            .get_or_init(|| self.io("id -u").ok()?.trim().parse().ok());
        // Unknown: nobody's id, so nothing is assumed allowed.
        id.unwrap_or(u32::MAX)
    }

    fn home(&self) -> Option<PathBuf> {
        let out = self.io("printf '%s' \"$HOME\"").ok()?;
        (out.starts_with('/') && !out.contains('\n')).then(|| PathBuf::from(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_the_host_printed_keep_their_kind() {
        let fx = |f: &str| {
            let p = format!("{}/fixtures/ssh/{f}", env!("CARGO_MANIFEST_DIR"));
            std::fs::read_to_string(&p).unwrap()
        };
        let e = remote_io_error(&fx("stat-missing.err"));
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(
            e.to_string()
                .ends_with("/remote/missing': No such file or directory")
        );
        assert_eq!(
            remote_io_error("/x: File exists\n").kind(),
            io::ErrorKind::AlreadyExists
        );
        assert_eq!(remote_io_error("").to_string(), "failed");
        assert_eq!(
            arg(Path::new("-rf")).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(arg(Path::new("/a b")).unwrap(), "'/a b'");
    }

    #[test]
    fn kinds_from_the_raw_mode() {
        let fx = |f: &str| {
            let p = format!("{}/fixtures/ssh/{f}", env!("CARGO_MANIFEST_DIR"));
            ssh::parse_stat(&std::fs::read_to_string(&p).unwrap()).unwrap()
        };
        assert_eq!(kind_of(fx("stat-file.txt").mode), Kind::File);
        assert_eq!(kind_of(fx("stat-dir.txt").mode), Kind::Dir);
        assert_eq!(kind_of(0o060660), Kind::Block);
        assert_eq!(kind_of(0o120777), Kind::Symlink);
        assert_eq!(kind_of(0o140755), Kind::Other);
    }

    /// Every file operation against a real host, which only the end-to-end
    /// tier has: its remote phase (tests/e2e/remote.rs) runs this test
    /// against its sshd, with `BKT_TEST_SSH_URI` set. It works in a fresh
    /// directory under /tmp there and removes it.
    #[test]
    #[ignore = "needs a real ssh host: the end-to-end tier's remote phase runs it"]
    fn real_host_file_operations() {
        let uri: crate::names::Uri = std::env::var("BKT_TEST_SSH_URI")
            .expect("BKT_TEST_SSH_URI")
            .parse()
            .unwrap();
        // bkt passes its PATH on (settings.path): virsh is found there.
        let path = std::env::var("PATH").ok();
        let h = SshHost::new(uri.ssh().unwrap().clone(), uri.as_str(), path.as_deref()).unwrap();
        let top = PathBuf::from(h.io("mktemp -d /tmp/bkt-real.XXXXXX").unwrap().trim());
        let d = top.join("a dir");
        h.create_dir_all(&d.join("tpm2")).unwrap();
        assert_eq!(h.stat(&d).unwrap().kind, Kind::Dir);
        let f = d.join("it's.txt");
        h.write_new(&f, b"hello", 0o640).unwrap();
        let e = h.write_new(&f, b"again", 0o600).unwrap_err();
        assert!(format!("{e:#}").contains("File exists"), "{e:#}");
        assert_eq!(h.read_to_string(&f).unwrap(), "hello");
        let st = h.stat(&f).unwrap();
        assert_eq!((st.kind, st.len, st.mode), (Kind::File, 5, 0o640));
        assert_eq!(
            h.create_new(&f, 0o600).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        let n = d.join("new");
        h.create_new(&n, 0o600).unwrap();
        assert_eq!(h.stat(&n).unwrap().mode, 0o600);
        h.set_mode(&n, 0o644).unwrap();
        assert_eq!(h.stat(&n).unwrap().mode, 0o644);
        let mut l = h.list(&d).unwrap();
        l.sort();
        assert_eq!(l, [f.clone(), d.join("new"), d.join("tpm2")]);
        let copy = top.join("copy");
        h.copy_tree(&d, &copy).unwrap();
        assert!(h.copy_tree(&d, &copy).is_err(), "never over a path");
        assert_eq!(h.stat(&copy.join("it's.txt")).unwrap().mode, 0o640);
        assert_eq!(h.tree_size(&copy), 5);
        h.rename(&copy.join("new"), &copy.join("renamed")).unwrap();
        assert!(h.exists(&copy.join("renamed")) && !h.exists(&copy.join("new")));
        assert_eq!(
            h.stat(&top.join("missing")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(h.canonicalize(&copy.join("../a dir")).unwrap(), d);
        assert!(h.free_space(&top.join("not/yet")).unwrap() > 0);
        assert!(h.writable(&top));
        h.open_read(&f).unwrap();
        h.sync(&f).unwrap();
        h.remove_file(&n).unwrap();
        assert_eq!(
            h.remove_file(&n).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        h.remove_dir(&d.join("tpm2")).unwrap();
        h.remove_tree(&top).unwrap();
        assert!(!h.exists(&top));
        assert!(h.is_root());
        let (passwd, group) = h.accounts();
        assert!(passwd.starts_with("root:") && group.starts_with("root:"));
        assert_eq!(
            h.size().unwrap().cpus as usize,
            std::thread::available_parallelism().unwrap().get()
        );
    }
}
