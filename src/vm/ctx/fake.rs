//! A fake host and a fake libvirt for unit tests of orchestration (create,
//! destroy, snapshot, idle): an in-memory file tree with modes and owners,
//! canned tool outputs, a size, and libvirt's answers from a table, every
//! call recorded in order; [`Fake::new`] builds a [`Ctx`] around them whose
//! words are captured ([`Ui::capture`]) and whose manifest is a file in a
//! temporary directory. The fake-binary tier (tests/it) stays the test of
//! argv and screens; this one tests the decisions and their order.

// why: a test's scaffolding: the manifest lives in a real temporary directory.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use anyhow::{Result, anyhow};

use super::host::{HostFiles, HostMachine, HostNet, HostProcs, HostSize, Kind, PortState, Stat};
use super::libvirt::Runner;
use super::{Ctx, Local, ManifestFile};
use crate::exec::{Cmd, ExecError, Output};
use crate::manifest::Manifest;
use crate::settings::Settings;
use crate::tools::acl::Perms;
use crate::tools::virsh::Virsh;
use crate::ui::Ui;

/// A file or directory of the fake host.
#[derive(Debug, Clone)]
pub struct Node {
    pub kind: Kind,
    pub data: Vec<u8>,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The calls of a fake host and a fake libvirt in the order made, each
/// `host: …` or `libvirt: …`.
type Journal = Rc<RefCell<Vec<String>>>;

#[derive(Default)]
struct HostState {
    files: BTreeMap<PathBuf, Node>,
    /// (the start of a command's display, its stdout or its failure).
    tools: Vec<(String, Result<String, String>)>,
    /// (operation, path) that fail with this kind.
    failing: Vec<(String, PathBuf, io::ErrorKind)>,
    calls: Vec<String>,
    established: Vec<(SocketAddr, SocketAddr)>,
}

/// The fake machine that runs libvirt. Clones share one state: the test
/// keeps one, the [`Ctx`] holds another.
#[derive(Clone)]
pub struct FakeHost {
    state: Rc<RefCell<HostState>>,
    /// Every call of the host and of libvirt, in one order.
    journal: Journal,
    pub size: HostSize,
    pub euid: u32,
}

impl Default for FakeHost {
    fn default() -> FakeHost {
        FakeHost {
            state: Rc::default(),
            journal: Journal::default(),
            size: HostSize {
                memory_bytes: 16 << 30,
                cpus: 8,
            },
            euid: 0,
        }
    }
}

impl FakeHost {
    /// A file there (its parent directories too), mode 0644, root's.
    pub fn file(&self, p: impl AsRef<Path>, data: &str) -> &FakeHost {
        self.put(p.as_ref(), Kind::File, data.as_bytes().to_vec(), 0o644);
        self
    }

    /// A directory there (its parents too).
    pub fn dir(&self, p: impl AsRef<Path>) -> &FakeHost {
        self.put(p.as_ref(), Kind::Dir, Vec::new(), 0o755);
        self
    }

    /// A block device there.
    pub fn block(&self, p: impl AsRef<Path>) -> &FakeHost {
        self.put(p.as_ref(), Kind::Block, Vec::new(), 0o660);
        self
    }

    fn put(&self, p: &Path, kind: Kind, data: Vec<u8>, mode: u32) {
        let mut s = self.state.borrow_mut();
        for a in p.ancestors().skip(1).filter(|a| !a.as_os_str().is_empty()) {
            s.files.entry(a.to_path_buf()).or_insert(Node {
                kind: Kind::Dir,
                data: Vec::new(),
                mode: 0o755,
                uid: 0,
                gid: 0,
            });
        }
        s.files.insert(
            p.to_path_buf(),
            Node {
                kind,
                data,
                mode,
                uid: 0,
                gid: 0,
            },
        );
    }

    /// What is at `p`, if anything.
    pub fn node(&self, p: impl AsRef<Path>) -> Option<Node> {
        self.state.borrow().files.get(p.as_ref()).cloned()
    }

    pub fn has(&self, p: impl AsRef<Path>) -> bool {
        self.node(p).is_some()
    }

