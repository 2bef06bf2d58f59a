//! This machine, where the user sits: bkt's cache, the files the user
//! names (ISOs, a password file, a folder to share), the programs on PATH,
//! the desktop session, staging directories for the ISOs bkt builds, and
//! the logs of the clients it starts. (The machine that runs libvirt is the
//! [`super::host::Host`]; for a local URI both are this machine.)

// why: the door: this machine's files, programs, clock and environment.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::fs;
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};

use crate::exec::{Cmd, ExecError, Output, Running, Sink};
use crate::settings::Settings;
use crate::tools::xorriso;
use crate::ui::HintExt;

pub struct Local {
    pub settings: Settings,
}

/// What a file the user named is, for the ISO checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    /// An ISO 9660 image of this many bytes.
    Iso(u64),
    Missing,
    Directory,
    NotIso,
}

impl Local {
    pub fn new(settings: Settings) -> Local {
        Local { settings }
    }

    /// bkt's cache: `$XDG_CACHE_HOME/bkt/vm`.
    pub fn cache_dir(&self) -> Result<PathBuf> {
        crate::download::cache_dir(&self.settings.download)
    }

    /// The SHA-256 of a file here: the one a download recorded beside it,
    /// else hashed now (`read` told the bytes so far).
    pub fn sha256(&self, p: &Path, read: &mut dyn FnMut(u64)) -> Result<String> {
        match crate::download::known_sha256(p) {
            Some(sum) => Ok(sum),
            None => crate::download::sha256_told(p, read),
        }
    }

    /// A file's size here.
    pub fn len(&self, p: &Path) -> std::io::Result<u64> {
        fs::metadata(p).map(|m| m.len())
    }

    /// `len` bytes at byte `off` of a file here (fewer at its end): what is
    /// inside an ISO, without copying it.
    pub fn read_at(&self, p: &Path, off: u64, len: usize) -> std::io::Result<Vec<u8>> {
        super::host::pread(p, off, len)
    }

    /// A program is on PATH.
    pub fn has_program(&self, program: &str) -> bool {
        which::which(program).is_ok()
    }

    /// A path as the user meant it: `~/` expanded, relative to the
    /// current directory.
    pub fn absolute(&self, p: &Path) -> Result<PathBuf> {
        let p = match (
            p.to_str().and_then(|s| s.strip_prefix("~/")),
            &self.settings.home,
        ) {
            (Some(rest), Some(home)) => home.join(rest),
            _ => p.to_path_buf(),
        };
        if p.is_absolute() {
            Ok(p)
        } else {
            Ok(std::env::current_dir()
                .context("cannot read the current directory")?
                .join(p))
        }
    }

    /// The newest `PREFIX*.iso` in `~/Downloads` (case-insensitive), where a
    /// browser leaves Microsoft's and the virtio-win project's downloads.
    pub fn newest_download(&self, prefix: &str) -> Option<PathBuf> {
        let dir = self.settings.home.as_ref()?.join("Downloads");
        fs::read_dir(dir)
            .ok()?
            .flatten()
            .filter(|e| {
                let n = e.file_name().to_string_lossy().to_ascii_lowercase();
                n.starts_with(&prefix.to_ascii_lowercase()) && n.ends_with(".iso")
            })
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .max()
            .map(|(_, p)| p)
    }

    /// The newest Windows ISO `bkt vm download --windows` (or
    /// `--iso-url`) left in bkt's cache.
    pub fn cached_windows_iso(&self) -> Option<PathBuf> {
        fs::read_dir(self.cache_dir().ok()?)
            .ok()?
            .flatten()
            .filter(|e| {
                let n = e.file_name().to_string_lossy().to_ascii_lowercase();
                n.ends_with(".iso") && n != "virtio-win.iso"
            })
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .max()
            .map(|(_, p)| p)
    }

