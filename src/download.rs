//! Downloads that never hand Windows a broken file: the virtio-win ISO and
//! the guest tools installer, into `$XDG_CACHE_HOME/bkt/vm`.
//!
//! A download is written to `NAME.part` and renamed only once it is whole
//! and checked (HTTP status, not a web page, the file's signature, a sane
//! size, the SHA-256 when one is expected), so an interruption leaves a
//! partial file that the next run resumes with an HTTP Range request, and
//! never a corrupt final file.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use sha2::{Digest, Sha256};

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
    pub file: &'static str,
    pub what: &'static str,
    pub url: String,
    pub kind: Kind,
    /// Below this, the server sent something else.
    pub min_size: u64,
}

pub const VIRTIO_URL: &str =
    "https://fedorapeople.org/groups/virt/virtio-win/direct-downloads/stable-virtio/virtio-win.iso";
pub const GUEST_TOOLS_URL: &str = "https://fedorapeople.org/groups/virt/virtio-win/direct-downloads/stable-virtio/virtio-win-guest-tools.exe";

fn url(given: Option<&str>, env: &str, default: &str) -> String {
    given
        .map(str::to_string)
        .or_else(|| std::env::var(env).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| default.to_string())
}

pub fn virtio(given_url: Option<&str>) -> Item {
    Item {
        file: "virtio-win.iso",
        what: "VirtIO drivers",
        url: url(given_url, "BKT_VM_VIRTIO_URL", VIRTIO_URL),
        kind: Kind::Iso,
        min_size: 1 << 20,
    }
}

pub fn guest_tools(given_url: Option<&str>) -> Item {
    Item {
        file: "virtio-win-guest-tools.exe",
        what: "guest tools (SPICE agent, qemu-ga)",
        url: url(given_url, "BKT_VM_GUEST_TOOLS_URL", GUEST_TOOLS_URL),
        kind: Kind::Exe,
        min_size: 100 << 10,
    }
}

/// `$XDG_CACHE_HOME/bkt/vm`, else `~/.cache/bkt/vm`.
pub fn cache_dir() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .context("cannot find the cache: neither XDG_CACHE_HOME nor HOME is set")?,
        )
        .join(".cache"),
    };
    Ok(base.join("bkt").join("vm"))
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
    let mut f = File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn sum_path(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_os_string();
    s.push(".sha256");
    PathBuf::from(s)
}

/// How a download attempt ended when it did not finish.
enum Attempt {
    /// Worth another try (network trouble, a short body, a 5xx).
    Retry(String),
    /// Another try would not help.
    Fatal(anyhow::Error),
}

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