    /// A tool run there whose display starts with `prefix` prints `stdout`.
    pub fn tool(&self, prefix: &str, stdout: &str) -> &FakeHost {
        let answer = (prefix.to_string(), Ok(stdout.to_string()));
        self.state.borrow_mut().tools.push(answer);
        self
    }

    /// A tool run there whose display starts with `prefix` fails, saying
    /// `why`.
    pub fn tool_fails(&self, prefix: &str, why: &str) -> &FakeHost {
        let answer = (prefix.to_string(), Err(why.to_string()));
        self.state.borrow_mut().tools.push(answer);
        self
    }

    /// The file operation `op` (a method's name) on `p` fails with `kind`.
    pub fn fail(&self, op: &str, p: impl AsRef<Path>, kind: io::ErrorKind) -> &FakeHost {
        let f = (op.to_string(), p.as_ref().to_path_buf(), kind);
        self.state.borrow_mut().failing.push(f);
        self
    }

    /// The host's established TCP connections.
    pub fn established(&self, conns: &[(SocketAddr, SocketAddr)]) -> &FakeHost {
        self.state.borrow_mut().established = conns.to_vec();
        self
    }

    /// Every call so far that changed something or ran something, in
    /// order (`"create_new /images/w.qcow2"`, `"run_tool qemu-img …"`).
    pub fn calls(&self) -> Vec<String> {
        self.state.borrow().calls.clone()
    }

    fn note(&self, op: &str, p: &Path) -> io::Result<()> {
        let mut s = self.state.borrow_mut();
        let call = format!("{op} {}", p.display());
        self.journal.borrow_mut().push(format!("host: {call}"));
        s.calls.push(call);
        match s.failing.iter().find(|(o, f, _)| o == op && f == p) {
            Some((_, _, kind)) => Err(io::Error::new(*kind, format!("fake: {op} fails"))),
            None => Ok(()),
        }
    }

    fn get(&self, p: &Path) -> io::Result<Node> {
        self.node(p)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "fake: no such file"))
    }

    fn parent_is_dir(&self, p: &Path) -> io::Result<()> {
        match p.parent().map(|d| self.node(d)) {
            Some(Some(n)) if n.kind == Kind::Dir => Ok(()),
            Some(Some(_)) => Err(io::Error::other("fake: parent is not a directory")),
            _ => Err(io::Error::new(io::ErrorKind::NotFound, "fake: no parent")),
        }
    }

    fn create(&self, op: &str, p: &Path, data: &[u8], mode: u32) -> io::Result<()> {
        self.note(op, p)?;
        self.parent_is_dir(p)?;
        if self.has(p) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "fake: file exists",
            ));
        }
        self.put(p, Kind::File, data.to_vec(), mode);
        Ok(())
    }

    fn children(&self, dir: &Path) -> Vec<PathBuf> {
        let s = self.state.borrow();
        s.files
            .keys()
            .filter(|k| k.parent() == Some(dir))
            .cloned()
            .collect()
    }

    fn stat_of(n: &Node) -> Stat {
        Stat {
            kind: n.kind,
            len: n.data.len() as u64,
            mode: n.mode,
            uid: n.uid,
            gid: n.gid,
        }
    }
}

impl HostFiles for FakeHost {
    fn writable(&self, dir: &Path) -> bool {
        self.note("writable", dir).is_ok() && self.has(dir)
    }

    fn open_rw(&self, dev: &Path) -> io::Result<()> {
        self.note("open_rw", dev)?;
        self.get(dev).map(|_| ())
    }

    fn open_read(&self, p: &Path) -> io::Result<()> {
        self.note("open_read", p)?;
        self.get(p).map(|_| ())
    }

    fn stat(&self, p: &Path) -> io::Result<Stat> {
        self.get(p).map(|n| FakeHost::stat_of(&n))
    }

    fn lstat(&self, p: &Path) -> io::Result<Stat> {
        self.stat(p)
    }

    fn perms(&self, p: &Path) -> Result<Perms> {
        let n = self.get(p)?;
        Ok(Perms {
            uid: n.uid,
            gid: n.gid,
            mode: n.mode,
            acl: Vec::new(),
        })
    }

