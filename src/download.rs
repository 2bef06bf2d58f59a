//! Downloads that never hand Windows a broken file: the virtio-win ISO and
//! the guest tools installer, into `$XDG_CACHE_HOME/bkt/vm`.
//!
//! A download is written to `NAME.part` and renamed only once it is whole
//! and checked (HTTP status, not a web page, the file's signature, a size
//! between a floor and a cap, the SHA-256 when one is expected), so an
//! interruption never leaves a corrupt final file. The next run resumes the
//! `.part` only when the server proves it still has the same file (the
//! default URL moves from release to release): the first response's ETag or
//! Last-Modified, kept in `NAME.part.resume`, goes back as `If-Range`, and
//! any answer but the rest of that very file starts over from zero.
//! One bkt at a time fills a `.part` (a lock on `NAME.lock`), and
//! `NAME.sha256` caches the file's hash with the size and times it was
//! taken at, so a changed file is hashed again.

// why: the download's transport: its cache files, HTTP and the clock of its resume notes.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
// Its few notes on stderr (a retry, a lock waited for, a resume refused)
// are written from the download's own thread, which has no `Ctx` and so no
// `Ui`; issue 21 rewrites this module, which is where they move to one.
#![allow(clippy::disallowed_macros)]

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use sha2::{Digest, Sha256};

use crate::settings::Download;
use crate::ui::HintExt;
use crate::units::human;

/// What a file must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// ISO 9660: `CD001` at byte 32769.
    Iso,
    /// A Windows executable: `MZ` at byte 0.
    Exe,
}

/// One thing to download.
#[derive(Debug, Clone)]
pub struct Item {
    /// The cache file name.
    pub file: String,
    pub what: &'static str,
    pub url: String,
    /// The URL as messages show it and a `.part`'s record names it: `url`
    /// itself, or a link without its signed query (a token that changes
    /// with every fresh link to the same file, and is not for logs).
    pub origin: String,
    pub kind: Kind,
    /// Below this, the server sent something else.
    pub min_size: u64,
    /// Above this, too: a download stops here.
    pub max_size: u64,
    /// Room wanted beyond the rest of the file before it is downloaded
    /// (when the server says its size); None: no check ahead.
    pub margin: Option<u64>,
    /// A fresh link for the same file, for a link that expired (HTTP 403,
    /// 404 or 410).
    pub relink: Option<Relink>,
    /// What to do when the URL is refused.
    pub hint: &'static str,
    /// Where an expected SHA-256 came from, as a mismatch's hint names it.
    pub sha256_from: &'static str,
}

/// The SHA-256 the user gave (`--sha256`, `--iso-sha256`).
pub const SHA256_GIVEN: &str = "the SHA-256 you gave";

/// Asks for a fresh link to the same file.
#[derive(Clone)]
pub struct Relink(pub std::sync::Arc<dyn Fn() -> Result<String> + Send + Sync>);

impl std::fmt::Debug for Relink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Relink")
    }
}

pub const VIRTIO_URL: &str =
    "https://fedorapeople.org/groups/virt/virtio-win/direct-downloads/stable-virtio/virtio-win.iso";
pub const GUEST_TOOLS_URL: &str = "https://fedorapeople.org/groups/virt/virtio-win/direct-downloads/stable-virtio/virtio-win-guest-tools.exe";

/// The URL given on the command line, else the mirror of the settings,
/// else the project's.
fn url(given: Option<&str>, mirror: &Option<String>, default: &str) -> String {
    given
        .map(str::to_string)
        .or_else(|| mirror.clone())
        .unwrap_or_else(|| default.to_string())
}

/// The virtio-win ISO. `BKT_VM_DOWNLOAD_CAP` (in the settings) lowers its
/// size cap, so that tests need not send gigabytes.
pub fn virtio(given_url: Option<&str>, s: &Download) -> Item {
    let url = url(given_url, &s.virtio_url, VIRTIO_URL);
    Item {
        file: "virtio-win.iso".into(),
        what: "VirtIO drivers",
        origin: shown(&url),
        url,
        kind: Kind::Iso,
        min_size: 1 << 20,
        max_size: s.cap.unwrap_or(2 << 30),
        margin: None,
        relink: None,
        hint: URL_HINT,
        sha256_from: SHA256_GIVEN,
    }
}

pub fn guest_tools(given_url: Option<&str>, s: &Download) -> Item {
    let url = url(given_url, &s.guest_tools_url, GUEST_TOOLS_URL);
    Item {
        file: "virtio-win-guest-tools.exe".into(),
        what: "guest tools (SPICE agent, qemu-ga)",
        origin: shown(&url),
        url,
        kind: Kind::Exe,
        min_size: 100 << 10,
        max_size: s.cap.unwrap_or(256 << 20),
        margin: None,
        relink: None,
        hint: URL_HINT,
        sha256_from: SHA256_GIVEN,
    }
}

/// `$XDG_CACHE_HOME/bkt/vm`, else `~/.cache/bkt/vm`.
pub fn cache_dir(s: &Download) -> Result<PathBuf> {
    s.cache_dir
        .clone()
        .context("cannot find the cache: neither XDG_CACHE_HOME nor HOME is set")
}