    /// What the user's file is: an ISO (its size), or why not.
    pub fn media(&self, path: &Path) -> std::result::Result<Media, String> {
        let mut f = match fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Media::Missing),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let meta = f
            .metadata()
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if meta.is_dir() {
            return Ok(Media::Directory);
        }
        if !crate::download::has_signature(&mut f, crate::download::Kind::Iso) {
            return Ok(Media::NotIso);
        }
        Ok(Media::Iso(meta.len()))
    }

    /// The first line of a file that holds a secret; like ssh with a key,
    /// refused when others can read it.
    pub fn read_secret(&self, p: &Path, what: &str) -> Result<String> {
        let meta = fs::metadata(p).with_context(|| format!("{what} {}", p.display()))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(anyhow!(
                "{what} {} can be read by other users (mode {mode:04o}); \
                 bkt refuses it, as ssh refuses such keys",
                p.display()
            ))
            .hint(format!("chmod 600 {}", p.display()));
        }
        let text = fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        Ok(text.lines().next().unwrap_or_default().to_string())
    }

    /// A path of the user's, absolute and without symlinks.
    pub fn canonicalize(&self, p: &Path) -> std::io::Result<PathBuf> {
        fs::canonicalize(p)
    }

    /// A path of the user's is a directory.
    pub fn is_dir(&self, p: &Path) -> bool {
        p.is_dir()
    }

    /// `N` random bytes from the kernel.
    pub fn random_bytes<const N: usize>(&self) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut b))
            .context("reading /dev/urandom")?;
        Ok(b)
    }

    /// A fresh directory only we can enter (0700, an unpredictable name,
    /// created exclusively), for files that go on an ISO: nobody can plant
    /// a symlink in it or swap a script before it is burned. Removed (made
    /// writable first: xorriso extracts read-only files) on drop.
    pub fn staging(&self, prefix: &str) -> Result<Staging> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .permissions(fs::Permissions::from_mode(0o700))
            .tempdir()
            .context("creating a private staging directory")?;
        Ok(Staging { dir })
    }

    /// Burn a staged directory into `out` (a new file of this machine,
    /// created with `mode` before xorriso writes a byte to it through its
    /// stdout). A failure removes the file again; an existing one stays.
    pub fn build_iso(&self, volume: &str, dir: &Path, out: &Path, mode: u32) -> Result<()> {
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(out)
            .with_context(|| format!("creating {}", out.display()))?;
        let res = xorriso::mkisofs(volume, dir)
            .run_into(file)
            .map_err(crate::tools::program_error)
            .with_context(|| format!("building {}", out.display()));
        if res.is_err() {
            let _ = fs::remove_file(out);
        }
        res
    }

    /// A directory in bkt's cache (made 0700 when missing).
    pub fn cache_subdir(&self) -> Result<PathBuf> {
        private_dir(self.cache_dir()?)
    }

    /// A new log for one session of a client, in the cache:
    /// `PREFIX-20261207T183612Z-4242.log` (the time, and this process's id,
    /// so that two sessions started in one second have a log each). The
    /// older logs of `prefix` beyond the last few are removed. Each failure
    /// is explained with its own session's log, never one that another
    /// session (a `run --detach` client still going) wrote over.
    pub fn session_log(&self, prefix: &str) -> Option<PathBuf> {
        let dir = self.cache_subdir().ok()?;
        let old = session_logs(&dir, prefix);
        // With the new one, SESSION_LOGS are left.
        let extra = (old.len() + 1).saturating_sub(SESSION_LOGS);
        for p in &old[..extra] {
            let _ = fs::remove_file(p);
        }
        let stamp = jiff::Timestamp::from_second(self.now() as i64)
            .ok()?
            .strftime("%Y%m%dT%H%M%SZ");
        Some(dir.join(format!("{prefix}-{stamp}-{}.log", std::process::id())))
    }

    /// The newest log of [`Local::session_log`]'s `prefix`.
    pub fn last_session_log(&self, prefix: &str) -> Option<PathBuf> {
        session_logs(&self.cache_dir().ok()?, prefix).pop()
    }

    /// Rename a file a program we ran wrote in our cache.
    pub fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        fs::rename(from, to)
    }

    /// A file of bkt's own in its cache (replaced in one rename), for the
    /// user to hand to another program (an OpenSSL configuration).
    pub fn write_cache_file(&self, file: &str, text: &str) -> Result<PathBuf> {
        let p = self.cache_subdir()?.join(file);
        replace_file(&p, text.as_bytes(), None)?;
        Ok(p)
    }

    /// A file of bkt's own in its cache, if it is there.
    pub fn read_cache_file(&self, file: &str) -> Option<String> {
        fs::read_to_string(self.cache_dir().ok()?.join(file)).ok()
    }

    /// Remove a file of bkt's own from its cache: its path when it was
    /// there, None when it was not.
    pub fn remove_cache_file(&self, file: &str) -> Result<Option<PathBuf>> {
        let p = self.cache_dir()?.join(file);
        match fs::remove_file(&p) {
            Ok(()) => Ok(Some(p)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("removing {}", p.display())),
        }
    }

    /// `$XDG_DATA_HOME`, where menu entries and icons go.
    pub fn data_home(&self) -> Result<PathBuf> {
        self.settings
            .data_home
            .clone()
            .ok_or_else(|| anyhow!("neither XDG_DATA_HOME nor HOME is set"))
    }

    /// The shared-mime-info patterns (`mime/globs2`) of the user's data
    /// directory and the system's, the user's first.
    pub fn mime_globs(&self) -> String {
        let mut dirs: Vec<PathBuf> = self.settings.data_home.iter().cloned().collect();
        dirs.extend(self.settings.data_dirs.iter().cloned());
        dirs.iter()
            .filter_map(|d| fs::read_to_string(d.join("mime").join("globs2")).ok())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Write one of the user's files that bkt owns (a menu entry, an icon):
    /// its directory made when missing, the file replaced in one rename.
    pub fn write_user_file(&self, p: &Path, bytes: &[u8]) -> Result<()> {
        let dir = p
            .parent()
            .ok_or_else(|| anyhow!("{} has no directory", p.display()))?;
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        replace_file(p, bytes, Some(0o644))
    }

    /// The bytes of one of the user's files that bkt owns, None when there
    /// is none (to put it back as it was when a later step fails).
    pub fn read_user_file(&self, p: &Path) -> Option<Vec<u8>> {
        fs::read(p).ok()
    }

    /// Remove one of the user's files that bkt wrote; gone already is fine.
    pub fn remove_user_file(&self, p: &Path) -> Result<()> {
        match fs::remove_file(p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", p.display()))
            }
            _ => Ok(()),
        }
    }

    /// The entries of a directory of the user's (none when it is missing).
    pub fn list_dir(&self, dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(dir)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// This very bkt, for launchers to run.
    pub fn own_program(&self) -> Result<PathBuf> {
        std::env::current_exe().context("finding bkt's own program")
    }

    /// A file of this machine exists (one a program we ran wrote).
    pub fn exists(&self, p: &Path) -> bool {
        p.exists()
    }

    /// A log's text (empty when there is none).
    pub fn read_log(&self, p: &Path) -> String {
        fs::read_to_string(p).unwrap_or_default()
    }

    /// `$XDG_CONFIG_HOME` (else `~/.config`), for messages about other
    /// programs' files (FreeRDP's pinned certificates).
    pub fn config_home(&self) -> PathBuf {
        self.settings
            .config_home()
            .cloned()
            .unwrap_or_else(|| PathBuf::from("~/.config"))
    }

    /// Our process's groups (primary first), and the group database.
    pub fn groups(&self) -> (Vec<u32>, String) {
        let mut mine: Vec<u32> = rustix::process::getgroups()
            .map(|v| v.into_iter().map(|g| g.as_raw()).collect())
            .unwrap_or_default();
        mine.insert(0, rustix::process::getegid().as_raw());
        let db = fs::read_to_string(self.settings.hooks.etc.join("group")).unwrap_or_default();
        (mine, db)
    }

    /// We run as root.
    pub fn is_root(&self) -> bool {
        rustix::process::geteuid().is_root()
    }

    /// The clock, in seconds since 1970 (`BKT_VM_NOW` in tests).
    pub fn now(&self) -> u64 {
        self.settings.hooks.now.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        })
    }

    /// Today's date (UTC) as YYYY-MM-DD, by [`Local::now`].
    pub fn today(&self) -> String {
        crate::manifest::date_of(self.now())
    }

    /// Fetch a download into bkt's cache (or find it there): the
    /// download's transport, with this machine's settings.
    pub fn fetch(
        &self,
        item: &crate::download::Item,
        opts: &crate::download::Options,
    ) -> Result<crate::download::Fetched> {
        crate::download::fetch(item, opts, &self.settings.download)
    }

    /// Run a program of this machine (a tool that reads the user's files, a
    /// desktop helper) to success; its failure as it was.
    pub fn exec(&self, cmd: &Cmd) -> Result<Output, ExecError> {
        cmd.run()
    }

    /// Run a program of this machine whatever its exit status; only one
    /// that cannot start is an error.
    pub fn exec_unchecked(&self, cmd: &Cmd) -> Result<Output, ExecError> {
        cmd.run_unchecked()
    }

    /// Run a client (a viewer, an RDP client) on the user's terminal until
    /// it ends, its output to `sink`.
    pub fn exec_attached(
        &self,
        cmd: &Cmd,
        stdin: Option<&[u8]>,
        sink: &Sink,
    ) -> Result<std::process::ExitStatus, ExecError> {
        cmd.run_attached(stdin, sink)
    }

    /// Start a client that bkt leaves running (`run --detach`).
    pub fn spawn_attached(
        &self,
        cmd: &Cmd,
        stdin: Option<&[u8]>,
        sink: &Sink,
    ) -> Result<Running, ExecError> {
        cmd.start_attached(stdin, sink)
    }

    /// A program's version as it reports it (`PROGRAM --version`), stdout
    /// and stderr together; None when it cannot start.
    pub fn version_output(&self, program: &str) -> Option<String> {
        let out = crate::tools::version::cmd(program).run_unchecked().ok()?;
        Some(format!("{}{}", out.stdout, out.stderr))
    }

    /// A text file of the user's (or bkt's own), as it is.
    pub fn read_to_string(&self, p: &Path) -> std::io::Result<String> {
        fs::read_to_string(p)
    }

    /// A directory of the user's, with its parents.
    pub fn create_dir_all(&self, p: &Path) -> std::io::Result<()> {
        fs::create_dir_all(p)
    }

    /// Write a file of bkt's own in place.
    pub fn write(&self, p: &Path, bytes: &[u8]) -> std::io::Result<()> {
        fs::write(p, bytes)
    }

    /// Remove a file of bkt's own.
    pub fn remove_file(&self, p: &Path) -> std::io::Result<()> {
        fs::remove_file(p)
    }

    /// Remove a directory of bkt's own with all it holds.
    pub fn remove_tree(&self, p: &Path) -> std::io::Result<()> {
        fs::remove_dir_all(p)
    }

    /// Where the idle watcher keeps its lock and state, and running clients
    /// their lock: `$XDG_RUNTIME_DIR/bkt/vm` (gone at logout, like the
    /// processes), else bkt's cache. Made 0700 when missing.
    pub fn runtime_dir(&self) -> Result<PathBuf> {
        private_dir(match &self.settings.runtime_dir {
            Some(r) => r.join("bkt").join("vm"),
            None => self.cache_dir()?,
        })
    }

    fn lock_file(&self, file: &str) -> Result<fs::File> {
        let p = self.runtime_dir()?.join(file);
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&p)
            .with_context(|| format!("opening {}", p.display()))
    }

    /// Held (shared) while a client bkt started runs: the idle watcher
    /// counts the VM as in use as long as any such lock is held. The kernel
    /// drops it when the process ends, however it ends.
    pub fn hold_in_use(&self, key: &str) -> Option<fs::File> {
        let f = self.lock_file(&format!("{key}.inuse")).ok()?;
        f.lock_shared().ok()?;
        Some(f)
    }

    /// A client bkt started for the VM `key` is still running.
    pub fn client_running(&self, key: &str) -> bool {
        let Ok(f) = self.lock_file(&format!("{key}.inuse")) else {
            return false;
        };
        match f.try_lock() {
            Ok(()) => false,
            Err(fs::TryLockError::WouldBlock) => true,
            Err(fs::TryLockError::Error(_)) => false,
        }
    }

    /// The watcher's lock for `key`, if no other watcher holds it; a
    /// watcher that is just ending (it saved the VM, which a user at once
    /// restored) gets up to `wait` to let go.
    pub fn lock_watcher(&self, key: &str, wait: std::time::Duration) -> Result<Option<fs::File>> {
        let f = self.lock_file(&format!("{key}.watch.lock"))?;
        let deadline = std::time::Instant::now() + wait;
        loop {
            match f.try_lock() {
                Ok(()) => return Ok(Some(f)),
                Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(fs::TryLockError::WouldBlock) => return Ok(None),
                Err(fs::TryLockError::Error(e)) => {
                    return Err(e).context("locking the watcher's lock file");
                }
            }
        }
    }

    /// Whether a watcher for `key` runs now (its lock is held).
    pub fn watcher_running(&self, key: &str) -> bool {
        match self.lock_watcher(key, std::time::Duration::ZERO) {
            Ok(Some(f)) => {
                drop(f);
                false
            }
            Ok(None) => true,
            Err(_) => false,
        }
    }

    /// The watcher's last state (JSON), if it left one.
    pub fn read_watch_state(&self, key: &str) -> Option<String> {
        let p = self.runtime_dir().ok()?.join(format!("{key}.watch.json"));
        fs::read_to_string(p).ok()
    }

    /// Replace the watcher's state in one rename.
    pub fn write_watch_state(&self, key: &str, json: &str) -> Result<()> {
        let p = self.runtime_dir()?.join(format!("{key}.watch.json"));
        replace_file(&p, json.as_bytes(), None)
    }

    /// A watcher that ends removes its state. Never its lock file: a
    /// watcher waiting for that lock would get it on the removed file
    /// while the next one locks a new file of the same name, and two would
    /// watch one VM. The lock files are empty; they stay.
    pub fn remove_watch_state(&self, key: &str) {
        if let Ok(dir) = self.runtime_dir() {
            let _ = fs::remove_file(dir.join(format!("{key}.watch.json")));
            let _ = fs::remove_file(dir.join(format!("{key}.consoles")));
        }
    }

    /// Start `events` (the VM's graphics events) writing to `KEY.consoles`,
    /// afresh: what an earlier stream wrote goes, since it may have missed
    /// events. It ends when the value is dropped, or with bkt.
    pub fn start_console_events(
        &self,
        key: &str,
        events: &crate::exec::Cmd,
    ) -> Result<crate::exec::Tied> {
        let p = self.runtime_dir()?.join(format!("{key}.consoles"));
        let _ = fs::remove_file(&p);
        events
            .start_tied(&crate::exec::Sink::File(p))
            .map_err(crate::tools::program_error)
    }

    /// What the watcher's graphics event stream wrote so far, if one runs.
    pub fn read_console_events(&self, key: &str) -> Option<String> {
        fs::read_to_string(self.runtime_dir().ok()?.join(format!("{key}.consoles"))).ok()
    }

    /// `destroy`: the VM's watcher state and log go with it, so that a new
    /// VM of the same name does not start with its idle time or its log.
    pub fn forget_watcher(&self, key: &str) {
        self.remove_watch_state(key);
        if let Ok(dir) = self.cache_dir() {
            let _ = fs::remove_file(dir.join(format!("{key}.watch.log")));
        }
    }

    /// Start `bkt vm watch NAME -c URI` detached from this terminal (see
    /// [`crate::tools::watcher::detached`]), no input, its output appended
    /// to `KEY.watch.log` in the cache (`key`: [`crate::vm::power::idle::key`]).
    pub fn spawn_watcher(&self, uri: &str, name: &str, key: &str) -> Result<()> {
        let exe = std::env::current_exe().context("finding bkt's own program")?;
        let log = self.cache_subdir()?.join(format!("{key}.watch.log"));
        crate::tools::watcher::detached(&exe.display().to_string(), uri, name)
            .start_attached(None, &crate::exec::Sink::File(log))
            .map_err(crate::tools::program_error)
            .context("starting the idle watcher")?;
        Ok(())
    }
}