    fn canonicalize(&self, p: &Path) -> io::Result<PathBuf> {
        self.get(p).map(|_| p.to_path_buf())
    }

    fn read_to_string(&self, p: &Path) -> io::Result<String> {
        self.note("read_to_string", p)?;
        let n = self.get(p)?;
        String::from_utf8(n.data).map_err(io::Error::other)
    }

    fn read_at(&self, p: &Path, off: u64, len: usize) -> io::Result<Vec<u8>> {
        self.note("read_at", p)?;
        let data = self.get(p)?.data;
        let from = usize::try_from(off).unwrap_or(usize::MAX).min(data.len());
        Ok(data[from..(from.saturating_add(len)).min(data.len())].to_vec())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        self.note("list", dir)?;
        match self.get(dir)?.kind {
            Kind::Dir => Ok(self.children(dir)),
            _ => Err(io::Error::other("fake: not a directory")),
        }
    }

    fn create_new(&self, p: &Path, mode: u32) -> io::Result<()> {
        self.create("create_new", p, b"", mode)
    }

    fn write_new(&self, p: &Path, bytes: &[u8], mode: u32) -> Result<()> {
        Ok(self.create("write_new", p, bytes, mode)?)
    }

    fn send_new(&self, local: &Path, p: &Path, mode: u32, sent: &mut dyn FnMut(u64)) -> Result<()> {
        let bytes = std::fs::read(local)?;
        self.create("send_new", p, &bytes, mode)?;
        sent(bytes.len() as u64);
        Ok(())
    }

    fn sha256(&self, p: &Path) -> Result<String> {
        use sha2::Digest;
        let sum = sha2::Sha256::digest(self.get(p)?.data);
        Ok(sum.iter().map(|b| format!("{b:02x}")).collect())
    }

    fn create_dir_all(&self, p: &Path) -> io::Result<()> {
        self.note("create_dir_all", p)?;
        if !self.has(p) {
            self.put(p, Kind::Dir, Vec::new(), 0o755);
        }
        Ok(())
    }

    fn set_mode(&self, p: &Path, mode: u32) -> io::Result<()> {
        self.note("set_mode", p)?;
        self.get(p)?;
        if let Some(n) = self.state.borrow_mut().files.get_mut(p) {
            n.mode = mode;
        }
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.note("rename", from)?;
        self.get(from)?;
        let mut s = self.state.borrow_mut();
        let moved: Vec<PathBuf> = s
            .files
            .keys()
            .filter(|k| k.starts_with(from))
            .cloned()
            .collect();
        for k in moved {
            let n = s.files.remove(&k).expect("listed");
            let rest = k.strip_prefix(from).expect("under from");
            s.files.insert(to.join(rest), n);
        }
        Ok(())
    }

    fn remove_file(&self, p: &Path) -> io::Result<()> {
        self.note("remove_file", p)?;
        match self.get(p)?.kind {
            Kind::Dir => Err(io::Error::other("fake: a directory")),
            _ => {
                self.state.borrow_mut().files.remove(p);
                Ok(())
            }
        }
    }

    fn remove_dir(&self, p: &Path) -> io::Result<()> {
        self.note("remove_dir", p)?;
        self.get(p)?;
        if !self.children(p).is_empty() {
            return Err(io::Error::other("fake: directory not empty"));
        }
        self.state.borrow_mut().files.remove(p);
        Ok(())
    }

    fn remove_tree(&self, p: &Path) -> io::Result<()> {
        self.note("remove_tree", p)?;
        self.get(p)?;
        self.state
            .borrow_mut()
            .files
            .retain(|k, _| !k.starts_with(p));
        Ok(())
    }

    fn copy_tree(&self, src: &Path, dst: &Path) -> Result<()> {
        self.note("copy_tree", src)?;
        self.get(src)?;
        if self.has(dst) {
            return Err(anyhow!("fake: {} exists", dst.display()));
        }
        let mut s = self.state.borrow_mut();
        let copies: Vec<(PathBuf, Node)> = s
            .files
            .iter()
            .filter(|(k, _)| k.starts_with(src))
            .map(|(k, n)| (dst.join(k.strip_prefix(src).expect("under src")), n.clone()))
            .collect();
        s.files.extend(copies);
        Ok(())
    }

