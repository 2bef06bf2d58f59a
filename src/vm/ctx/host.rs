//! The machine that runs libvirt, as the one door every effect on it goes
//! through: its size, its files (disks, NVRAM, TPM state, snapshot copies,
//! the media QEMU opens), its user database (QEMU's user), and TCP to a
//! guest on its network. [`LocalHost`] is this machine; a host reached over
//! ssh is one more implementation of [`Host`], and tests have a fake
//! (`ctx/fake.rs`).
//!
//! [`Host`] is four parts by concern, each with its error convention in its
//! doc: [`HostFiles`] (24 methods), [`HostProcs`] (4), [`HostNet`] (5) and
//! [`HostMachine`] (6). In short: `io::Result` for one file operation whose
//! kind a caller tells apart, `anyhow::Result` for everything else that can
//! fail, and a plain value for the questions whose "cannot tell" is an
//! answer the callers rely on (each named in its part's doc).

// why: the door: the machine that runs libvirt, its files, processes and sockets.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::fs::{self, File, OpenOptions};
use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::exec::Cmd;
use crate::settings::Settings;
use crate::tools::acl::{self, Perms};

/// The error of a [`Host::send_new`] that made its file, failed, and could
/// not remove it: the error as it was (it shows as that error and keeps its
/// causes), and what is left on the host and why it stayed, for the caller
/// to name with its fix instead of saying nothing is left.
#[derive(Debug)]
pub struct LeftBehind {
    pub path: PathBuf,
    pub why: String,
    inner: anyhow::Error,
}

impl LeftBehind {
    pub fn wrap(inner: anyhow::Error, path: &Path, why: impl std::fmt::Display) -> anyhow::Error {
        anyhow::Error::new(LeftBehind {
            path: path.to_path_buf(),
            why: why.to_string(),
            inner,
        })
    }
}

impl std::fmt::Display for LeftBehind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.inner, f)
    }
}

impl std::error::Error for LeftBehind {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner.source()
    }
}

/// A tunnel through the host that lasts as long as one client (a detached
/// one, which outlives bkt and bkt's own ssh connection): where the client
/// connects, and how the tunnel ends. Ended when dropped, unless handed to
/// the client's command with [`OwnTunnel::hand_over`].
pub struct OwnTunnel {
    pub host: String,
    pub port: u16,
    end: Option<Cmd>,
}

impl OwnTunnel {
    pub fn new(host: String, port: u16, end: Cmd) -> OwnTunnel {
        OwnTunnel {
            host,
            port,
            end: Some(end),
        }
    }

    /// The command that ends the tunnel, for the client's command to run
    /// once the client has ended (no longer ended when dropped).
    pub fn hand_over(mut self) -> Cmd {
        self.end.take().expect("not yet handed over")
    }
}

impl Drop for OwnTunnel {
    fn drop(&mut self) {
        if let Some(end) = self.end.take() {
            let _ = end.run();
        }
    }
}

/// What the host has to give VMs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostSize {
    pub memory_bytes: u64,
    pub cpus: u32,
}

/// What a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Block,
    Symlink,
    Other,
}

/// A path's kind, size and owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub kind: Kind,
    pub len: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// What a TCP connect to a guest's port found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PortState {
    /// Something accepted the connection.
    Open,
    /// The guest answered with a reset: it is up, nothing listens.
    Refused,
    /// Nothing came back in time: still booting, or a firewall drops it.
    NoAnswer,
}

impl PortState {
    pub fn label(self) -> &'static str {
        match self {
            PortState::Open => "answers",
            PortState::Refused => "refused",
            PortState::NoAnswer => "no answer",
        }
    }
}

/// Every effect on the machine that runs libvirt: its files, processes,
/// sockets and its own facts. Implemented by every type that implements
/// the four parts; code takes `&dyn Host` (or `ctx.host`) and calls any of
/// their methods. A new method goes in the part of its concern (a
/// positioned read is [`HostFiles`]), in each implementation's block of
/// that part, and in the fake (`ctx/fake.rs`).
pub trait Host: HostFiles + HostProcs + HostNet + HostMachine {}

impl<T: HostFiles + HostProcs + HostNet + HostMachine + ?Sized> Host for T {}