/// How many logs of one VM's client sessions stay in the cache.
const SESSION_LOGS: usize = 5;

/// The session logs of `prefix` in `dir` ([`Local::session_log`]), oldest
/// first. Only names of that exact shape: the logs of a VM whose name
/// starts like this one's (`win` and `win-rdp-x`) are not this VM's.
fn session_logs(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mut logs: Vec<((String, u32), PathBuf)> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let rest = name
                .strip_prefix(prefix)?
                .strip_prefix('-')?
                .strip_suffix(".log")?;
            let (stamp, pid) = rest.split_once('-')?;
            let (day, time) = stamp.strip_suffix('Z')?.split_once('T')?;
            if day.len() != 8 || time.len() != 6 || !digits(day) || !digits(time) || !digits(pid) {
                return None;
            }
            Some(((stamp.to_string(), pid.parse().ok()?), e.path()))
        })
        .collect();
    logs.sort();
    logs.into_iter().map(|(_, p)| p).collect()
}

/// Replace `p` in one rename: readers see the old file or the new one,
/// never half of it. `mode`, when given, is set before the rename.
fn replace_file(p: &Path, bytes: &[u8], mode: Option<u32>) -> Result<()> {
    let name = p.file_name().unwrap_or_default().to_string_lossy();
    let tmp = p.with_file_name(format!(".{name}.{}", std::process::id()));
    let done = fs::write(&tmp, bytes)
        .and_then(|()| match mode {
            Some(mode) => fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)),
            None => Ok(()),
        })
        .with_context(|| format!("writing {}", tmp.display()))
        .and_then(|()| fs::rename(&tmp, p).with_context(|| format!("writing {}", p.display())));
    // A write that failed half way leaves no temporary file behind.
    if done.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    done
}