    fn sync(&self, p: &Path) -> Result<()> {
        Ok(self.get(p).map(|_| ())?)
    }

    fn tree_size(&self, p: &Path) -> u64 {
        let s = self.state.borrow();
        s.files
            .iter()
            .filter(|(k, _)| k.starts_with(p))
            .map(|(_, n)| n.data.len() as u64)
            .sum()
    }
}

impl HostProcs for FakeHost {
    fn run_tool(&self, cmd: &Cmd) -> Result<String> {
        let shown = cmd.display();
        let mut s = self.state.borrow_mut();
        s.calls.push(format!("run_tool {shown}"));
        self.journal
            .borrow_mut()
            .push(format!("host: run_tool {shown}"));
        let answer = s
            .tools
            .iter()
            .find(|(prefix, _)| shown.starts_with(prefix.as_str()))
            .map(|(_, a)| a.clone());
        match answer {
            Some(Ok(out)) => Ok(out),
            Some(Err(why)) => Err(anyhow!("{why}")),
            None => panic!("fake host: no answer for `{shown}`; calls: {:#?}", s.calls),
        }
    }

    fn login(&self) -> Result<u32> {
        Ok(self.euid)
    }

    fn program_version(&self, program: &str) -> Option<String> {
        let cmd = Cmd::new(program).arg("--version");
        self.run_tool(&cmd).ok()
    }
}

impl HostNet for FakeHost {
    fn probe(&self, _ip: &str, _port: u16, _timeout: Duration) -> PortState {
        PortState::NoAnswer
    }

    fn probe_all(&self, ips: &[String], port: u16, timeout: Duration) -> Vec<PortState> {
        ips.iter().map(|ip| self.probe(ip, port, timeout)).collect()
    }

    fn tcp_established(&self) -> Vec<(SocketAddr, SocketAddr)> {
        self.state.borrow().established.clone()
    }

    fn reach_from_here(&self, ip: &str, port: u16) -> Result<(String, u16)> {
        Ok((ip.to_string(), port))
    }
}

impl HostMachine for FakeHost {
    fn size(&self) -> Result<HostSize> {
        Ok(self.size)
    }

    fn free_space(&self, _dir: &Path) -> Option<u64> {
        Some(1 << 40)
    }

    fn accounts(&self) -> (String, String) {
        (
            "root:x:0:0::/root:/bin/sh\nqemu:x:107:107::/:/sbin/nologin\n".into(),
            "root:x:0:\nqemu:x:107:\n".into(),
        )
    }

    fn is_root(&self) -> bool {
        self.euid == 0
    }

    fn euid(&self) -> u32 {
        self.euid
    }

    fn home(&self) -> Option<PathBuf> {
        Some(PathBuf::from("/root"))
    }
}

/// libvirt's answers: the first row whose pattern the command's display
/// contains answers it (a row may answer once, [`FakeLibvirt::once`]);
/// every call is recorded. A call no row answers fails the test, naming
/// the calls so far.
#[derive(Clone, Default)]
pub struct FakeLibvirt {
    state: Rc<RefCell<LibvirtState>>,
    journal: Journal,
}

#[derive(Default)]
struct LibvirtState {
    /// (pattern, exit code, stdout or stderr, answers left: None = always).
    rows: Vec<(String, i32, String, Option<usize>)>,
    calls: Vec<String>,
}

impl FakeLibvirt {
    /// A call containing `pattern` succeeds, printing `stdout`.
    pub fn ok(&self, pattern: &str, stdout: &str) -> &FakeLibvirt {
        self.row(pattern, 0, stdout, None)
    }

    /// A call containing `pattern` fails with `code`, saying `stderr`.
    pub fn fails(&self, pattern: &str, code: i32, stderr: &str) -> &FakeLibvirt {
        self.row(pattern, code, stderr, None)
    }