/// Free bytes on the file system holding `dir` (or its nearest parent).
fn free_space(dir: &Path) -> Option<u64> {
    let probe = dir.ancestors().find(|p| p.exists())?;
    let st = rustix::fs::statvfs(probe).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Whether an open file starts like `kind` (the ISO 9660 volume descriptor
/// or the MZ header).
pub fn has_signature(f: &mut File, kind: Kind) -> bool {
    use std::io::{Seek, SeekFrom};
    let (offset, magic): (u64, &[u8]) = match kind {
        Kind::Iso => (32769, b"CD001"),
        Kind::Exe => (0, b"MZ"),
    };
    let mut buf = vec![0u8; magic.len()];
    f.seek(SeekFrom::Start(offset)).is_ok() && f.read_exact(&mut buf).is_ok() && buf == magic
}

/// Why a file is not what it should be.
pub fn check_file(path: &Path, kind: Kind, min_size: u64) -> std::result::Result<u64, String> {
    let mut f = File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len < min_size {
        return Err(format!(
            "{} is only {} (expected at least {})",
            path.display(),
            human(len),
            human(min_size)
        ));
    }
    if !has_signature(&mut f, kind) {
        return Err(format!(
            "{} is not {}",
            path.display(),
            match kind {
                Kind::Iso => "an ISO 9660 image (no CD001 signature)",
                Kind::Exe => "a Windows program (no MZ header)",
            }
        ));
    }
    Ok(len)
}

pub fn sha256_file(path: &Path) -> Result<String> {
    sha256_told(path, &mut |_| {})
}

/// [`sha256_file`], `read` told the bytes hashed so far.
pub fn sha256_told(path: &Path, read: &mut dyn FnMut(u64)) -> Result<String> {
    let mut f = File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        total += n as u64;
        read(total);
        // A hash of gigabytes is long: a Ctrl-C noted meanwhile ends it.
        crate::interrupt::check()?;
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The hash of a file bkt downloaded, as its `FILE.sha256` recorded it
/// (only while the file is as it was then).
pub fn known_sha256(file: &Path) -> Option<String> {
    recorded_sum(file)
}

/// Whether `s` is a SHA-256 as hex digits.
fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit())
}

fn sum_path(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_os_string();
    s.push(".sha256");
    PathBuf::from(s)
}

/// What tells one version of a file from another: a rewrite changes its
/// size or mtime, and its ctime even when the mtime is put back.
fn stamp(file: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(file).ok()?;
    Some(format!(
        "size={} mtime={}.{:09} ctime={}.{:09}",
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec()
    ))
}

/// The hash recorded in `FILE.sha256`, if it was taken of the file as it
/// is now: the record is a cache of the file's own hash, never a promise.
fn recorded_sum(file: &Path) -> Option<String> {
    let text = fs::read_to_string(sum_path(file)).ok()?;
    let (sum, taken) = text.trim_end().split_once(' ')?;
    (is_sha256(sum) && Some(taken) == stamp(file).as_deref()).then(|| sum.to_string())
}

/// Keep `sum` beside `file` with its stamp. A record that cannot be
/// written only costs hashing the file again next time.
fn record_sum(file: &Path, sum: &str) {
    if let Some(taken) = stamp(file) {
        let _ = fs::write(sum_path(file), format!("{sum} {taken}\n"));
    }
}

fn hash_and_record(file: &Path) -> Result<String> {
    let sum = sha256_file(file)?;
    record_sum(file, &sum);
    Ok(sum)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Rename `file` to `TARGET.mismatch-SECS` (`-2`, `-3`... when that name is
/// taken): a file that is not what was expected is kept for the user to
/// look at, never deleted and never put over another.
fn move_aside(file: &Path, target: &Path, secs: u64) -> Result<PathBuf> {
    let base = format!("{}.mismatch-{secs}", target.display());
    let mut aside = PathBuf::from(&base);
    let mut n = 1;
    while aside.exists() {
        n += 1;
        aside = PathBuf::from(format!("{base}-{n}"));
    }
    fs::rename(file, &aside).with_context(|| {
        format!(
            "cannot move {} aside to {}",
            file.display(),
            aside.display()
        )
    })?;
    Ok(aside)
}

/// How a download attempt ended when it did not finish.
enum Attempt {
    /// Worth another try (network trouble, a short body, a 5xx).
    Retry(String),
    /// Another try would not help.
    Fatal(anyhow::Error),
    /// The link is no longer good (HTTP 403, 404, 410) and the item can
    /// get a fresh one.
    Expired(u16),
}

fn fatal(message: String, hint: impl Into<String>) -> Attempt {
    Attempt::Fatal(Err::<(), _>(anyhow!(message)).hint(hint).unwrap_err())
}

const URL_HINT: &str = "check the URL (--virtio-url, BKT_VM_VIRTIO_URL), or use a mirror";

/// Where the file is, and whether it came from the cache.
#[derive(Debug)]
pub struct Fetched {
    pub path: PathBuf,
    pub cached: bool,
    pub size: u64,
    pub sha256: String,
}

/// Options for [`fetch`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub offline: bool,
    pub expected_sha256: Option<String>,
}

/// The cached file, or download it.
///
/// The work runs on a thread of its own, so that a Ctrl-C noted by a
/// command that [`crate::interrupt::catch`]es it ends the wait at once,
/// wherever the download is: blocked in a request or a read (which a
/// signal does not wake), pausing between tries, waiting for another bkt's
/// lock, or hashing. Every step leaves the cache consistent at any point
/// (a `.part` holds a prefix of the file, its record is written before the
/// data it describes), so bkt ends there and says what is kept.
pub fn fetch(item: &Item, opts: &Options, s: &Download) -> Result<Fetched> {
    crate::interrupt::check()?;
    let (tx, rx) = std::sync::mpsc::channel();
    let work = {
        let (item, opts, s) = (item.clone(), opts.clone(), s.clone());
        std::thread::spawn(move || {
            let _ = tx.send(fetch_here(&item, &opts, &s));
        })
    };
    match crate::interrupt::recv(&rx) {
        Some(Err(e)) if crate::interrupt::is_interrupted(&e) => Err(interrupted(item, s)),
        Some(done) => done,
        None if crate::interrupt::happened() => Err(interrupted(item, s)),
        None => match work.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the download thread ended without an answer"),
        },
    }
}

/// The error for a download interrupted by the user, saying what of it is
/// left in the cache and what the next run does with it.
fn interrupted(item: &Item, s: &Download) -> anyhow::Error {
    let err = anyhow::Error::new(crate::interrupt::Interrupted);
    let Ok(dir) = cache_dir(s) else {
        return err;
    };
    let target = dir.join(&item.file);
    let part = PathBuf::from(format!("{}.part", target.display()));
    let have = fs::metadata(&part).map_or(0, |m| m.len());
    if target.exists() {
        return err.context(format!(
            "checking {} was interrupted; the file was left as it is",
            target.display()
        ));
    }
    let left = if have == 0 {
        format!("nothing of {} was kept", item.file)
    } else if resume_path(&part).exists() {
        format!(
            "the {} received are kept in {}; run it again to resume from there",
            human(have),
            part.display()
        )
    } else {
        format!(
            "the {} received are in {}, but the server sent nothing to resume them against (no ETag or Last-Modified): the next run starts over",
            human(have),
            part.display()
        )
    };
    err.context(format!("downloading {} was interrupted; {left}", item.file))
}

fn fetch_here(item: &Item, opts: &Options, s: &Download) -> Result<Fetched> {
    let expected = opts
        .expected_sha256
        .as_ref()
        .map(|s| s.to_ascii_lowercase());
    if let Some(e) = &expected
        && !is_sha256(e)
    {
        bail!("--virtio-sha256 must be 64 hexadecimal digits");
    }
    let dir = cache_dir(s)?;
    let target = dir.join(&item.file);
    if opts.offline {
        if !target.exists() {
            return Err(anyhow!("--offline: no {} in the cache", item.file)).hint(format!(
                "on a connected machine download {} and place it at {}",
                item.origin,
                target.display()
            ));
        }
        return cached(item, &target, expected.as_deref());
    }
    // A finished file appears whole (a rename), so it is read without the
    // lock, which is for the one process that fills the `.part`.
    if target.exists() {
        return cached(item, &target, expected.as_deref());
    }
    let http = item.url.starts_with("http://") || item.url.starts_with("https://");
    if !http {
        bail!("{} is not an http(s) URL", item.origin);
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating the cache {}", dir.display()))?;
    let _lock = lock(&dir, item)?;
    // Checked under the lock: the bkt we waited for may have finished it.
    if target.exists() {
        return cached(item, &target, expected.as_deref());
    }
    download(item, &target, expected.as_deref(), s)
}

/// One bkt at a time fills a `.part`: an exclusive lock on `NAME.lock`
/// beside it, held until dropped. The lock file stays: removing it would
/// let a third bkt lock a new file while the second holds the old one.
fn lock(dir: &Path, item: &Item) -> Result<File> {
    let path = dir.join(format!("{}.lock", item.file));
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open the download lock {}", path.display()))?;
    match f.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            eprintln!("waiting for another bkt download of {}", item.file);
            f.lock()
                .with_context(|| format!("cannot lock {}", path.display()))?;
        }
        Err(fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    Ok(f)
}

/// The file in the cache, its hash taken (or its recorded hash, when no
/// SHA-256 is expected and the record is of the file as it is now).
fn cached(item: &Item, target: &Path, expected: Option<&str>) -> Result<Fetched> {
    let size = check_file(target, item.kind, item.min_size)
        .map_err(|why| anyhow!("the cached {} is damaged: {why}", item.file))
        .hint(format!(
            "delete it and download again: rm {}",
            target.display()
        ))?;
    let sum = match (expected, recorded_sum(target)) {
        (None, Some(recorded)) => recorded,
        _ => hash_and_record(target)?,
    };
    if let Some(e) = expected
        && e != sum
    {
        let aside = move_aside(target, target, unix_now())?;
        let _ = fs::remove_file(sum_path(target));
        return Err(anyhow!(
            "the cached {} has SHA-256 {sum}, not {e}; it was moved to {}",
            item.file,
            aside.display()
        ))
        .hint(format!(
            "check {}; run it again to download {} afresh, and delete {} once you no longer need it",
            item.sha256_from,
            item.file,
            aside.display()
        ));
    }
    Ok(Fetched {
        path: target.to_path_buf(),
        cached: true,
        size,
        sha256: sum,
    })
}

/// Download `item` into `target` through `TARGET.part`, held under the lock.
fn download(item: &Item, target: &Path, expected: Option<&str>, s: &Download) -> Result<Fetched> {
    let part = PathBuf::from(format!("{}.part", target.display()));
    let agent = agent(s)?;
    let mut item = item.clone();
    let mut last = String::new();
    let tries = s.retries;
    for attempt in 0..=tries {
        if attempt > 0 {
            let wait = Duration::from_secs(1 << (attempt - 1));
            eprintln!("  retrying in {}s ({last})", wait.as_secs());
            std::thread::sleep(wait);
        }
        match attempt_relinked(&agent, &mut item, &part) {
            Ok(()) => {
                last.clear();
                break;
            }
            Err(Attempt::Retry(why)) => last = why,
            Err(Attempt::Fatal(e)) => return Err(e),
            Err(Attempt::Expired(status)) => {
                return Err(anyhow!(
                    "{} answered HTTP {status} to a fresh link too",
                    item.origin
                ))
                .hint(item.hint);
            }
        }
    }
    if !last.is_empty() {
        return Err(anyhow!(
            "downloading {} failed after {} tries: {last}",
            item.origin,
            tries + 1
        ))
        .hint(format!(
            "run it again to resume ({} is kept), or use --offline with a copy placed at {}",
            part.display(),
            target.display()
        ));
    }
    let size = match check_file(&part, item.kind, item.min_size) {
        Ok(s) => s,
        Err(why) => {
            discard(&part);
            bail!(
                "the download from {} is not usable: {why}; it was deleted",
                item.origin
            );
        }
    };
    let sum = sha256_file(&part)?;
    let _ = fs::remove_file(resume_path(&part));
    if let Some(e) = expected
        && e != sum
    {
        let aside = move_aside(&part, target, unix_now())?;
        return Err(anyhow!(
            "{} from {} has SHA-256 {sum}, not the expected {e}; it was not used and is kept as {}",
            item.file,
            item.origin,
            aside.display()
        ))
        .hint(format!(
            "the server may have a newer release than {}: compare with the checksum it publishes, and delete {} once you no longer need it",
            item.sha256_from,
            aside.display()
        ));
    }
    fs::rename(&part, target).with_context(|| format!("finishing {}", target.display()))?;
    record_sum(target, &sum);
    Ok(Fetched {
        path: target.to_path_buf(),
        cached: false,
        size,
        sha256: sum,
    })
}

/// `NAME.part.resume`: the URL a `.part` came from and the `If-Range`
/// value (the first response's ETag, else its Last-Modified) that lets the
/// server prove it still has the same file.
fn resume_path(part: &Path) -> PathBuf {
    let mut s = part.as_os_str().to_os_string();
    s.push(".resume");
    PathBuf::from(s)
}

/// The `.part` and what it was resumable with, gone.
fn discard(part: &Path) {
    let _ = fs::remove_file(part);
    let _ = fs::remove_file(resume_path(part));
}

/// Where a `.part` can be resumed from.
struct Resume {
    from: u64,
    if_range: String,
}

/// The `.part`'s size and validator, when the record says it came from
/// this URL with one; otherwise the `.part` is dropped (a resume that the
/// server cannot check may splice two releases) and None.
fn resume_point(item: &Item, part: &Path) -> Option<Resume> {
    let have = fs::metadata(part).map_or(0, |m| m.len());
    if have == 0 {
        return None;
    }
    let record = fs::read_to_string(resume_path(part)).unwrap_or_default();
    let field = |key: &str| {
        record
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .filter(|v| !v.is_empty())
    };
    let why = match (field("url"), field("if-range")) {
        (Some(url), Some(if_range)) if url == item.origin => {
            return Some(Resume {
                from: have,
                if_range: if_range.to_string(),
            });
        }
        (Some(url), Some(_)) => format!("it came from {url}"),
        _ => "the server sent no ETag or Last-Modified to check it against".to_string(),
    };
    eprintln!(
        "  not resuming the partial {} ({why}); starting over",
        item.file
    );
    discard(part);
    None
}

/// The `If-Range` value that proves a later response is the same file: a
/// strong ETag (a weak one may not be used there), else Last-Modified.
fn validator(etag: Option<&str>, last_modified: Option<&str>) -> Option<String> {
    etag.filter(|e| e.starts_with('"'))
        .or(last_modified)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// The first byte and the total size in `Content-Range: bytes FIRST-LAST/TOTAL`
/// (TOTAL may be `*`).
fn content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let (range, total) = value.trim().strip_prefix("bytes ")?.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let first: u64 = first.parse().ok()?;
    let last: u64 = last.parse().ok()?;
    if last < first {
        return None;
    }
    // TOTAL is `*` or a size past the last byte; anything else is not a
    // range of this file, and the sizes counted from it could wrap.
    let total = match total {
        "*" => None,
        t => Some(t.parse::<u64>().ok().filter(|&t| t > last)?),
    };
    Some((first, total))
}

/// What to do with the answer to a request for the file from byte `from`
/// (0: the whole file).
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// Write the body at `at`: 0 truncates the `.part`, else appends to
    /// it; `size` is the whole file's, when a Content-Range gives it.
    Write {
        at: u64,
        size: Option<u64>,
        note: Option<String>,
    },
    /// The `.part` cannot be continued: drop it and ask for the whole file.
    StartOver(String),
    /// The `.part` already holds the whole file (a run interrupted while
    /// it checked the file): nothing is left to receive.
    Whole,
    Retry(String),
    /// An HTTP status that another try will not change.
    Refused,
}

fn answer(status: u16, range: Option<&str>, from: u64) -> Answer {
    match status {
        200 => Answer::Write {
            at: 0,
            size: None,
            note: (from > 0).then(|| {
                "the server sent the whole file, not the rest (it changed, or cannot resume)".into()
            }),
        },
        206 if from > 0 => match range.and_then(content_range) {
            Some((first, size)) if first == from => Answer::Write {
                at: from,
                size,
                note: None,
            },
            Some((first, _)) => Answer::StartOver(format!(
                "the server resumed at byte {first}, not at byte {from}"
            )),
            None => Answer::StartOver(format!(
                "the server resumed without a usable Content-Range ({})",
                range.unwrap_or("none")
            )),
        },
        // `Content-Range: bytes */SIZE`: the server's size of the file
        // whose validator matched, which the `.part` has whole.
        416 if from > 0
            && range
                .and_then(|r| r.trim().strip_prefix("bytes */"))
                .and_then(|t| t.parse::<u64>().ok())
                == Some(from) =>
        {
            Answer::Whole
        }
        416 if from > 0 => Answer::StartOver(format!(
            "the server cannot resume at {} (HTTP 416)",
            human(from)
        )),
        500..=599 => Answer::Retry(format!("HTTP {status} from the server")),
        _ => Answer::Refused,
    }
}

/// A URL as messages and `-v` show it: without its query, where a signed
/// link carries its token (issue 21: never on the screen).
pub fn shown(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_string(),
    }
}