/// The host's files: read, write, list, rename, remove, modes and owners.
/// Errors: `io::Result` where callers branch on the kind (`NotFound`,
/// `AlreadyExists`); `anyhow` for the operations made of several steps
/// (`write_new`, `send_new`, `copy_tree`, `sync`, `sha256`, `perms`), whose
/// error names the path and the step. `exists`, `writable` and `tree_size`
/// answer a question whose "cannot tell" is an answer (false, false, 0):
/// every caller uses them that way (a missing directory is made, a
/// directory that cannot be checked is said unwritable, an unreadable tree
/// counts nothing towards the space a snapshot needs).
pub trait HostFiles {
    /// Whether we may create files in `dir`.
    fn writable(&self, dir: &Path) -> bool;

    /// Whether a device (`/dev/kvm`) opens for reading and writing.
    fn open_rw(&self, dev: &Path) -> io::Result<()>;

    /// Whether a file opens for reading.
    fn open_read(&self, p: &Path) -> io::Result<()>;

    /// What a path is, following symlinks.
    fn stat(&self, p: &Path) -> io::Result<Stat>;

    /// What a path is, not following a symlink.
    fn lstat(&self, p: &Path) -> io::Result<Stat>;

    fn exists(&self, p: &Path) -> bool {
        self.stat(p).is_ok()
    }

    /// Owner, group, mode and POSIX ACL, for another user's access.
    fn perms(&self, p: &Path) -> Result<Perms>;

    fn canonicalize(&self, p: &Path) -> io::Result<PathBuf>;

    fn read_to_string(&self, p: &Path) -> io::Result<String>;
    /// `len` bytes at byte `off` of a file there, fewer at its end: what
    /// is inside an ISO, read where it lies without copying it.
    fn read_at(&self, p: &Path, off: u64, len: usize) -> io::Result<Vec<u8>>;

    /// The entries of a directory.
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;

    /// Create an empty file that did not exist.
    fn create_new(&self, p: &Path, mode: u32) -> io::Result<()>;

    /// Write a file that did not exist, and flush it.
    fn write_new(&self, p: &Path, bytes: &[u8], mode: u32) -> Result<()>;

    /// Copy a file of this (the local) machine to a new file on the host
    /// (never over one), `sent` told the bytes copied so far; a copy that
    /// fails is removed, or the error is a [`LeftBehind`] naming it.
    fn send_new(&self, local: &Path, p: &Path, mode: u32, sent: &mut dyn FnMut(u64)) -> Result<()>;

    /// [`Host::send_new`] of a small file, nobody told.
    fn install_new(&self, local: &Path, p: &Path, mode: u32) -> Result<()> {
        self.send_new(local, p, mode, &mut |_| {})
    }

    /// The SHA-256 of a file there, in hex.
    fn sha256(&self, p: &Path) -> Result<String>;

    fn create_dir_all(&self, p: &Path) -> io::Result<()>;

    fn set_mode(&self, p: &Path, mode: u32) -> io::Result<()>;

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    fn remove_file(&self, p: &Path) -> io::Result<()>;

    fn remove_dir(&self, p: &Path) -> io::Result<()>;

    fn remove_tree(&self, p: &Path) -> io::Result<()>;

    /// Copy a file or a tree to a path that does not exist yet, keeping
    /// modes and (as root) owners, every file and directory flushed.
    fn copy_tree(&self, src: &Path, dst: &Path) -> Result<()>;

    /// Flush a file or a directory (its entries) to disk.
    fn sync(&self, p: &Path) -> Result<()>;

    /// Bytes under a path (a file, or a tree).
    fn tree_size(&self, p: &Path) -> u64;
}

/// Programs there: the login (over ssh), tools run on the host's files,
/// and what is installed. Errors: `anyhow`, naming the program and its
/// fix; `program_version` answers None for "not installed".
pub trait HostProcs {
    /// Be ready for the command's calls: over ssh, log in once (the
    /// connection every later call, libvirt's own too, goes through), so
    /// an unreachable host is said first, with its fix.
    fn open(&self) -> Result<()> {
        Ok(())
    }

    /// Run a tool there (`qemu-img` on the host's files); its stdout.
    fn run_tool(&self, cmd: &Cmd) -> Result<String>;

    /// Get in and say who we are there (our user id): nothing to do on
    /// this machine; over ssh, the login, with its failure and fix.
    fn login(&self) -> Result<u32>;

    /// What `PROGRAM --version` prints there, or None when it is not
    /// installed.
    fn program_version(&self, program: &str) -> Option<String>;
}