/// A directory of ours, made 0700 (with its parents) when missing.
fn private_dir(dir: PathBuf) -> Result<PathBuf> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// A private staging directory (see [`Local::staging`]).
pub struct Staging {
    dir: tempfile::TempDir,
}

impl Staging {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A new file in it (never over an existing one).
    pub fn write(&self, name: &str, bytes: &[u8], mode: u32) -> Result<PathBuf> {
        let p = self.dir.path().join(name);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&p)
            .with_context(|| format!("staging {name}"))?;
        std::io::Write::write_all(&mut f, bytes).with_context(|| format!("staging {name}"))?;
        Ok(p)
    }

    /// A new directory in it (as private as the staging directory).
    pub fn mkdir(&self, name: &str) -> Result<PathBuf> {
        let p = self.dir.path().join(name);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&p)
            .with_context(|| format!("staging {name}"))?;
        Ok(p)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        make_writable(self.dir.path());
    }
}

/// Write permission on a tree again (xorriso extracts read-only folders),
/// so that it can be removed.
fn make_writable(dir: &Path) {
    if let Ok(meta) = fs::symlink_metadata(dir)
        && meta.is_dir()
    {
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
        if let Ok(rd) = fs::read_dir(dir) {
            for e in rd.flatten() {
                make_writable(&e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn local() -> Local {
        Local::new(Settings::default())
    }

    #[test]
    fn staging_is_private_unpredictable_and_removed() {
        let l = local();
        let a = l.staging("bkt-test-").unwrap();
        let b = l.staging("bkt-test-").unwrap();
        assert_ne!(a.path(), b.path());
        assert_eq!(fs::metadata(a.path()).unwrap().mode() & 0o777, 0o700);
        let ro = a.mkdir("d").unwrap();
        fs::write(ro.join("f"), "x").unwrap();
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o500)).unwrap();
        a.write("s.cmd", b"x", 0o600).unwrap();
        assert!(a.write("s.cmd", b"y", 0o600).is_err());
        let p = a.path().to_path_buf();
        drop(a);
        assert!(!p.exists());
    }

    #[test]
    fn an_existing_iso_path_is_never_overwritten() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("x.iso");
        fs::write(&out, "the user's").unwrap();
        let err = local().build_iso("V", d.path(), &out, 0o600).unwrap_err();
        assert!(format!("{err:#}").starts_with(&format!("creating {}", out.display())));
        assert_eq!(fs::read_to_string(&out).unwrap(), "the user's");
    }

    #[test]
    fn media_kinds() {
        let l = local();
        let d = tempfile::tempdir().unwrap();
        let good = d.path().join("good.iso");
        let mut data = vec![0u8; 40000];
        data[32769..32774].copy_from_slice(b"CD001");
        fs::write(&good, &data).unwrap();
        assert_eq!(l.media(&good), Ok(Media::Iso(40000)));
        let notes = d.path().join("notes.txt");
        fs::write(&notes, "hello").unwrap();
        assert_eq!(l.media(&notes), Ok(Media::NotIso));
        assert_eq!(l.media(&d.path().join("nope.iso")), Ok(Media::Missing));
        assert_eq!(l.media(d.path()), Ok(Media::Directory));
    }
}