/// How many redirects a download follows.
const MAX_REDIRECTS: usize = 10;

/// Where a redirect from `from` to `location` leads, or why bkt does not
/// go there: only http(s), and never from https down to plain http, where
/// anyone on the way could change the file.
fn redirect_target(from: &str, location: &str) -> std::result::Result<String, String> {
    let (scheme, after_scheme) = match from.find("://") {
        Some(i) => (&from[..i], i + 3),
        None => ("", 0),
    };
    let origin_end = from[after_scheme..]
        .find('/')
        .map_or(from.len(), |i| after_scheme + i);
    let has_scheme = location.split_once(':').is_some_and(|(s, _)| {
        s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    let to = if has_scheme {
        location.to_string()
    } else if location.starts_with("//") {
        format!("{scheme}:{location}")
    } else if location.starts_with('/') {
        format!("{}{location}", &from[..origin_end])
    } else {
        let path_end = from.find(['?', '#']).unwrap_or(from.len());
        let dir_end = from[..path_end]
            .rfind('/')
            .filter(|&i| i >= origin_end)
            .map_or(path_end, |i| i + 1);
        let slash = if dir_end == path_end { "/" } else { "" };
        format!("{}{slash}{location}", &from[..dir_end])
    };
    let scheme_of = |u: &str| u.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    let (from_shown, to_shown) = (shown(from), shown(&to));
    match (
        scheme.to_ascii_lowercase().as_str(),
        scheme_of(&to).as_deref(),
    ) {
        ("https", Some("http")) => Err(format!(
            "{from_shown} redirected to {to_shown}: bkt does not follow a redirect from https to plain http, where the download could be changed on the way"
        )),
        (_, Some("http" | "https")) => Ok(to),
        _ => Err(format!(
            "{from_shown} redirected to {to_shown}, which is not an http(s) URL"
        )),
    }
}

type Response = ureq::http::Response<ureq::Body>;

fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// GET `url`, following redirects here (see [`redirect_target`]); Range
/// and If-Range go with every hop.
fn get(
    agent: &ureq::Agent,
    item: &Item,
    resume: Option<&Resume>,
) -> std::result::Result<Response, Attempt> {
    let mut url = item.url.clone();
    for _ in 0..=MAX_REDIRECTS {
        crate::exec::log_line(&format!("GET {}", shown(&url)));
        let mut req = agent.get(&url);
        if let Some(r) = resume {
            req = req
                .header("Range", &format!("bytes={}-", r.from))
                .header("If-Range", &r.if_range);
        }
        let resp = req.call().map_err(|e| Attempt::Retry(e.to_string()))?;
        let status = resp.status().as_u16();
        if !matches!(status, 301 | 302 | 303 | 307 | 308) {
            return Ok(resp);
        }
        let Some(location) = header(&resp, "location") else {
            return Err(fatal(
                format!(
                    "{} answered HTTP {status} without a Location to go to",
                    shown(&url)
                ),
                item.hint,
            ));
        };
        url = redirect_target(&url, &location).map_err(|why| {
            fatal(
                why,
                "use a mirror that serves the file over https (--virtio-url, BKT_VM_VIRTIO_URL)",
            )
        })?;
    }
    Err(fatal(
        format!("{} redirected more than {MAX_REDIRECTS} times", shown(&url)),
        item.hint,
    ))
}

/// The HTTP client of downloads: timeouts from the settings, redirects
/// followed by `get` (which refuses https to http), and the certificates
/// of `BKT_VM_CA_FILE` as the roots when it is set (checks stay on).
pub fn agent(s: &Download) -> Result<ureq::Agent> {
    let mut config = ureq::Agent::config_builder()
        .timeout_connect(Some(s.timeout))
        .timeout_recv_response(Some(s.timeout))
        .timeout_per_read(Some(s.timeout))
        .http_status_as_error(false)
        .max_redirects(0);
    if let Some(ca) = &s.ca_file {
        let pem = fs::read(ca).with_context(|| {
            format!(
                "cannot read the CA certificates of BKT_VM_CA_FILE, {}",
                ca.display()
            )
        })?;
        let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
            .filter_map(|i| match i {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if certs.is_empty() {
            bail!("BKT_VM_CA_FILE, {}, holds no PEM certificate", ca.display());
        }
        config = config.tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                .build(),
        );
    }
    Ok(config.build().into())
}

/// [`attempt_download`], asking once for a fresh link when the item's
/// link expired. The `.part` resumes from the fresh link only if the
/// server proves it is the same file (its validator, as always).
fn attempt_relinked(
    agent: &ureq::Agent,
    item: &mut Item,
    part: &Path,
) -> std::result::Result<(), Attempt> {
    match attempt_download(agent, item, part) {
        Err(Attempt::Expired(status)) => {
            let Some(relink) = item.relink.clone() else {
                return Err(Attempt::Expired(status));
            };
            eprintln!("  the download link expired (HTTP {status}); asking for a fresh one");
            item.url = (relink.0)().map_err(Attempt::Fatal)?;
            attempt_download(agent, item, part)
        }
        done => done,
    }
}

fn attempt_download(
    agent: &ureq::Agent,
    item: &Item,
    part: &Path,
) -> std::result::Result<(), Attempt> {
    let mut resume = resume_point(item, part);
    loop {
        let resp = get(agent, item, resume.as_ref())?;
        let from = resume.as_ref().map_or(0, |r| r.from);
        let status = resp.status().as_u16();
        match answer(status, header(&resp, "content-range").as_deref(), from) {
            Answer::Write { at, size, note } => {
                if let Some(e) = web_page(item, part, &resp, from > 0) {
                    return Err(e);
                }
                if let Some(note) = note {
                    eprintln!("  {note}; starting over");
                }
                return receive(item, part, resp, at, size, from > 0);
            }
            Answer::Whole => return Ok(()),
            Answer::StartOver(why) => {
                eprintln!("  {why}; starting over");
                discard(part);
                resume = None;
            }
            Answer::Retry(why) => return Err(Attempt::Retry(why)),
            Answer::Refused if item.relink.is_some() && matches!(status, 403 | 404 | 410) => {
                return Err(Attempt::Expired(status));
            }
            Answer::Refused => {
                return Err(fatal(
                    format!("{} answered HTTP {status}", item.origin),
                    item.hint,
                ));
            }
        }
    }
}

/// The error for a full disk once the `.part` is gone: how much more room
/// the whole file of `size` bytes needs than `dir` has free. Without a
/// size, all that is known is that the free room (with what the `.part`
/// held) was not enough.
fn disk_full(file: &str, dir: &Path, size: Option<u64>, free: Option<u64>) -> String {
    let dir = dir.display();
    match (size, free) {
        (Some(size), Some(free)) => format!(
            "the disk is full: {file} needs {} more in {dir}, {} free",
            human(size.saturating_sub(free)),
            human(free)
        ),
        (Some(size), None) => format!("the disk is full: {file} needs {} in {dir}", human(size)),
        (None, Some(free)) => format!(
            "the disk is full: {file} needs more than the {} free in {dir} (the server did not say how much)",
            human(free)
        ),
        (None, None) => format!("the disk is full: {file} does not fit in {dir}"),
    }
}

/// What becomes of the `.part` when an answer is refused before a byte
/// is written: one being resumed is kept (a captive portal or a proxy
/// answering for once must not cost gigabytes), else it goes.
fn refused_part(part: &Path, resuming: bool) -> String {
    if resuming {
        format!("{} is kept to resume from", part.display())
    } else {
        discard(part);
        "nothing was saved".to_string()
    }
}

/// A web page where the file was asked for (a captive portal, a proxy's
/// message, an error page): never written, and a `.part` being resumed
/// is kept.
fn web_page(item: &Item, part: &Path, resp: &Response, resuming: bool) -> Option<Attempt> {
    let ctype = header(resp, "content-type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    ctype.starts_with("text/html").then(|| {
        let kept = refused_part(part, resuming);
        let message = format!(
            "{} sent a web page (Content-Type: {}), not the {}; {kept}",
            item.origin,
            crate::ui::escaped(&ctype),
            item.file
        );
        if resuming {
            fatal(
                message,
                "a captive portal or proxy may be answering for the server: sign in or check the network, then run it again",
            )
        } else {
            Attempt::Fatal(anyhow!(message))
        }
    })
}

/// Write the body of `resp` into `part` at `at` (0: from the start) for a
/// file of `size` bytes, when the server said so; `resuming`: a `.part`
/// was asked to be continued, and is kept if the answer is refused.
fn receive(
    item: &Item,
    part: &Path,
    resp: Response,
    at: u64,
    size: Option<u64>,
    resuming: bool,
) -> std::result::Result<(), Attempt> {
    let length: Option<u64> = header(&resp, "content-length").and_then(|v| v.parse().ok());
    let total = size.or(length.and_then(|l| l.checked_add(at)));
    let cap = item.max_size;
    if let Some(t) = total
        && t > cap
    {
        // A whole-file answer to a resume (a proxy's, say) says nothing
        // of the `.part`; the rest of the `.part`'s own file past the cap
        // does, and then it can never be finished.
        let kept = refused_part(part, resuming && at == 0);
        return Err(fatal(
            format!(
                "{} announces {}, more than the {} a {} can be; {kept}",
                item.origin,
                human(t),
                human(cap),
                item.file
            ),
            item.hint,
        ));
    }
    room_for(item, part, total, at)?;
    let file = open_part(item, part, &resp, at)?;
    let bar = progress(item, total, at);
    let done = copy_body(item, part, file, resp, at, total, &bar);
    bar.finish_and_clear();
    done
}

/// Whether the rest of the file and the item's margin fit beside the
/// `.part` (checked before a byte is written; nothing is deleted).
fn room_for(
    item: &Item,
    part: &Path,
    total: Option<u64>,
    at: u64,
) -> std::result::Result<(), Attempt> {
    let dir = part.parent().unwrap_or(Path::new("."));
    let (Some(margin), Some(total)) = (item.margin, total) else {
        return Ok(());
    };
    use std::os::unix::fs::MetadataExt;
    // What the `.part` takes on the disk (a sparse one gives back less).
    let held = fs::metadata(part).map_or(0, |m| m.blocks().saturating_mul(512));
    match no_room(
        &item.file,
        dir,
        total.saturating_sub(at),
        margin,
        free_for(free_space(dir), held, at),
    ) {
        Some(why) => Err(fatal(
            why,
            "make room there, or set XDG_CACHE_HOME to a disk with space, and run it again",
        )),
        None => Ok(()),
    }
}

/// The room a download written at `at` has: the `free` bytes, and from
/// byte 0 the `held` bytes of the `.part` it truncates too, so that a
/// stale `.part` never blocks its own replacement.
fn free_for(free: Option<u64>, held: u64, at: u64) -> Option<u64> {
    let given_back = if at == 0 { held } else { 0 };
    free.map(|f| f.saturating_add(given_back))
}

/// Why `rest` bytes and a `margin` do not fit in the `free` bytes of `dir`.
fn no_room(file: &str, dir: &Path, rest: u64, margin: u64, free: Option<u64>) -> Option<String> {
    let free = free?;
    let need = rest.saturating_add(margin);
    (free < need).then(|| {
        format!(
            "not enough room for {file} in {}: it needs {} ({} to download and {} to spare), {} is free",
            dir.display(),
            human(need),
            human(rest),
            human(margin),
            human(free)
        )
    })
}

/// The `.part` opened to write at `at`, and on a fresh start the record
/// of what the next run may resume it with.
fn open_part(
    item: &Item,
    part: &Path,
    resp: &Response,
    at: u64,
) -> std::result::Result<File, Attempt> {
    if at == 0 {
        // A fresh start: the old record goes before the data it described,
        // the new one comes before any data it describes.
        let _ = fs::remove_file(resume_path(part));
    }
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .append(at > 0)
        .truncate(at == 0)
        .open(part)
        .map_err(|e| Attempt::Fatal(anyhow!("cannot write {}: {e}", part.display())))?;
    if at == 0
        && let Some(v) = validator(
            header(resp, "etag").as_deref(),
            header(resp, "last-modified").as_deref(),
        )
    {
        // Without it the next run starts over, which is safe. The URL is
        // the query-less origin (no token on disk), and the record is the
        // user's alone.
        use std::os::unix::fs::OpenOptionsExt;
        let _ = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(resume_path(part))
            .and_then(|mut f| write!(f, "url {}\nif-range {v}\n", item.origin));
    }
    Ok(file)
}

/// The body of `resp` appended to `file` (the `.part`, at `at`), within
/// the item's cap; a short body is worth another try, a full disk is not.
fn copy_body(
    item: &Item,
    part: &Path,
    mut file: File,
    resp: Response,
    at: u64,
    total: Option<u64>,
    bar: &indicatif::ProgressBar,
) -> std::result::Result<(), Attempt> {
    let cap = item.max_size;
    let mut body = resp.into_body();
    let mut reader = body.as_reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut got = at;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                let _ = file.flush();
                return Err(Attempt::Retry(format!(
                    "the transfer stopped at {}: {e}",
                    human(got)
                )));
            }
        };
        if got.saturating_add(n as u64) > cap {
            discard(part);
            return Err(fatal(
                format!(
                    "{} sent more than the {} a {} can be; the download was stopped and deleted",
                    item.origin,
                    human(cap),
                    item.file
                ),
                item.hint,
            ));
        }
        if let Err(e) = file.write_all(&buf[..n]) {
            drop(file);
            discard(part);
            if e.kind() == std::io::ErrorKind::StorageFull {
                let dir = part.parent().unwrap_or(Path::new("."));
                return Err(fatal(
                    disk_full(&item.file, dir, total, free_space(dir)),
                    "make room there, or set XDG_CACHE_HOME to a disk with space, and run it again",
                ));
            }
            return Err(Attempt::Fatal(anyhow!(
                "cannot write {}: {e}; it was deleted",
                part.display()
            )));
        }
        got += n as u64;
        bar.set_position(got);
    }
    let _ = file.flush();
    match total {
        Some(t) if got < t => Err(Attempt::Retry(format!(
            "the server closed the connection at {} of {}",
            human(got),
            human(t)
        ))),
        _ => Ok(()),
    }
}