/// TCP from the host's side to the guests: probes, the host's established
/// connections, and the way a client here reaches a guest. A probe's
/// failure is its answer ([`PortState`]); unreadable connection tables are
/// none; the rest is `anyhow`.
pub trait HostNet {
    /// One TCP connect to a guest's port, from the host's side.
    fn probe(&self, ip: &str, port: u16, timeout: Duration) -> PortState;

    /// Many at once (a few threads share the list).
    fn probe_all(&self, ips: &[String], port: u16, timeout: Duration) -> Vec<PortState>;

    /// The established TCP connections there, as (local, remote) ends.
    fn tcp_established(&self) -> Vec<(SocketAddr, SocketAddr)>;

    /// Where (host, port) a client on this machine reaches a guest's
    /// `port`: the guest itself when the host is this machine, else the
    /// local end of a tunnel through the host (`127.0.0.1`, a free port;
    /// open until the command ends).
    fn reach_from_here(&self, ip: &str, port: u16) -> Result<(String, u16)>;

    /// [`Host::reach_from_here`] for a client that outlives bkt: None when
    /// it reaches the guest itself (this machine); over ssh a tunnel of its
    /// own (one more login), its control socket at `socket`.
    fn own_tunnel(&self, _ip: &str, _port: u16, _socket: &Path) -> Result<Option<OwnTunnel>> {
        Ok(None)
    }
}

/// The machine's own facts: its size and free space, who we are there,
/// its home and accounts. `size` is `anyhow`; the rest are facts with a
/// fallback the callers expect (no free space known: None, no accounts
/// readable: empty databases, no home: None).
pub trait HostMachine {
    /// Its memory and cores.
    fn size(&self) -> Result<HostSize>;

    /// Free bytes on the file system holding `dir` (or its nearest parent).
    fn free_space(&self, dir: &Path) -> Option<u64>;

    /// The user and group databases (`passwd`, `group`).
    fn accounts(&self) -> (String, String);

    /// We are root there (owners can be kept, anything granted).
    fn is_root(&self) -> bool;

    /// Our user id there.
    fn euid(&self) -> u32;

    /// Our home directory there (where a `/session` libvirt keeps its
    /// files).
    fn home(&self) -> Option<PathBuf>;
}

/// This machine.
pub struct LocalHost {
    /// `BKT_VM_HOST_MEMORY` / `BKT_VM_HOST_CPUS`, and `BKT_VM_ETC`: tests
    /// pin the host's size and accounts.
    memory: Option<String>,
    cpus: Option<String>,
    etc: PathBuf,
    home: Option<PathBuf>,
}

impl LocalHost {
    pub fn new(s: &Settings) -> LocalHost {
        LocalHost {
            memory: s.hooks.host_memory.clone(),
            cpus: s.hooks.host_cpus.clone(),
            etc: s.hooks.etc.clone(),
            home: s.home.clone(),
        }
    }
}

fn stat_of(m: &fs::Metadata) -> Stat {
    let t = m.file_type();
    let kind = if t.is_file() {
        Kind::File
    } else if t.is_dir() {
        Kind::Dir
    } else if t.is_block_device() {
        Kind::Block
    } else if t.is_symlink() {
        Kind::Symlink
    } else {
        Kind::Other
    };
    Stat {
        kind,
        len: m.len(),
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
    }
}

fn open_new(p: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(p)
}

impl HostFiles for LocalHost {
    fn writable(&self, dir: &Path) -> bool {
        rustix::fs::access(dir, rustix::fs::Access::WRITE_OK).is_ok()
    }