    /// As [`FakeLibvirt::ok`] or [`FakeLibvirt::fails`] (code 0 or not),
    /// the next call only.
    pub fn once(&self, pattern: &str, code: i32, text: &str) -> &FakeLibvirt {
        self.row(pattern, code, text, Some(1))
    }

    fn row(&self, pattern: &str, code: i32, text: &str, times: Option<usize>) -> &FakeLibvirt {
        let row = (pattern.to_string(), code, text.to_string(), times);
        self.state.borrow_mut().rows.push(row);
        self
    }

    /// The calls so far, as displayed without `virsh -c URI`.
    pub fn calls(&self) -> Vec<String> {
        self.state.borrow().calls.clone()
    }
}

impl Runner for FakeLibvirt {
    fn run_unchecked(&self, cmd: &Cmd) -> Result<Output, ExecError> {
        let shown = cmd.display();
        let short = shown
            .split_once(" -c ")
            .and_then(|(_, rest)| rest.split_once(' '))
            .map(|(_, rest)| rest.to_string())
            .unwrap_or_else(|| shown.clone());
        let mut s = self.state.borrow_mut();
        self.journal.borrow_mut().push(format!("libvirt: {short}"));
        s.calls.push(short);
        let Some(row) = s
            .rows
            .iter_mut()
            .find(|r| shown.contains(r.0.as_str()) && r.3 != Some(0))
        else {
            panic!(
                "fake libvirt: no answer for `{shown}`; calls: {:#?}",
                s.calls
            );
        };
        if let Some(n) = row.3.as_mut() {
            *n -= 1;
        }
        let (stdout, stderr) = match row.1 {
            0 => (row.2.clone(), String::new()),
            _ => (String::new(), row.2.clone()),
        };
        Ok(Output {
            status: std::process::ExitStatus::from_raw(row.1 << 8),
            stdout,
            stderr,
        })
    }
}

/// A recorded answer of libvirt, `fixtures/virsh/<f>` (fixtures/README.md
/// says how each was made).
pub fn virsh_fixture(f: &str) -> String {
    let p = format!("{}/fixtures/virsh/{f}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// A [`Ctx`] on `qemu:///system` around a fake host and a fake libvirt,
/// its words captured, its manifest in a temporary directory, its clock at
/// 2026-01-02.
pub struct Fake {
    pub ctx: Ctx,
    pub host: FakeHost,
    pub libvirt: FakeLibvirt,
    _dir: tempfile::TempDir,
}

impl Fake {
    pub fn new() -> Fake {
        Fake::with(FakeHost::default(), FakeLibvirt::default())
    }

    /// Around these fakes; their calls go to one journal ([`Fake::journal`]).
    pub fn with(host: FakeHost, mut libvirt: FakeLibvirt) -> Fake {
        libvirt.journal = host.journal.clone();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let manifest = dir.path().join("vms.json");
        let settings = Settings::from_vars(|k| match k {
            "BKT_VM_NOW" => Some("1767312000".into()),
            "HOME" => Some(dir.path().into()),
            "XDG_RUNTIME_DIR" => Some(dir.path().join("run").into()),
            _ => None,
        });
        let uri: crate::names::Uri = "qemu:///system".parse().expect("a URI");
        let ctx = Ctx {
            virsh: Virsh::new(uri.as_str()),
            uri,
            manifest: ManifestFile::new(manifest),
            host: Box::new(host.clone()),
            local: Local::new(settings),
            ui: Ui::capture(),
            runner: Box::new(libvirt.clone()),
        };
        Fake {
            ctx,
            host,
            libvirt,
            _dir: dir,
        }
    }

    /// The calls of the host and of libvirt so far, in the order made.
    pub fn journal(&self) -> Vec<String> {
        self.host.journal.borrow().clone()
    }

    /// The manifest as it is now.
    pub fn manifest(&self) -> Manifest {
        self.ctx.manifest.load().expect("the manifest reads")
    }

    /// Everything the command said, stdout then stderr.
    pub fn said(&self) -> String {
        let s = self.ctx.ui.said();
        format!("{}{}", s.out, s.err)
    }
}