fn progress(item: &Item, total: Option<u64>, start: u64) -> indicatif::ProgressBar {
    let bar = crate::ui::bytes_bar(&format!("downloading {}", item.file), total);
    bar.set_position(start);
    if bar.is_hidden() {
        eprintln!(
            "downloading {} from {}{}",
            item.file,
            item.origin,
            if start > 0 {
                format!(" (resuming at {})", human(start))
            } else {
                String::new()
            }
        );
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_and_sizes() {
        let d = tempfile::tempdir().unwrap();
        let iso = d.path().join("a.iso");
        let mut data = vec![0u8; 40_000];
        data[32769..32774].copy_from_slice(b"CD001");
        fs::write(&iso, &data).unwrap();
        assert_eq!(check_file(&iso, Kind::Iso, 1000), Ok(40_000));
        assert!(
            check_file(&iso, Kind::Iso, 50_000)
                .unwrap_err()
                .contains("is only")
        );
        let html = d.path().join("b.iso");
        fs::write(&html, "<html>404</html>".repeat(4000)).unwrap();
        assert!(
            check_file(&html, Kind::Iso, 1000)
                .unwrap_err()
                .ends_with("is not an ISO 9660 image (no CD001 signature)")
        );
        let exe = d.path().join("c.exe");
        fs::write(&exe, b"MZ\x90\x00rest").unwrap();
        assert_eq!(check_file(&exe, Kind::Exe, 1), Ok(8));
        assert_eq!(sha256_file(&exe).unwrap().len(), 64);
    }

    #[test]
    fn redirects_stay_on_http_and_never_drop_from_https() {
        let ok = |from, loc| redirect_target(from, loc).unwrap();
        assert_eq!(
            ok("http://a.example/d/f.iso", "http://b.example/x.iso"),
            "http://b.example/x.iso"
        );
        assert_eq!(
            ok("https://a.example/d/f.iso", "https://b.example/x.iso"),
            "https://b.example/x.iso"
        );
        assert_eq!(
            ok("http://a.example/d/f.iso", "https://b.example/x.iso"),
            "https://b.example/x.iso"
        );
        assert_eq!(
            ok("https://a.example:8443/d/f.iso?x=/y", "/m/v.iso"),
            "https://a.example:8443/m/v.iso"
        );
        assert_eq!(
            ok("https://a.example/d/f.iso?x=/y", "v2/v.iso"),
            "https://a.example/d/v2/v.iso"
        );
        assert_eq!(ok("https://a.example", "v.iso"), "https://a.example/v.iso");
        assert_eq!(
            ok("https://a.example/d/f.iso", "//b.example/v.iso"),
            "https://b.example/v.iso"
        );
        assert_eq!(
            ok("http://a.example/d/f.iso", "/p:q/v.iso"),
            "http://a.example/p:q/v.iso"
        );
        assert_eq!(ok("http://a/d/f.iso", "/v.iso"), "http://a/v.iso");
        assert_eq!(ok("https://a/d/f.iso", "/v.iso"), "https://a/v.iso");
        // Not a scheme: a colon after a slash or a digit first.
        assert_eq!(
            ok("http://a.example/d/f.iso", "v/x:1.iso"),
            "http://a.example/d/v/x:1.iso"
        );
        assert_eq!(
            ok("http://a.example/d/f.iso", "1v:x.iso"),
            "http://a.example/d/1v:x.iso"
        );
        // The downgrade, in any letter case, and relative forms of it.
        for (from, loc) in [
            ("https://a.example/f.iso", "http://a.example/f.iso"),
            ("HTTPS://a.example/f.iso", "HTTP://a.example/f.iso"),
            ("https://a.example/f.iso", "Http://b.example/f.iso"),
        ] {
            assert_eq!(
                redirect_target(from, loc),
                Err(format!(
                    "{from} redirected to {loc}: bkt does not follow a redirect from https to plain http, where the download could be changed on the way"
                ))
            );
        }
        assert_eq!(
            redirect_target("http://a.example/f.iso", "ftp://a.example/f.iso"),
            Err(
                "http://a.example/f.iso redirected to ftp://a.example/f.iso, which is not an http(s) URL"
                    .into()
            )
        );
        assert_eq!(
            redirect_target("https://a.example/f.iso", "file:/etc/passwd"),
            Err(
                "https://a.example/f.iso redirected to file:/etc/passwd, which is not an http(s) URL"
                    .into()
            )
        );
    }

    #[test]
    fn a_mirrors_query_is_neither_shown_nor_recorded() {
        let s = Download::default();
        let v = virtio(Some("https://m.example/v.iso?sig=secret"), &s);
        assert_eq!(v.url, "https://m.example/v.iso?sig=secret");
        assert_eq!(v.origin, "https://m.example/v.iso?…");
        let g = guest_tools(Some("https://m.example/g.exe?sig=secret"), &s);
        assert_eq!(g.origin, "https://m.example/g.exe?…");
        assert_eq!(virtio(None, &s).origin, VIRTIO_URL);
    }

    #[test]
    fn redirects_never_show_a_query() {
        assert_eq!(
            redirect_target("https://a.example/f.iso?t=secret1", "http://b.example/g.iso?t=secret2"),
            Err(
                "https://a.example/f.iso?… redirected to http://b.example/g.iso?…: bkt does not follow a redirect from https to plain http, where the download could be changed on the way"
                    .into()
            )
        );
        assert_eq!(
            redirect_target("http://a.example/f.iso?sig=s1", "ftp://b.example/g?sig=s2"),
            Err(
                "http://a.example/f.iso?… redirected to ftp://b.example/g?…, which is not an http(s) URL"
                    .into()
            )
        );
        assert_eq!(
            shown("https://a.example/f.iso?t=x"),
            "https://a.example/f.iso?…"
        );
    }

    #[test]
    fn every_answer_to_a_resume() {
        let write = |at, size| Answer::Write {
            at,
            size,
            note: None,
        };
        assert_eq!(answer(200, None, 0), write(0, None));
        assert_eq!(
            answer(200, None, 500),
            Answer::Write {
                at: 0,
                size: None,
                note: Some(
                    "the server sent the whole file, not the rest (it changed, or cannot resume)"
                        .into()
                )
            }
        );
        assert_eq!(
            answer(206, Some("bytes 500-999/1000"), 500),
            write(500, Some(1000))
        );
        assert_eq!(answer(206, Some("bytes 500-999/*"), 500), write(500, None));
        assert_eq!(
            answer(206, Some("bytes 0-999/1000"), 500),
            Answer::StartOver("the server resumed at byte 0, not at byte 500".into())
        );
        assert_eq!(
            answer(206, Some("bytes 501-999/1000"), 500),
            Answer::StartOver("the server resumed at byte 501, not at byte 500".into())
        );
        assert_eq!(
            answer(206, None, 500),
            Answer::StartOver("the server resumed without a usable Content-Range (none)".into())
        );
        assert_eq!(
            answer(206, Some("bytes 500-400/1000"), 500),
            Answer::StartOver(
                "the server resumed without a usable Content-Range (bytes 500-400/1000)".into()
            )
        );
        // A part nobody asked for is not a file.
        assert_eq!(answer(206, Some("bytes 0-9/10"), 0), Answer::Refused);
        assert_eq!(
            answer(416, None, 2048),
            Answer::StartOver("the server cannot resume at 2 KiB (HTTP 416)".into())
        );
        assert_eq!(answer(416, None, 0), Answer::Refused);
        // The server's size is the `.part`'s: a run interrupted while it
        // checked the whole file left it, nothing is missing.
        assert_eq!(answer(416, Some("bytes */2048"), 2048), Answer::Whole);
        assert_eq!(
            answer(416, Some("bytes */4096"), 2048),
            Answer::StartOver("the server cannot resume at 2 KiB (HTTP 416)".into())
        );
        assert_eq!(
            answer(416, Some("bytes */x"), 2048),
            Answer::StartOver("the server cannot resume at 2 KiB (HTTP 416)".into())
        );
        assert_eq!(
            answer(500, None, 0),
            Answer::Retry("HTTP 500 from the server".into())
        );
        assert_eq!(
            answer(599, None, 9),
            Answer::Retry("HTTP 599 from the server".into())
        );
        assert_eq!(answer(404, None, 0), Answer::Refused);
        assert_eq!(answer(600, None, 0), Answer::Refused);
        assert_eq!(answer(499, None, 0), Answer::Refused);
    }

    #[test]
    fn content_ranges_and_validators() {
        assert_eq!(content_range("bytes 5-9/10"), Some((5, Some(10))));
        assert_eq!(content_range(" bytes 5-5/*"), Some((5, None)));
        assert_eq!(content_range("bytes */10"), None);
        assert_eq!(content_range("bytes 6-5/10"), None);
        // A total at or before the last byte is no range of the file.
        assert_eq!(content_range("bytes 5-9/9"), None);
        assert_eq!(content_range("bytes 5-9/0"), None);
        assert_eq!(content_range("bytes 5-9/x"), None);
        assert_eq!(
            content_range("bytes 5-18446744073709551614/18446744073709551615"),
            Some((5, Some(u64::MAX)))
        );
        assert_eq!(
            answer(206, Some("bytes 500-999/3"), 500),
            Answer::StartOver(
                "the server resumed without a usable Content-Range (bytes 500-999/3)".into()
            )
        );
        assert_eq!(content_range("items 5-9/10"), None);
        assert_eq!(content_range("bytes 5-9"), None);
        assert_eq!(content_range("bytes x-9/10"), None);
        assert_eq!(content_range("bytes 5-y/10"), None);
        let lm = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert_eq!(validator(Some("\"v1\""), Some(lm)), Some("\"v1\"".into()));
        // A weak ETag may not go into If-Range.
        assert_eq!(validator(Some("W/\"v1\""), Some(lm)), Some(lm.into()));
        assert_eq!(validator(Some("W/\"v1\""), None), None);
        assert_eq!(validator(None, Some(lm)), Some(lm.into()));
        assert_eq!(validator(None, Some("")), None);
        assert_eq!(validator(None, None), None);
    }

    #[test]
    fn a_full_disk_says_how_much_is_missing() {
        let dir = Path::new("/home/anna/.cache/bkt/vm");
        let full = |size, free| disk_full("virtio-win.iso", dir, size, free);
        assert_eq!(
            full(Some(613 << 20), Some(1 << 20)),
            "the disk is full: virtio-win.iso needs 612 MiB more in /home/anna/.cache/bkt/vm, 1 MiB free"
        );
        // Room enough now: another writer filled the disk, then gave it back.
        assert_eq!(
            full(Some(1 << 20), Some(3 << 20)),
            "the disk is full: virtio-win.iso needs 0 B more in /home/anna/.cache/bkt/vm, 3 MiB free"
        );
        assert_eq!(
            full(Some(3 << 20), None),
            "the disk is full: virtio-win.iso needs 3 MiB in /home/anna/.cache/bkt/vm"
        );
        assert_eq!(
            full(None, Some(1 << 20)),
            "the disk is full: virtio-win.iso needs more than the 1 MiB free in /home/anna/.cache/bkt/vm (the server did not say how much)"
        );
        assert_eq!(
            full(None, None),
            "the disk is full: virtio-win.iso does not fit in /home/anna/.cache/bkt/vm"
        );
    }

    #[test]
    fn room_is_checked_with_a_margin() {
        let dir = Path::new("/c");
        assert_eq!(no_room("w.iso", dir, 7 << 30, 1 << 30, Some(9 << 30)), None);
        assert_eq!(no_room("w.iso", dir, 7 << 30, 1 << 30, None), None);
        assert_eq!(
            no_room("w.iso", dir, 7 << 30, 1 << 30, Some(7 << 30)).as_deref(),
            Some(
                "not enough room for w.iso in /c: it needs 8 GiB (7 GiB to download and 1 GiB to spare), 7 GiB is free"
            )
        );
        // A stale 6 GiB `.part` overwritten from byte 0 is room given
        // back; one resumed is not.
        let (part, free) = (6u64 << 30, Some(2u64 << 30));
        assert_eq!(free_for(free, part, 0), Some(8 << 30));
        assert_eq!(
            no_room("w.iso", dir, 7 << 30, 256 << 20, free_for(free, part, 0)),
            None
        );
        assert_eq!(free_for(free, part, part), free);
        assert_eq!(free_for(None, part, 0), None);
        // A size from a hostile header does not wrap around to "fits".
        assert!(no_room("w.iso", dir, u64::MAX, 1 << 30, Some(1 << 40)).is_some());
    }

    #[test]
    fn moved_aside_never_over_another_file() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("v.iso");
        for (content, want) in [
            ("one", "v.iso.mismatch-77"),
            ("two", "v.iso.mismatch-77-2"),
            ("three", "v.iso.mismatch-77-3"),
        ] {
            fs::write(&target, content).unwrap();
            let aside = move_aside(&target, &target, 77).unwrap();
            assert_eq!(aside, d.path().join(want));
            assert_eq!(fs::read_to_string(&aside).unwrap(), content);
            assert!(!target.exists());
        }
        let err = move_aside(&target, &target, 78).unwrap_err();
        assert_eq!(
            format!("{err:#}").split(": No such").next().unwrap(),
            format!(
                "cannot move {} aside to {}.mismatch-78",
                target.display(),
                target.display()
            )
        );
    }

    #[test]
    fn the_recorded_hash_is_only_trusted_for_the_same_file() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("v.iso");
        fs::write(&f, "release 1").unwrap();
        assert_eq!(recorded_sum(&f), None);
        let sum = hash_and_record(&f).unwrap();
        assert_eq!(recorded_sum(&f), Some(sum.clone()));
        // Same size, the mtime put back: the ctime still tells.
        let mtime = fs::metadata(&f).unwrap().modified().unwrap();
        // Wait for the file clock to tick (it is coarser than the ns shown).
        let ctime = |p: &Path| {
            use std::os::unix::fs::MetadataExt;
            let m = fs::metadata(p).unwrap();
            (m.ctime(), m.ctime_nsec())
        };
        let probe = d.path().join("probe");
        while {
            fs::write(&probe, "").unwrap();
            ctime(&probe) == ctime(&f)
        } {}
        fs::write(&f, "release 2").unwrap();
        File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        assert_eq!(recorded_sum(&f), None);
        // A record without its stamp (as bkt wrote them before) or with a
        // damaged hash is no record.
        fs::write(sum_path(&f), format!("{sum}\n")).unwrap();
        assert_eq!(recorded_sum(&f), None);
        let taken = stamp(&f).unwrap();
        fs::write(sum_path(&f), format!("{} {taken}\n", &sum[1..])).unwrap();
        assert_eq!(recorded_sum(&f), None);
        fs::write(sum_path(&f), format!("{sum} {taken}\n")).unwrap();
        assert_eq!(recorded_sum(&f), Some(sum));
    }
}