    fn open_rw(&self, dev: &Path) -> io::Result<()> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(dev)
            .map(|_| ())
    }

    fn open_read(&self, p: &Path) -> io::Result<()> {
        File::open(p).map(|_| ())
    }

    fn stat(&self, p: &Path) -> io::Result<Stat> {
        fs::metadata(p).map(|m| stat_of(&m))
    }

    fn lstat(&self, p: &Path) -> io::Result<Stat> {
        fs::symlink_metadata(p).map(|m| stat_of(&m))
    }

    fn perms(&self, p: &Path) -> Result<Perms> {
        let st = self
            .stat(p)
            .with_context(|| format!("reading {}", p.display()))?;
        let mut buf = vec![0u8; 1024];
        let acl = match rustix::fs::getxattr(p, acl::ACCESS_XATTR, &mut buf) {
            Ok(n) => acl::parse_xattr(&buf[..n])
                .with_context(|| format!("reading the ACL of {}", p.display()))?,
            // No ACL, or a file system without them: the mode bits decide.
            Err(_) => Vec::new(),
        };
        Ok(Perms {
            uid: st.uid,
            gid: st.gid,
            mode: st.mode,
            acl,
        })
    }

    fn canonicalize(&self, p: &Path) -> io::Result<PathBuf> {
        fs::canonicalize(p)
    }

    fn read_at(&self, p: &Path, off: u64, len: usize) -> io::Result<Vec<u8>> {
        pread(p, off, len)
    }

    fn read_to_string(&self, p: &Path) -> io::Result<String> {
        fs::read_to_string(p)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect()
    }

    fn create_new(&self, p: &Path, mode: u32) -> io::Result<()> {
        open_new(p, mode).map(|_| ())
    }

    fn write_new(&self, p: &Path, bytes: &[u8], mode: u32) -> Result<()> {
        let mut f = open_new(p, mode).with_context(|| format!("creating {}", p.display()))?;
        std::io::Write::write_all(&mut f, bytes)
            .and_then(|()| f.sync_all())
            .with_context(|| format!("writing {}", p.display()))
    }

    fn send_new(&self, local: &Path, p: &Path, mode: u32, sent: &mut dyn FnMut(u64)) -> Result<()> {
        let mut from = File::open(local).with_context(|| format!("reading {}", local.display()))?;
        let mut to = open_new(p, mode).with_context(|| format!("creating {}", p.display()))?;
        let mut copy = || -> io::Result<()> {
            let mut buf = vec![0u8; 1 << 20];
            let mut total = 0u64;
            loop {
                let n = std::io::Read::read(&mut from, &mut buf)?;
                if n == 0 {
                    return to.sync_all();
                }
                std::io::Write::write_all(&mut to, &buf[..n])?;
                total += n as u64;
                sent(total);
            }
        };
        copy()
            .with_context(|| format!("writing {}", p.display()))
            .map_err(|e| match fs::remove_file(p) {
                Ok(()) => e,
                Err(why) => LeftBehind::wrap(e, p, why),
            })
    }

    fn sha256(&self, p: &Path) -> Result<String> {
        crate::download::sha256_file(p)
    }

    fn create_dir_all(&self, p: &Path) -> io::Result<()> {
        fs::create_dir_all(p)
    }

    fn set_mode(&self, p: &Path, mode: u32) -> io::Result<()> {
        fs::set_permissions(p, fs::Permissions::from_mode(mode))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, p: &Path) -> io::Result<()> {
        fs::remove_file(p)
    }

    fn remove_dir(&self, p: &Path) -> io::Result<()> {
        fs::remove_dir(p)
    }

    fn remove_tree(&self, p: &Path) -> io::Result<()> {
        fs::remove_dir_all(p)
    }

    fn copy_tree(&self, src: &Path, dst: &Path) -> Result<()> {
        let meta =
            fs::symlink_metadata(src).with_context(|| format!("reading {}", src.display()))?;
        if meta.is_dir() {
            fs::create_dir(dst).with_context(|| format!("creating {}", dst.display()))?;
            for e in fs::read_dir(src).with_context(|| format!("reading {}", src.display()))? {
                let e = e?;
                self.copy_tree(&e.path(), &dst.join(e.file_name()))?;
            }
        } else if meta.is_file() {
            let mut from = File::open(src).with_context(|| format!("reading {}", src.display()))?;
            // Private until its mode is set.
            let mut to =
                open_new(dst, 0o600).with_context(|| format!("creating {}", dst.display()))?;
            std::io::copy(&mut from, &mut to)
                .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
        } else {
            // Sockets and the like are not state.
            return Ok(());
        }
        self.sync(dst)?;
        fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777))
            .with_context(|| format!("setting the mode of {}", dst.display()))?;
        if self.is_root() {
            std::os::unix::fs::chown(dst, Some(meta.uid()), Some(meta.gid()))
                .with_context(|| format!("setting the owner of {}", dst.display()))?;
        }
        Ok(())
    }

    fn sync(&self, p: &Path) -> Result<()> {
        File::open(p)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("syncing {}", p.display()))
    }

    fn tree_size(&self, p: &Path) -> u64 {
        match fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() => fs::read_dir(p)
                .map(|rd| rd.flatten().map(|e| self.tree_size(&e.path())).sum())
                .unwrap_or(0),
            Ok(m) => m.len(),
            Err(_) => 0,
        }
    }
}

impl HostProcs for LocalHost {
    fn run_tool(&self, cmd: &Cmd) -> Result<String> {
        cmd.stdout().map_err(crate::tools::program_error)
    }