fn timeout() -> Duration {
    std::env::var("BKT_VM_DOWNLOAD_TIMEOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(30))
}

/// Retries after the first try; `BKT_VM_DOWNLOAD_RETRIES` changes it.
fn retries() -> u32 {
    std::env::var("BKT_VM_DOWNLOAD_RETRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// The cached file, or download it.
pub fn fetch(item: &Item, opts: &Options) -> Result<Fetched> {
    let dir = cache_dir()?;
    let target = dir.join(item.file);
    let expected = opts
        .expected_sha256
        .as_ref()
        .map(|s| s.to_ascii_lowercase());
    if let Some(e) = &expected
        && (e.len() != 64 || !e.chars().all(|c| c.is_ascii_hexdigit()))
    {
        bail!("--virtio-sha256 must be 64 hexadecimal digits");
    }
    if target.exists() {
        let size = check_file(&target, item.kind, item.min_size)
            .map_err(|why| anyhow!("the cached {} is damaged: {why}", item.file))
            .hint(format!(
                "delete it and download again: rm {}",
                target.display()
            ))?;
        let recorded = fs::read_to_string(sum_path(&target)).unwrap_or_default();
        let mut sum = recorded.trim().to_string();
        if sum.is_empty() || expected.as_ref().is_some_and(|e| *e != sum) {
            sum = sha256_file(&target)?;
        }
        if let Some(e) = &expected
            && *e != sum
        {
            let _ = fs::remove_file(&target);
            let _ = fs::remove_file(sum_path(&target));
            bail!(
                "the cached {} has SHA-256 {sum}, not {e}; it was deleted",
                item.file
            );
        }
        return Ok(Fetched {
            path: target,
            cached: true,
            size,
            sha256: sum,
        });
    }
    if opts.offline {
        return Err(anyhow!("--offline: no {} in the cache", item.file)).hint(format!(
            "on a connected machine download {} and place it at {}",
            item.url,
            target.display()
        ));
    }
    if !(item.url.starts_with("http://") || item.url.starts_with("https://")) {
        bail!("{} is not an http(s) URL", item.url);
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating the cache {}", dir.display()))?;
    let part = dir.join(format!("{}.part", item.file));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(timeout()))
        .timeout_recv_response(Some(timeout()))
        .timeout_per_read(Some(timeout()))
        .http_status_as_error(false)
        .build()
        .into();
    let mut last = String::new();
    let tries = retries();
    for attempt in 0..=tries {
        if attempt > 0 {
            let wait = Duration::from_secs(1 << (attempt - 1));
            eprintln!("  retrying in {}s ({last})", wait.as_secs());
            std::thread::sleep(wait);
        }
        match attempt_download(&agent, item, &part) {
            Ok(()) => {
                last.clear();
                break;
            }
            Err(Attempt::Retry(why)) => last = why,
            Err(Attempt::Fatal(e)) => return Err(e),
        }
    }
    if !last.is_empty() {
        return Err(anyhow!(
            "downloading {} failed after {} tries: {last}",
            item.url,
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
            let _ = fs::remove_file(&part);
            bail!(
                "the download from {} is not usable: {why}; it was deleted",
                item.url
            );
        }
    };
    let sum = sha256_file(&part)?;
    if let Some(e) = &expected
        && *e != sum
    {
        let _ = fs::remove_file(&part);
        bail!(
            "{} has SHA-256 {sum}, not the expected {e}; it was deleted",
            item.file
        );
    }
    fs::write(sum_path(&target), format!("{sum}\n"))?;
    fs::rename(&part, &target).with_context(|| format!("finishing {}", target.display()))?;
    Ok(Fetched {
        path: target,
        cached: false,
        size,
        sha256: sum,
    })
}

fn attempt_download(
    agent: &ureq::Agent,
    item: &Item,
    part: &Path,
) -> std::result::Result<(), Attempt> {
    let have = fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    let mut req = agent.get(&item.url);
    if have > 0 {
        req = req.header("Range", &format!("bytes={have}-"));
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(e) => return Err(Attempt::Retry(e.to_string())),
    };
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let length: Option<u64> = resp
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let append = match status {
        206 if have > 0 => true,
        200 => false,
        416 if have > 0 => {
            // Our partial file does not fit what the server has: start over.
            let _ = fs::remove_file(part);
            return Err(Attempt::Retry(
                "the server refused to resume; starting over".into(),
            ));
        }
        500..=599 => return Err(Attempt::Retry(format!("HTTP {status} from the server"))),
        _ => {
            let e: Result<()> = Err(anyhow!("{} answered HTTP {status}", item.url));
            return Err(Attempt::Fatal(
                e.hint("check the URL (--virtio-url, BKT_VM_VIRTIO_URL), or use a mirror")
                    .unwrap_err(),
            ));
        }
    };
    if ctype.starts_with("text/html") {
        let _ = fs::remove_file(part);
        return Err(Attempt::Fatal(anyhow!(
            "{} sent a web page (Content-Type: {ctype}), not the {}; nothing was saved",
            item.url,
            item.file
        )));
    }
    let mut file = match OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(part)
    {
        Ok(f) => f,
        Err(e) => {
            return Err(Attempt::Fatal(anyhow!(
                "cannot write {}: {e}",
                part.display()
            )));
        }
    };
    let start = if append { have } else { 0 };
    let total = length.map(|l| l + start);
    let bar = progress(item, total, start);
    let mut body = resp.into_body();
    let mut reader = body.as_reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut got = start;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                let _ = file.flush();
                bar.finish_and_clear();
                return Err(Attempt::Retry(format!(
                    "the transfer stopped at {}: {e}",
                    human(got)
                )));
            }
        };
        if let Err(e) = file.write_all(&buf[..n]) {
            bar.finish_and_clear();
            let full = e.raw_os_error() == Some(libc::ENOSPC);
            return Err(Attempt::Fatal(anyhow!(
                "cannot write {}: {}",
                part.display(),
                if full {
                    "the disk is full".to_string()
                } else {
                    e.to_string()
                }
            )));
        }
        got += n as u64;
        bar.set_position(got);
    }
    let _ = file.flush();
    bar.finish_and_clear();
    if let Some(t) = total
        && got < t
    {
        return Err(Attempt::Retry(format!(
            "the server closed the connection at {} of {}",
            human(got),
            human(t)
        )));
    }
    Ok(())
}

fn progress(item: &Item, total: Option<u64>, start: u64) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    let bar = if std::io::stderr().is_terminal() {
        match total {
            Some(t) => indicatif::ProgressBar::new(t),
            None => indicatif::ProgressBar::new_spinner(),
        }
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    bar.set_message(format!("downloading {}", item.file));
    bar.set_position(start);
    if bar.is_hidden() {
        eprintln!(
            "downloading {} from {}{}",
            item.file,
            item.url,
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
}