    fn login(&self) -> Result<u32> {
        Ok(self.euid())
    }

    fn program_version(&self, program: &str) -> Option<String> {
        which::which(program).ok()?;
        let out = crate::tools::version::cmd(program).run_unchecked().ok()?;
        Some(format!("{}{}", out.stdout, out.stderr))
    }
}

impl HostNet for LocalHost {
    fn probe(&self, ip: &str, port: u16, timeout: Duration) -> PortState {
        let Ok(addr) = ip.parse::<IpAddr>() else {
            return PortState::NoAnswer;
        };
        match TcpStream::connect_timeout(&SocketAddr::new(addr, port), timeout) {
            Ok(_) => PortState::Open,
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => PortState::Refused,
            Err(_) => PortState::NoAnswer,
        }
    }

    fn probe_all(&self, ips: &[String], port: u16, timeout: Duration) -> Vec<PortState> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        const WORKERS: usize = 16;
        let next = AtomicUsize::new(0);
        let results: Vec<std::sync::Mutex<PortState>> = ips
            .iter()
            .map(|_| std::sync::Mutex::new(PortState::NoAnswer))
            .collect();
        std::thread::scope(|s| {
            for _ in 0..WORKERS.min(ips.len()) {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(ip) = ips.get(i) else { break };
                        let st = self.probe(ip, port, timeout);
                        if let Ok(mut r) = results[i].lock() {
                            *r = st;
                        }
                    }
                });
            }
        });
        results
            .into_iter()
            .map(|m| m.into_inner().unwrap_or(PortState::NoAnswer))
            .collect()
    }

    fn reach_from_here(&self, ip: &str, port: u16) -> Result<(String, u16)> {
        Ok((ip.to_string(), port))
    }

    fn tcp_established(&self) -> Vec<(SocketAddr, SocketAddr)> {
        ["/proc/net/tcp", "/proc/net/tcp6"]
            .iter()
            .filter_map(|p| fs::read_to_string(p).ok())
            .flat_map(|t| parse_proc_net_tcp(&t))
            .collect()
    }
}

impl HostMachine for LocalHost {
    fn size(&self) -> Result<HostSize> {
        let memory_bytes = match &self.memory {
            Some(v) => crate::units::parse_size(v).context("BKT_VM_HOST_MEMORY")?,
            None => {
                let info =
                    fs::read_to_string("/proc/meminfo").context("cannot read /proc/meminfo")?;
                info.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                    .map(|kib| kib * 1024)
                    .context("no MemTotal in /proc/meminfo")?
            }
        };
        let cpus = match &self.cpus {
            Some(v) => v.parse().context("BKT_VM_HOST_CPUS is not a number")?,
            None => std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1),
        };
        Ok(HostSize { memory_bytes, cpus })
    }

    fn free_space(&self, dir: &Path) -> Option<u64> {
        let probe = dir.ancestors().find(|p| p.exists())?;
        let st = rustix::fs::statvfs(probe).ok()?;
        Some(st.f_bavail.saturating_mul(st.f_frsize))
    }

    fn accounts(&self) -> (String, String) {
        (
            fs::read_to_string(self.etc.join("passwd")).unwrap_or_default(),
            fs::read_to_string(self.etc.join("group")).unwrap_or_default(),
        )
    }

    fn is_root(&self) -> bool {
        self.euid() == 0
    }

    fn euid(&self) -> u32 {
        rustix::process::geteuid().as_raw()
    }

    fn home(&self) -> Option<PathBuf> {
        self.home.clone()
    }
}

/// The established connections in the kernel's `/proc/net/tcp` or
/// `/proc/net/tcp6` table. Addresses there are the bytes of the address as
/// the machine stores them, printed as native 32-bit words; ports are plain
/// hexadecimal.
pub fn parse_proc_net_tcp(table: &str) -> Vec<(SocketAddr, SocketAddr)> {
    const ESTABLISHED: &str = "01";
    fn addr(field: &str) -> Option<SocketAddr> {
        let (ip, port) = field.split_once(':')?;
        let port = u16::from_str_radix(port, 16).ok()?;
        let mut bytes = Vec::with_capacity(16);
        for word in ip.as_bytes().chunks(8) {
            let word = std::str::from_utf8(word).ok()?;
            bytes.extend(u32::from_str_radix(word, 16).ok()?.to_ne_bytes());
        }
        let ip = match bytes.len() {
            4 => IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
            16 => IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?),
            _ => return None,
        };
        Some(SocketAddr::new(ip, port))
    }
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut f = line.split_whitespace().skip(1);
            let (local, remote, state) = (f.next()?, f.next()?, f.next()?);
            (state == ESTABLISHED).then_some((addr(local)?, addr(remote)?))
        })
        .collect()
}

/// `len` bytes at byte `off` of a file of this machine (fewer at its end),
/// by positioned reads.
pub fn pread(p: &Path, off: u64, len: usize) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let f = File::open(p)?;
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match f.read_at(&mut buf[got..], off + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positioned_reads_stop_at_the_end() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        fs::write(&p, b"0123456789").unwrap();
        assert_eq!(host().read_at(&p, 3, 4).unwrap(), b"3456");
        assert_eq!(host().read_at(&p, 8, 4).unwrap(), b"89");
        assert_eq!(host().read_at(&p, 20, 4).unwrap(), b"");
        assert_eq!(
            host()
                .read_at(&d.path().join("none"), 0, 1)
                .unwrap_err()
                .kind(),
            io::ErrorKind::NotFound
        );
    }

    fn host() -> LocalHost {
        LocalHost::new(&Settings::default())
    }

    #[test]
    fn probe_tells_open_from_refused() {
        let h = host();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let t = Duration::from_millis(500);
        assert_eq!(h.probe("127.0.0.1", port, t), PortState::Open);
        drop(l);
        assert_eq!(h.probe("127.0.0.1", port, t), PortState::Refused);
        assert_eq!(h.probe("not an ip", port, t), PortState::NoAnswer);
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p2 = l.local_addr().unwrap().port();
        let got = h.probe_all(&["127.0.0.1".into(), "127.0.0.1".into()], p2, t);
        assert_eq!(got, [PortState::Open, PortState::Open]);
    }

    #[test]
    fn the_size_can_be_pinned() {
        let h = LocalHost {
            memory: Some("16G".into()),
            cpus: Some("8".into()),
            etc: PathBuf::from("/etc"),
            home: None,
        };
        assert_eq!(
            h.size().unwrap(),
            HostSize {
                memory_bytes: 16 << 30,
                cpus: 8
            }
        );
        let real = host().size().unwrap();
        assert!(real.memory_bytes > 0 && real.cpus > 0);
    }

    #[test]
    fn copies_keep_modes_and_never_overwrite() {
        let h = host();
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        fs::create_dir_all(src.join("tpm2")).unwrap();
        fs::write(src.join("tpm2/state"), "s").unwrap();
        fs::set_permissions(src.join("tpm2/state"), fs::Permissions::from_mode(0o640)).unwrap();
        let dst = d.path().join("dst");
        h.copy_tree(&src, &dst).unwrap();
        assert_eq!(fs::read_to_string(dst.join("tpm2/state")).unwrap(), "s");
        assert_eq!(h.stat(&dst.join("tpm2/state")).unwrap().mode, 0o640);
        assert_eq!(h.tree_size(&dst), 1);
        assert!(
            h.copy_tree(&src, &dst).is_err(),
            "never over an existing path"
        );
        let f = d.path().join("f");
        h.write_new(&f, b"x", 0o600).unwrap();
        assert!(h.write_new(&f, b"y", 0o600).is_err());
        assert_eq!(fs::read_to_string(&f).unwrap(), "x");
        assert_eq!(h.stat(&f).unwrap().kind, Kind::File);
        assert_eq!(h.lstat(d.path()).unwrap().kind, Kind::Dir);
    }
    #[test]
    fn established_connections_from_the_kernel_tables() {
        let fx = |f: &str| {
            let p = format!("{}/fixtures/proc/{f}", env!("CARGO_MANIFEST_DIR"));
            std::fs::read_to_string(&p).unwrap()
        };
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(
            parse_proc_net_tcp(&fx("net-tcp.txt")),
            [
                (a("127.0.0.1:44705"), a("127.0.0.1:56624")),
                (a("127.0.0.1:56624"), a("127.0.0.1:44705")),
            ],
            "the listeners (state 0A) are not connections"
        );
        assert_eq!(
            parse_proc_net_tcp(&fx("net-tcp6.txt")),
            [
                (a("[::1]:33078"), a("[::1]:59305")),
                (a("[::1]:59305"), a("[::1]:33078")),
            ]
        );
        assert_eq!(parse_proc_net_tcp("header\n 0: zz:1 00:2 01\n"), []);
    }
}
