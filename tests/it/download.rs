//! `bkt vm download` (and create's download) against an HTTP server on
//! 127.0.0.1 that the test starts and scripts request by request: the happy
//! path, every answer to a resume (the rest, the whole file, a part from
//! elsewhere, 416, a changed ETag, no validator), redirects, the size cap,
//! 404, a web page instead of an ISO, a slow server, two bkt at once, the
//! SHA-256 of cached and fresh files, and an interrupted download.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::harness::{Run, World, argv, has_args, interrupt};

/// One request as the server saw it.
struct Req {
    path: String,
    range: Option<usize>,
    if_range: Option<String>,
}

impl Req {
    /// `GET /virtio-win.iso range=786432 if-range="iso-1"`, as logged.
    fn log(&self) -> String {
        let mut l = format!("GET {}", self.path);
        if let Some(r) = self.range {
            l.push_str(&format!(" range={r}"));
        }
        if let Some(v) = &self.if_range {
            l.push_str(&format!(" if-range={v}"));
        }
        l
    }
}

/// How the server answers the n-th request (0-based) for one path.
type Behaviour = dyn Fn(usize, &Req, &mut TcpStream) + Send + Sync;

struct Server {
    url: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Every request so far, in order.
    fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

/// A server answering one connection at a time, in order.
fn serve(behaviour: Arc<Behaviour>) -> Server {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        let mut seen: std::collections::HashMap<String, usize> = Default::default();
        for conn in l.incoming() {
            let Ok(mut s) = conn else { break };
            let mut reader = BufReader::new(s.try_clone().unwrap());
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            let path = first.split_whitespace().nth(1).unwrap_or("/").to_string();
            let mut req = Req {
                path,
                range: None,
                if_range: None,
            };
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let (name, value) = line.split_once(':').unwrap_or((&line, ""));
                let value = value.trim();
                match name.to_ascii_lowercase().as_str() {
                    "range" => {
                        let v = value.strip_prefix("bytes=").unwrap_or(value);
                        req.range = v.trim_end_matches('-').parse().ok();
                    }
                    "if-range" => req.if_range = Some(value.to_string()),
                    _ => {}
                }
            }
            log2.lock().unwrap().push(req.log());
            let n = seen.entry(req.path.clone()).or_default();
            behaviour(*n, &req, &mut s);
            *n += 1;
        }
    });
    Server { url, log }
}

/// A 1.5 MiB "ISO": the signature where ISO 9660 has it, a pattern elsewhere.
fn iso_bytes() -> Vec<u8> {
    iso_of(3 << 19, 251)
}

/// Another release: `len` bytes of another pattern.
fn iso_of(len: u32, modulus: u32) -> Vec<u8> {
    let mut v: Vec<u8> = (0..len).map(|i: u32| (i % modulus) as u8).collect();
    v[32769..32774].copy_from_slice(b"CD001");
    v
}

fn exe_bytes() -> Vec<u8> {
    let mut v = vec![7u8; 200 << 10];
    v[0..2].copy_from_slice(b"MZ");
    v
}

fn sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

const LAST_MODIFIED: &str = "Wed, 21 Oct 2015 07:28:00 GMT";

/// A file as a server holds it: its bytes and the validators it sends.
#[derive(Clone)]
struct Release {
    body: Vec<u8>,
    etag: Option<&'static str>,
    last_modified: Option<&'static str>,
}

impl Release {
    fn tagged(body: Vec<u8>, etag: &'static str) -> Release {
        Release {
            body,
            etag: Some(etag),
            last_modified: None,
        }
    }
    fn bare(body: Vec<u8>) -> Release {
        Release {
            body,
            etag: None,
            last_modified: None,
        }
    }
    fn headers(&self) -> String {
        let mut h = String::new();
        if let Some(e) = self.etag {
            h.push_str(&format!("ETag: {e}\r\n"));
        }
        if let Some(l) = self.last_modified {
            h.push_str(&format!("Last-Modified: {l}\r\n"));
        }
        h
    }
    /// Whether an If-Range value names this release.
    fn matches(&self, v: &str) -> bool {
        Some(v) == self.etag || Some(v) == self.last_modified
    }
}

fn send(s: &mut TcpStream, status: &str, ctype: &str, body: &[u8], extra: &str) {
    let _ = write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
        body.len()
    );
    let _ = s.write_all(body);
}

/// Answer as nginx does: the rest from the Range when there is no
/// If-Range or it names this release, else the whole file.
fn serve_release(s: &mut TcpStream, f: &Release, req: &Req) {
    match req.range {
        Some(r) if req.if_range.as_deref().is_none_or(|v| f.matches(v)) => {
            partial(s, f, r);
        }
        _ => send(
            s,
            "200 OK",
            "application/octet-stream",
            &f.body,
            &f.headers(),
        ),
    }
}

/// A 206 with the bytes from `at`, saying so, whatever was asked.
fn partial(s: &mut TcpStream, f: &Release, at: usize) {
    let b = &f.body;
    send(
        s,
        "206 Partial Content",
        "application/octet-stream",
        &b[at..],
        &format!(
            "Content-Range: bytes {at}-{}/{}\r\n{}",
            b.len() - 1,
            b.len(),
            f.headers()
        ),
    );
}

/// Promise the whole release, send its first `n` bytes, hang up.
fn cut(s: &mut TcpStream, f: &Release, n: usize) {
    let _ = write!(
        s,
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
        f.body.len(),
        f.headers()
    );
    let _ = s.write_all(&f.body[..n]);
}

/// The tools served whole, every request for the ISO to `iso`.
fn iso_server(iso: impl Fn(usize, &Req, &mut TcpStream) + Send + Sync + 'static) -> Server {
    let exe = Release::tagged(exe_bytes(), "\"exe-1\"");
    serve(Arc::new(move |n, req: &Req, s: &mut TcpStream| {
        if req.path.ends_with(".exe") {
            serve_release(s, &exe, req);
        } else {
            iso(n, req, s);
        }
    }))
}

/// Serves the ISO and the tools by path, honouring Range and If-Range.
fn files() -> Server {
    let iso = Release::tagged(iso_bytes(), "\"iso-1\"");
    iso_server(move |_, req, s| serve_release(s, &iso, req))
}

fn world(server: &Server) -> World {
    let w = World::new()
        .env(
            "BKT_VM_VIRTIO_URL",
            &format!("{}/virtio-win.iso", server.url),
        )
        .env(
            "BKT_VM_GUEST_TOOLS_URL",
            &format!("{}/tools.exe", server.url),
        )
        // Far above what a loaded machine takes to answer from this
        // process: a test that needs a timeout sets a short one itself.
        .env("BKT_VM_DOWNLOAD_TIMEOUT", "60")
        .env("BKT_VM_DOWNLOAD_RETRIES", "1");
    // Start from an empty cache.
    std::fs::remove_file(w.path("home/.cache/bkt/vm/virtio-win.iso")).unwrap();
    std::fs::remove_file(w.path("home/.cache/bkt/vm/virtio-win.iso.sha256")).unwrap();
    w
}

fn cache(w: &World, f: &str) -> PathBuf {
    w.path(&format!("home/.cache/bkt/vm/{f}"))
}

/// The size of the `.part` (it must be there).
fn part_len(w: &World) -> u64 {
    std::fs::metadata(cache(w, "virtio-win.iso.part"))
        .unwrap()
        .len()
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A screen with the machine's parts named: `$URL` for the server,
/// `$CACHE` for the cache, `TIME` for a moved-aside file's time, `…` for
/// the transport's own words after "stopped at SIZE: ".
fn screen(w: &World, server: &Server, text: &str) -> String {
    let t = text
        .replace(&server.url, "$URL")
        .replace(&cache(w, "").display().to_string(), "$CACHE/");
    let t = regex::Regex::new(r"mismatch-\d+")
        .unwrap()
        .replace_all(&t, "mismatch-TIME");
    regex::Regex::new(r"(stopped at [^:]+): [^)\n]*")
        .unwrap()
        .replace_all(&t, "$1: …")
        .into_owned()
}

fn stderr(w: &World, server: &Server, r: &Run) -> String {
    screen(w, server, &r.stderr())
}

/// The first run: the ISO cut at `n` bytes, no retry; the `.part` kept.
fn after_a_cut(server: &Server, n: usize) -> World {
    let w = world(server).env("BKT_VM_DOWNLOAD_RETRIES", "0");
    w.bkt(&["vm", "download"]).failure();
    assert_eq!(part_len(&w), n as u64);
    assert!(!cache(&w, "virtio-win.iso").exists());
    w
}

const TOOLS_LINE: &str = "downloading virtio-win-guest-tools.exe from $URL/tools.exe\n";

#[test]
fn downloads_both_then_reuses_the_cache() {
    let server = files();
    let w = world(&server);
    let r = w.bkt(&["vm", "download"]);
    r.success();
    assert_eq!(read(&cache(&w, "virtio-win.iso")), iso_bytes());
    assert_eq!(read(&cache(&w, "virtio-win-guest-tools.exe")), exe_bytes());
    let sum = sha256(&iso_bytes());
    // What `download` shows, `cached` or not.
    let shown = |cached: &str| {
        format!(
            "  ✓ virtio ISO     $CACHE/virtio-win.iso (1.5 MiB, sha256 {}…{cached})\n  ✓ guest tools    $CACHE/virtio-win-guest-tools.exe (200 KiB, sha256 {}…{cached})\n",
            &sum[..16],
            &sha256(&exe_bytes())[..16]
        )
    };
    assert_eq!(screen(&w, &server, &r.stdout()), shown(""));
    assert_eq!(
        stderr(&w, &server, &r),
        format!("downloading virtio-win.iso from $URL/virtio-win.iso\n{TOOLS_LINE}")
    );
    assert_eq!(server.requests(), ["GET /virtio-win.iso", "GET /tools.exe"]);
    for left in ["virtio-win.iso.part", "virtio-win.iso.part.resume"] {
        assert!(!cache(&w, left).exists(), "{left}");
    }
    let record = std::fs::read_to_string(cache(&w, "virtio-win.iso.sha256")).unwrap();
    assert!(
        record.starts_with(&format!("{sum} size=1572864 mtime=")),
        "{record}"
    );
    // Again: no request at all.
    let r = w.bkt(&["vm", "download"]);
    r.success();
    assert_eq!(screen(&w, &server, &r.stdout()), shown(", cached"));
    assert_eq!(r.stderr(), "");
    assert_eq!(server.requests().len(), 2);

    // create uses the cached ISO as its second CD-ROM.
    w.libvirt_up().domains(&[]).creation_works(80 << 30);
    let iso = w.iso("Win11.iso");
    let r = w.bkt(&["vm", "create", "--iso", &iso, "--yes"]);
    r.success();
    assert!(
        r.stdout()
            .contains("  ✓ virtio ISO     virtio-win.iso (ISO 9660, 1.5 MiB), cached\n"),
        "{}",
        r.stdout()
    );
    let install = w
        .calls()
        .into_iter()
        .find(|c| c.starts_with(&argv!["virt-install", "--connect"]))
        .unwrap();
    assert!(
        has_args(
            &install,
            &[
                "--disk".to_string(),
                format!(
                    "path={},device=cdrom,bus=sata,readonly=on",
                    cache(&w, "virtio-win.iso").display()
                )
            ]
        ),
        "{install:?}"
    );
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn create_downloads_what_is_missing() {
    let server = files();
    let w = world(&server);
    w.libvirt_up().domains(&[]).creation_works(80 << 30);
    let iso = w.iso("Win11.iso");
    let r = w.bkt(&["vm", "create", "--iso", &iso, "--yes"]);
    r.success();
    assert!(
        r.stdout().contains(&format!(
            "  ✓ virtio ISO     will be downloaded from {}/virtio-win.iso\n",
            server.url
        )),
        "{}",
        r.stdout()
    );
    assert_eq!(read(&cache(&w, "virtio-win.iso")), iso_bytes());
    assert_eq!(
        w.manifest()["vms"][0]["isos"][1],
        cache(&w, "virtio-win.iso").display().to_string()
    );

    // --offline with an empty cache stops in preflight.
    let w = world(&server);
    w.libvirt_up().domains(&[]);
    let r = w.bkt(&[
        "vm",
        "create",
        "--iso",
        &w.iso("Win11.iso"),
        "--yes",
        "--offline",
    ]);
    r.failure();
    assert!(
        r.stdout()
            .contains("  ✗ virtio ISO     --offline and none in the cache\n    fix: download "),
        "{}",
        r.stdout()
    );
}

#[test]
fn a_cut_download_resumes_with_range_and_if_range() {
    let iso = Release::tagged(iso_bytes(), "\"iso-1\"");
    let half = iso.body.len() / 2;
    let server = iso_server(move |n, req, s| match n {
        0 => cut(s, &iso, half),
        _ => serve_release(s, &iso, req),
    });
    let w = world(&server).env("BKT_VM_DOWNLOAD_RETRIES", "2");
    let r = w.bkt(&["vm", "download", "--offline"]);
    r.failure(); // offline: nothing cached, no network
    assert!(r.stderr().starts_with("error: getting the VirtIO drivers\ncaused by: --offline: no virtio-win.iso in the cache\nhint: on a connected machine download "), "{}", r.stderr());
    assert!(server.requests().is_empty());
    assert!(!cache(&w, "virtio-win.iso.lock").exists());

    let r = w.bkt(&["vm", "download"]);
    r.success();
    assert_eq!(read(&cache(&w, "virtio-win.iso")), iso_bytes());
    assert_eq!(
        server.requests(),
        [
            "GET /virtio-win.iso".to_string(),
            format!("GET /virtio-win.iso range={half} if-range=\"iso-1\""),
            "GET /tools.exe".into(),
        ]
    );
    assert_eq!(
        stderr(&w, &server, &r),
        format!(
            "downloading virtio-win.iso from $URL/virtio-win.iso\n  retrying in 1s (the transfer stopped at 768 KiB: …)\ndownloading virtio-win.iso from $URL/virtio-win.iso (resuming at 768 KiB)\n{TOOLS_LINE}"
        )
    );
    for left in ["virtio-win.iso.part", "virtio-win.iso.part.resume"] {
        assert!(!cache(&w, left).exists(), "{left}");
    }
}

/// The second run after [`after_a_cut`] of `release` at half, from the
/// URL path `path`, where the server answers the ISO requests that follow
/// with `answer`: checks that bkt ends with exactly the release, and gives
/// every request the server saw and the second run's stderr (without the
/// tools' line at its end).
fn resumed(
    release: Release,
    path: &str,
    answer: impl Fn(&Release, &Req, &mut TcpStream) + Send + Sync + 'static,
) -> (Vec<String>, String) {
    let half = release.body.len() / 2;
    let want = release.body.clone();
    let server = iso_server(move |n, req, s| match (n, req.path.as_str()) {
        (0, "/virtio-win.iso") => cut(s, &release, half),
        _ => answer(&release, req, s),
    });
    let w = after_a_cut(&server, half)
        .env("BKT_VM_VIRTIO_URL", &format!("{}{path}", server.url))
        .env("BKT_VM_DOWNLOAD_RETRIES", "1");
    let r = w.bkt(&["vm", "download"]);
    r.success();
    assert_eq!(read(&cache(&w, "virtio-win.iso")), want);
    let err = stderr(&w, &server, &r);
    let err = err
        .strip_suffix(TOOLS_LINE)
        .unwrap_or_else(|| panic!("{err}"));
    (server.requests(), err.to_string())
}

/// The requests of a resume at byte `at` with `if_range`, and one more for
/// the whole file when the answer was a part bkt cannot use (`again`).
fn resume_requests(at: usize, if_range: &str, again: bool) -> Vec<String> {
    let mut r = vec![
        "GET /virtio-win.iso".to_string(),
        format!("GET /virtio-win.iso range={at} if-range={if_range}"),
    ];
    if again {
        r.push("GET /virtio-win.iso".into());
    }
    r.push("GET /tools.exe".into());
    r
}

/// Half the ISO of [`iso_bytes`], where [`resumed`] cuts it.
const HALF: usize = 3 << 18;
const ISO: &str = "/virtio-win.iso";

#[test]
fn without_an_etag_last_modified_proves_the_file() {
    let iso = Release {
        last_modified: Some(LAST_MODIFIED),
        ..Release::bare(iso_bytes())
    };
    let (requests, err) = resumed(iso, ISO, |f, req, s| serve_release(s, f, req));
    assert_eq!(requests, resume_requests(HALF, LAST_MODIFIED, false));
    assert_eq!(
        err,
        "downloading virtio-win.iso from $URL/virtio-win.iso (resuming at 768 KiB)\n"
    );
}

#[test]
fn a_200_to_a_ranged_request_starts_from_zero() {
    // A server that ignores Range: the whole file again, never appended.
    let iso = Release::tagged(iso_bytes(), "\"iso-1\"");
    let (requests, err) = resumed(iso, ISO, |f, _, s| {
        send(
            s,
            "200 OK",
            "application/octet-stream",
            &f.body,
            &f.headers(),
        )
    });
    assert_eq!(requests, resume_requests(HALF, "\"iso-1\"", false));
    assert_eq!(
        err,
        "  the server sent the whole file, not the rest (it changed, or cannot resume); starting over\ndownloading virtio-win.iso from $URL/virtio-win.iso\n"
    );
}

#[test]
fn a_new_release_is_never_spliced_onto_the_old() {
    // The URL moved on to a shorter release with another ETag; the server
    // honours If-Range, so the resume of release 1 gets all of release 2.
    let one = Release::tagged(iso_of(3 << 20, 251), "\"release-1\"");
    let two = Release::tagged(iso_of(3 << 19, 241), "\"release-2\"");
    let two_bytes = two.body.clone();
    let (cut1, cut2) = (2 << 20, 1 << 20);
    let server = iso_server(move |n, req, s| match n {
        0 => cut(s, &one, cut1),
        1 => cut(s, &two, cut2),
        _ => serve_release(s, &two, req),
    });
    let w = after_a_cut(&server, cut1);
    // Release 2 replaces the part, and its ETag the record.
    let r = w.bkt(&["vm", "download"]);
    r.failure();
    assert_eq!(read(&cache(&w, "virtio-win.iso.part")), &two_bytes[..cut2]);
    assert_eq!(
        std::fs::read_to_string(cache(&w, "virtio-win.iso.part.resume")).unwrap(),
        format!(
            "url {}/virtio-win.iso\nif-range \"release-2\"\n",
            server.url
        )
    );
    w.bkt(&["vm", "download"]).success();
    assert_eq!(read(&cache(&w, "virtio-win.iso")), two_bytes);
    assert_eq!(
        server.requests(),
        [
            "GET /virtio-win.iso".to_string(),
            format!("GET /virtio-win.iso range={cut1} if-range=\"release-1\""),
            format!("GET /virtio-win.iso range={cut2} if-range=\"release-2\""),
            "GET /tools.exe".into(),
        ]
    );
}

#[test]
fn a_206_from_elsewhere_than_asked_starts_over() {
    let iso = Release::tagged(iso_bytes(), "\"iso-1\"");
    let (requests, err) = resumed(iso, ISO, |f, req, s| match req.range {
        // A server that rounds down to its 4 KiB blocks.
        Some(r) => partial(s, f, r - 4096),
        None => serve_release(s, f, req),
    });
    assert_eq!(requests, resume_requests(HALF, "\"iso-1\"", true));
    assert_eq!(
        err,
        format!(
            "  the server resumed at byte {}, not at byte {HALF}; starting over\ndownloading virtio-win.iso from $URL/virtio-win.iso\n",
            HALF - 4096
        )
    );
}

#[test]
fn a_206_with_less_than_the_rest_is_continued() {
    // A server may send a smaller part than asked; the Content-Range says
    // how big the file is, so the rest is asked for next.
    let iso = Release::tagged(iso_bytes(), "\"iso-1\"");
    let mib = 1 << 20;
    let (requests, err) = resumed(iso, ISO, move |f, req, s| match req.range {
        Some(HALF) => send(
            s,
            "206 Partial Content",
            "application/octet-stream",
            &f.body[HALF..mib],
            &format!(
                "Content-Range: bytes {HALF}-{}/{}\r\n",
                mib - 1,
                f.body.len()
            ),
        ),
        Some(r) => partial(s, f, r),
        None => serve_release(s, f, req),
    });
    assert_eq!(
        requests,
        [
            "GET /virtio-win.iso".to_string(),
            format!("GET /virtio-win.iso range={HALF} if-range=\"iso-1\""),
            format!("GET /virtio-win.iso range={mib} if-range=\"iso-1\""),
            "GET /tools.exe".into(),
        ]
    );
    assert_eq!(
        err,
        "downloading virtio-win.iso from $URL/virtio-win.iso (resuming at 768 KiB)\n  retrying in 1s (the server closed the connection at 1 MiB of 1.5 MiB)\ndownloading virtio-win.iso from $URL/virtio-win.iso (resuming at 1 MiB)\n"
    );
}

#[test]
fn the_cap_counts_the_part_already_there() {
    let iso = Release::tagged(iso_bytes(), "\"iso-1\"");
    let server = iso_server(move |n, _, s| match n {
        0 => cut(s, &iso, HALF),
        // The rest, with the whole size unknown ("/*").
        _ => send(
            s,
            "206 Partial Content",
            "application/octet-stream",
            &iso.body[HALF..],
            &format!("Content-Range: bytes {HALF}-{}/*\r\n", iso.body.len() - 1),
        ),
    });
    let w = after_a_cut(&server, HALF).env("BKT_VM_DOWNLOAD_CAP", &(1 << 20).to_string());
    let r = w.bkt(&["vm", "download"]);
    r.failure();
    assert_eq!(
        stderr(&w, &server, &r),
        "error: getting the VirtIO drivers\ncaused by: $URL/virtio-win.iso announces 1.5 MiB, more than the 1 MiB a virtio-win.iso can be; nothing was saved\nhint: check the URL (--virtio-url, BKT_VM_VIRTIO_URL), or use a mirror\n"
    );
    for gone in ["virtio-win.iso.part", "virtio-win.iso.part.resume"] {
        assert!(!cache(&w, gone).exists(), "{gone}");
    }
}

#[test]
fn a_restart_without_a_validator_forgets_the_old_one() {
    // The URL now reaches a server that sends no ETag: what it sends must
    // not be resumed later with the old release's ETag.
    let one = Release::tagged(iso_bytes(), "\"iso-1\"");
    let two = Release::bare(iso_of(3 << 19, 241));
    let two_bytes = two.body.clone();
    let server = iso_server(move |n, req, s| match n {
        0 => cut(s, &one, HALF),
        1 => cut(s, &two, 1 << 20),
        _ => serve_release(s, &two, req),
    });
    let w = after_a_cut(&server, HALF);
    w.bkt(&["vm", "download"]).failure();
    assert_eq!(
        read(&cache(&w, "virtio-win.iso.part")),
        &two_bytes[..1 << 20]
    );
    assert!(!cache(&w, "virtio-win.iso.part.resume").exists());
    w.bkt(&["vm", "download"]).success();
    assert_eq!(read(&cache(&w, "virtio-win.iso")), two_bytes);
    assert_eq!(
        server.requests(),
        [
            "GET /virtio-win.iso".to_string(),
            format!("GET /virtio-win.iso range={HALF} if-range=\"iso-1\""),
            "GET /virtio-win.iso".into(),
            "GET /tools.exe".into(),
        ]
    );
}

#[test]
fn server_errors_are_retried_ever_more_slowly() {
    let iso = Release::tagged(iso_bytes(), "\"iso-1\"");
    let server = iso_server(move |n, req, s| match n {
        0 | 1 => send(s, "503 Service Unavailable", "text/plain", b"busy", ""),
        _ => serve_release(s, &iso, req),
    });
    let w = world(&server).env("BKT_VM_DOWNLOAD_RETRIES", "2");
    let r = w.bkt(&["vm", "download"]);
    r.success();
    assert_eq!(read(&cache(&w, "virtio-win.iso")), iso_bytes());
    assert_eq!(
        stderr(&w, &server, &r),
        format!(
            "  retrying in 1s (HTTP 503 from the server)\n  retrying in 2s (HTTP 503 from the server)\ndownloading virtio-win.iso from $URL/virtio-win.iso\n{TOOLS_LINE}"
        )
    );
}

#[test]
fn a_416_starts_over() {
    let iso = Release::tagged(iso_bytes(), "\"iso-1\"");
    let (requests, err) = resumed(iso, ISO, |f, req, s| match req.range {
        Some(_) => send(
            s,
            "416 Range Not Satisfiable",
            "text/plain",
            b"",
            &format!("Content-Range: bytes */{}\r\n", f.body.len()),
        ),
        None => serve_release(s, f, req),
    });
    assert_eq!(requests, resume_requests(HALF, "\"iso-1\"", true));
    assert_eq!(
        err,
        "  the server cannot resume at 768 KiB (HTTP 416); starting over\ndownloading virtio-win.iso from $URL/virtio-win.iso\n"
    );
}

#[test]
fn without_a_validator_nothing_is_resumed() {
    let iso = Release::bare(iso_bytes());
    let (requests, err) = resumed(iso, ISO, |f, req, s| serve_release(s, f, req));
    assert_eq!(
        requests,
        [
            "GET /virtio-win.iso",
            "GET /virtio-win.iso",
            "GET /tools.exe"
        ]
    );
    assert_eq!(
        err,
        "  not resuming the partial virtio-win.iso (the server sent no ETag or Last-Modified to check it against); starting over\ndownloading virtio-win.iso from $URL/virtio-win.iso\n"
    );
}

#[test]
fn a_part_from_another_url_is_not_resumed() {
    let iso = Release::tagged(iso_bytes(), "\"iso-1\"");
    let (requests, err) = resumed(iso, "/mirror/virtio-win.iso", |f, req, s| {
        serve_release(s, f, req)
    });
    assert_eq!(
        requests,
        [
            "GET /virtio-win.iso",
            "GET /mirror/virtio-win.iso",
            "GET /tools.exe"
        ]
    );
    assert_eq!(
        err,
        "  not resuming the partial virtio-win.iso (it came from $URL/virtio-win.iso); starting over\ndownloading virtio-win.iso from $URL/mirror/virtio-win.iso\n"
    );
}

#[test]
fn redirects_are_followed_with_the_range() {
    let iso = Release::tagged(iso_bytes(), "\"iso-1\"");
    let half = iso.body.len() / 2;
    let url = Arc::new(Mutex::new(String::new()));
    let url2 = url.clone();
    let server = serve(Arc::new(move |n, req: &Req, s: &mut TcpStream| {
        let redirect = |s: &mut TcpStream, to: &str| {
            send(
                s,
                "302 Found",
                "text/plain",
                b"",
                &format!("Location: {to}\r\n"),
            )
        };
        match req.path.as_str() {
            // Absolute, then relative to the directory.
            "/latest/virtio-win.iso" => {
                redirect(s, &format!("{}/stable/v.iso", url2.lock().unwrap()))
            }
            "/stable/v.iso" => redirect(s, "0.1.266/virtio-win-0.1.266.iso"),
            "/stable/0.1.266/virtio-win-0.1.266.iso" if n == 0 => cut(s, &iso, half),
            "/tools.exe" => serve_release(s, &Release::bare(exe_bytes()), req),
            _ => serve_release(s, &iso, req),
        }
    }));
    *url.lock().unwrap() = server.url.clone();
    let w = world(&server)
        .env(
            "BKT_VM_VIRTIO_URL",
            &format!("{}/latest/virtio-win.iso", server.url),
        )
        .env("BKT_VM_DOWNLOAD_RETRIES", "0");
    w.bkt(&["vm", "download"]).failure();
    w.bkt(&["vm", "download"]).success();
    assert_eq!(read(&cache(&w, "virtio-win.iso")), iso_bytes());
    let resume = format!(" range={half} if-range=\"iso-1\"");
    assert_eq!(
        server.requests(),
        [
            "GET /latest/virtio-win.iso".to_string(),
            "GET /stable/v.iso".into(),
            "GET /stable/0.1.266/virtio-win-0.1.266.iso".into(),
            format!("GET /latest/virtio-win.iso{resume}"),
            format!("GET /stable/v.iso{resume}"),
            format!("GET /stable/0.1.266/virtio-win-0.1.266.iso{resume}"),
            "GET /tools.exe".into(),
        ]
    );
}

// https to http is refused by `redirect_target`, tested at tier 1: a test
// server cannot speak TLS that bkt trusts (its roots are built in).
#[test]
fn redirects_elsewhere_than_http_and_loops_are_refused() {
    let server = serve(Arc::new(|_, req: &Req, s: &mut TcpStream| {
        let to = match req.path.as_str() {
            "/ftp.iso" => "Location: ftp://127.0.0.1/virtio-win.iso\r\n",
            "/loop.iso" => "Location: /loop.iso\r\n",
            _ => "",
        };
        send(s, "302 Found", "text/plain", b"", to);
    }));
    let fail = |path: &str| {
        let w = world(&server).env("BKT_VM_VIRTIO_URL", &format!("{}{path}", server.url));
        let r = w.bkt(&["vm", "download"]);
        r.failure();
        assert!(!cache(&w, "virtio-win.iso.part").exists());
        stderr(&w, &server, &r)
    };
    assert_eq!(
        fail("/ftp.iso"),
        "error: getting the VirtIO drivers\ncaused by: $URL/ftp.iso redirected to ftp://127.0.0.1/virtio-win.iso, which is not an http(s) URL\nhint: use a mirror that serves the file over https (--virtio-url, BKT_VM_VIRTIO_URL)\n"
    );
    assert_eq!(server.requests(), ["GET /ftp.iso"]);
    assert_eq!(
        fail("/none.iso"),
        "error: getting the VirtIO drivers\ncaused by: $URL/none.iso answered HTTP 302 without a Location to go to\nhint: check the URL (--virtio-url, BKT_VM_VIRTIO_URL), or use a mirror\n"
    );
    assert_eq!(
        fail("/loop.iso"),
        "error: getting the VirtIO drivers\ncaused by: $URL/loop.iso redirected more than 10 times\nhint: check the URL (--virtio-url, BKT_VM_VIRTIO_URL), or use a mirror\n"
    );
    // The first request and ten redirects.
    assert_eq!(server.requests()[2..], vec!["GET /loop.iso"; 11]);
}

#[test]
fn only_http_urls_are_downloaded() {
    let server = files();
    let w = world(&server);
    let r = w.bkt(&["vm", "download", "--virtio-url", "ftp://127.0.0.1/v.iso"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: getting the VirtIO drivers\ncaused by: ftp://127.0.0.1/v.iso is not an http(s) URL\n"
    );
    assert!(!cache(&w, "virtio-win.iso.lock").exists());
    assert!(server.requests().is_empty());
    // A URL does not matter for what is already in the cache.
    w.bkt(&["vm", "download"]).success();
    w.bkt(&["vm", "download", "--virtio-url", "ftp://127.0.0.1/v.iso"])
        .success();
    assert_eq!(server.requests().len(), 2);
}

/// Headers announcing `len` bytes, a little of them, then the end.
fn announce(s: &mut TcpStream, len: u64) {
    let _ = write!(
        s,
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    );
    let _ = s.write_all(&[0u8; 1000]);
}

#[test]
fn an_announced_size_over_the_cap_is_refused_before_writing() {
    let server = serve(Arc::new(|_, req: &Req, s: &mut TcpStream| {
        match req.path.as_str() {
            "/big.iso" => announce(s, 3 << 30),
            "/edge.iso" => announce(s, 2 << 30),
            "/big.exe" => announce(s, 300 << 20),
            _ => serve_release(s, &Release::bare(iso_bytes()), req),
        }
    }));
    let run = |iso: &str, exe: &str| {
        let w = world(&server)
            .env("BKT_VM_VIRTIO_URL", &format!("{}{iso}", server.url))
            .env("BKT_VM_GUEST_TOOLS_URL", &format!("{}{exe}", server.url))
            .env("BKT_VM_DOWNLOAD_RETRIES", "0");
        let r = w.bkt(&["vm", "download"]);
        r.failure();
        let parts = ["virtio-win.iso.part", "virtio-win-guest-tools.exe.part"];
        (
            parts.map(|p| cache(&w, p).exists()),
            stderr(&w, &server, &r),
        )
    };
    assert_eq!(
        run("/big.iso", "/x.exe"),
        ([false, false], "error: getting the VirtIO drivers\ncaused by: $URL/big.iso announces 3 GiB, more than the 2 GiB a virtio-win.iso can be; nothing was saved\nhint: check the URL (--virtio-url, BKT_VM_VIRTIO_URL), or use a mirror\n".to_string())
    );
    assert_eq!(
        run("/iso", "/big.exe"),
        ([false, false], "downloading virtio-win.iso from $URL/iso\nerror: getting the guest tools (SPICE agent, qemu-ga)\ncaused by: $URL/big.exe announces 300 MiB, more than the 256 MiB a virtio-win-guest-tools.exe can be; nothing was saved\nhint: check the URL (--virtio-url, BKT_VM_VIRTIO_URL), or use a mirror\n".to_string())
    );
    // Exactly the cap is allowed (this server then hangs up early, and the
    // part is kept for a resume).
    let (parts, edge) = run("/edge.iso", "/x.exe");
    assert_eq!(parts, [true, false]);
    assert!(
        edge.starts_with("downloading virtio-win.iso from $URL/edge.iso\nerror: getting the VirtIO drivers\ncaused by: downloading $URL/edge.iso failed after 1 tries: "),
        "{edge}"
    );
}

/// The release with no Content-Length: its end is the connection's end.
fn unannounced(s: &mut TcpStream, body: &[u8]) {
    let _ = write!(
        s,
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
    );
    let _ = s.write_all(body);
}

#[test]
fn a_body_is_never_kept_past_the_cap_or_the_announced_size() {
    let iso = iso_bytes();
    let server = serve(Arc::new(move |_, req: &Req, s: &mut TcpStream| {
        match req.path.as_str() {
            "/unannounced.iso" => unannounced(s, &iso),
            "/longer.iso" => {
                // Announces the ISO, sends it and 1 MiB more.
                let mut more = iso.clone();
                more.extend(vec![9u8; 1 << 20]);
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    iso.len()
                );
                let _ = s.write_all(&more);
            }
            _ => serve_release(s, &Release::bare(exe_bytes()), req),
        }
    }));
    let w = |path: &str, cap: usize| {
        world(&server)
            .env("BKT_VM_VIRTIO_URL", &format!("{}{path}", server.url))
            .env("BKT_VM_DOWNLOAD_CAP", &cap.to_string())
    };
    let len = iso_bytes().len();
    let small = w("/unannounced.iso", len - 1);
    let r = small.bkt(&["vm", "download"]);
    r.failure();
    assert_eq!(
        stderr(&small, &server, &r),
        "downloading virtio-win.iso from $URL/unannounced.iso\nerror: getting the VirtIO drivers\ncaused by: $URL/unannounced.iso sent more than the 1.5 MiB a virtio-win.iso can be; the download was stopped and deleted\nhint: check the URL (--virtio-url, BKT_VM_VIRTIO_URL), or use a mirror\n"
    );
    assert!(!cache(&small, "virtio-win.iso.part").exists());
    assert!(!cache(&small, "virtio-win.iso").exists());
    // Exactly the cap is kept.
    let exact = w("/unannounced.iso", len);
    exact.bkt(&["vm", "download"]).success();
    assert_eq!(read(&cache(&exact, "virtio-win.iso")), iso_bytes());
    // What comes after the announced length is not read.
    let longer = w("/longer.iso", 2 << 30);
    longer.bkt(&["vm", "download"]).success();
    assert_eq!(read(&cache(&longer, "virtio-win.iso")), iso_bytes());
}

/// `bkt vm download` started, once its `.part` has `len` bytes.
fn download_until_the_part_has(w: &World, len: usize) -> std::process::Child {
    let child = w.command(&["vm", "download"]).spawn().unwrap();
    let part = cache(w, "virtio-win.iso.part");
    // Measured from the start of the wait, generous for a loaded machine.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(&part).map_or(0, |m| m.len()) < len as u64 {
        assert!(
            std::time::Instant::now() < deadline,
            "the first {len} bytes never arrived"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[test]
fn a_full_disk_removes_the_part_and_says_what_is_needed() {
    // A real ENOSPC without root: the `.part` is a link to /dev/full,
    // which bkt opens like any file. The e2e tier fills a real tmpfs.
    let server = files();
    let w = world(&server);
    let part = cache(&w, "virtio-win.iso.part");
    std::os::unix::fs::symlink("/dev/full", &part).unwrap();
    let r = w.bkt(&["vm", "download"]);
    r.failure();
    let dir = regex::escape(&cache(&w, "").display().to_string());
    let want = regex::Regex::new(&format!(
        "^downloading virtio-win.iso from {url}/virtio-win.iso\nerror: getting the VirtIO drivers\ncaused by: the disk is full: virtio-win.iso needs 0 B more in {dir}, [0-9.]+ [KMGT]iB free\nhint: make room there, or set XDG_CACHE_HOME to a disk with space, and run it again\n$",
        url = regex::escape(&server.url),
        dir = dir.trim_end_matches('/'),
    ))
    .unwrap();
    assert!(want.is_match(&r.stderr()), "{}", r.stderr());
    for gone in [
        "virtio-win.iso",
        "virtio-win.iso.part",
        "virtio-win.iso.part.resume",
    ] {
        assert!(
            std::fs::symlink_metadata(cache(&w, gone)).is_err(),
            "{gone}"
        );
    }
}

#[test]
fn two_downloads_of_one_file_take_turns() {
    let iso = Release::tagged(iso_bytes(), "\"iso-1\"");
    let half = iso.body.len() / 2;
    let (release, released) = mpsc::channel::<()>();
    let released = Mutex::new(released);
    let server = iso_server(move |n, req, s| {
        if n == 0 {
            // Half, then the rest once the test says so.
            cut(s, &iso, half);
            let _ = s.flush();
            let _ = released.lock().unwrap().recv();
            let _ = s.write_all(&iso.body[half..]);
        } else {
            serve_release(s, &iso, req);
        }
    });
    let w = world(&server);
    let first = download_until_the_part_has(&w, half);
    // Should it not wait, its request would meet a busy server and never
    // get its answer: the test would see no "waiting" line and fail.
    let mut second = w.command(&["vm", "download"]).spawn().unwrap();
    let mut err = BufReader::new(second.stderr.take().unwrap());
    let mut said = String::new();
    while !said.ends_with("waiting for another bkt download of virtio-win.iso\n") {
        assert_ne!(err.read_line(&mut said).unwrap(), 0, "{said}");
    }
    release.send(()).unwrap();
    let first = first.wait_with_output().unwrap();
    let second_out = second.wait_with_output().unwrap();
    let mut rest = String::new();
    err.read_to_string(&mut rest).unwrap();
    assert!(first.status.success(), "{first:?}");
    assert!(second_out.status.success(), "{said}{rest}");
    assert!(
        !String::from_utf8_lossy(&first.stderr)
            .contains("waiting for another bkt download of virtio-win.iso"),
        "{first:?}"
    );
    assert!(
        String::from_utf8_lossy(&second_out.stdout).contains(&format!(
            "virtio-win.iso (1.5 MiB, sha256 {}…, cached)\n",
            &sha256(&iso_bytes())[..16]
        )),
        "{second_out:?}"
    );
    assert_eq!(read(&cache(&w, "virtio-win.iso")), iso_bytes());
    assert_eq!(read(&cache(&w, "virtio-win-guest-tools.exe")), exe_bytes());
    let mut reqs = server.requests();
    reqs.sort();
    assert_eq!(reqs, ["GET /tools.exe", "GET /virtio-win.iso"]);
}

#[test]
fn not_found_and_web_pages_are_refused() {
    let server = serve(Arc::new(|_, _: &Req, s: &mut TcpStream| {
        send(s, "404 Not Found", "text/plain", b"nope", "");
    }));
    let w = world(&server);
    let r = w.bkt(&["vm", "download"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        format!(
            "error: getting the VirtIO drivers\ncaused by: {}/virtio-win.iso answered HTTP 404\nhint: check the URL (--virtio-url, BKT_VM_VIRTIO_URL), or use a mirror\n",
            server.url
        )
    );
    assert_eq!(server.requests().len(), 1, "a 404 is not retried");

    let server = serve(Arc::new(|_, _: &Req, s: &mut TcpStream| {
        send(
            s,
            "200 OK",
            "text/html; charset=utf-8",
            &b"<html>mirror down</html>".repeat(60_000),
            "",
        );
    }));
    let w = world(&server);
    let r = w.bkt(&["vm", "download"]);
    r.failure();
    assert!(r.stderr().contains("sent a web page (Content-Type: text/html; charset=utf-8), not the virtio-win.iso; nothing was saved"), "{}", r.stderr());
    assert!(!cache(&w, "virtio-win.iso").exists());
    assert!(!cache(&w, "virtio-win.iso.part").exists());

    // A server that says octet-stream but sends a page: the signature catches it.
    let server = serve(Arc::new(|_, _: &Req, s: &mut TcpStream| {
        send(
            s,
            "200 OK",
            "application/octet-stream",
            &b"<html>x</html>".repeat(100_000),
            "ETag: \"page\"\r\n",
        );
    }));
    let w = world(&server);
    let r = w.bkt(&["vm", "download"]);
    r.failure();
    assert!(r.stderr().contains("is not usable: "), "{}", r.stderr());
    assert!(
        r.stderr()
            .contains("is not an ISO 9660 image (no CD001 signature); it was deleted"),
        "{}",
        r.stderr()
    );
    for gone in [
        "virtio-win.iso",
        "virtio-win.iso.part",
        "virtio-win.iso.part.resume",
    ] {
        assert!(!cache(&w, gone).exists(), "{gone}");
    }
}

#[test]
fn a_slow_server_times_out_and_keeps_the_part() {
    let iso = iso_bytes();
    let (release, held) = holder();
    let server = serve(Arc::new(move |_, _: &Req, s: &mut TcpStream| {
        let _ = write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            iso.len()
        );
        let _ = s.write_all(&iso[..100_000]);
        let _ = s.flush();
        // Stalled until the test is done: bkt can only end by giving up.
        hold(&held);
    }));
    let w = world(&server)
        .env("BKT_VM_DOWNLOAD_RETRIES", "0")
        .env("BKT_VM_DOWNLOAD_TIMEOUT", "1");
    let r = w.bkt(&["vm", "download"]);
    drop(release);
    r.failure();
    assert!(
        r.stderr()
            .contains("failed after 1 tries: the transfer stopped at "),
        "{}",
        r.stderr()
    );
    assert!(
        r.stderr().contains("hint: run it again to resume"),
        "{}",
        r.stderr()
    );
    assert!(cache(&w, "virtio-win.iso.part").exists());
    assert!(!cache(&w, "virtio-win.iso").exists());
}

/// A server's way to stall a connection until the test lets it go: the
/// test keeps the sender (dropping it releases every held connection).
fn holder() -> (mpsc::Sender<()>, Arc<Mutex<mpsc::Receiver<()>>>) {
    let (tx, rx) = mpsc::channel();
    (tx, Arc::new(Mutex::new(rx)))
}

fn hold(held: &Mutex<mpsc::Receiver<()>>) {
    let _ = held.lock().unwrap().recv();
}

/// The one file in the cache named `virtio-win.iso.mismatch-*`.
fn moved_aside(w: &World) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(cache(w, ""))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("virtio-win.iso.mismatch-")
        })
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].clone()
}

#[test]
fn a_fresh_download_that_mismatches_is_kept_aside() {
    let server = files();
    let w = world(&server);
    let wrong = "0".repeat(64);
    let r = w.bkt(&["vm", "download", "--virtio-sha256", &wrong]);
    r.failure();
    assert_eq!(
        stderr(&w, &server, &r),
        format!(
            "downloading virtio-win.iso from $URL/virtio-win.iso\nerror: getting the VirtIO drivers\ncaused by: virtio-win.iso from $URL/virtio-win.iso has SHA-256 {}, not the expected {wrong}; it was not used and is kept as $CACHE/virtio-win.iso.mismatch-TIME\nhint: the server may have a newer release than the SHA-256 you gave: compare with the checksum it publishes, and delete $CACHE/virtio-win.iso.mismatch-TIME once you no longer need it\n",
            sha256(&iso_bytes())
        )
    );
    assert_eq!(read(&moved_aside(&w)), iso_bytes());
    for gone in [
        "virtio-win.iso",
        "virtio-win.iso.part",
        "virtio-win.iso.part.resume",
        "virtio-win.iso.sha256",
    ] {
        assert!(!cache(&w, gone).exists(), "{gone}");
    }
    let r = w.bkt(&["vm", "download", "--virtio-sha256", "xyz"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: getting the VirtIO drivers\ncaused by: --virtio-sha256 must be 64 hexadecimal digits\n"
    );
    // The right one, in capitals.
    let right = sha256(&iso_bytes()).to_ascii_uppercase();
    w.bkt(&["vm", "download", "--virtio-sha256", &right])
        .success();
    assert_eq!(read(&cache(&w, "virtio-win.iso")), iso_bytes());
}

/// Put `sum` in the place of the hash in the record, keeping its stamp.
fn forge_record(w: &World, sum: &str) {
    let p = cache(w, "virtio-win.iso.sha256");
    let record = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, format!("{sum}{}", &record[64..])).unwrap();
}

/// The `sha256 PREFIX…` the first line of `download` shows.
fn shown_sum(r: &Run) -> String {
    let out = r.stdout();
    let at = out.find("sha256 ").unwrap_or_else(|| panic!("{out}")) + 7;
    out[at..at + 16].to_string()
}

#[test]
fn with_a_sha256_the_cached_file_itself_is_hashed() {
    let server = files();
    let w = world(&server);
    w.bkt(&["vm", "download"]).success();
    let real = sha256(&iso_bytes());
    let forged = "f".repeat(64);
    // The record is a cache: for the file it was taken of, it is used...
    forge_record(&w, &forged);
    let r = w.bkt(&["vm", "download"]);
    r.success();
    assert_eq!(shown_sum(&r), &forged[..16]);
    // ...but never to check a SHA-256: the file is hashed.
    let r = w.bkt(&["vm", "download", "--virtio-sha256", &real]);
    r.success();
    assert_eq!(shown_sum(&r), &real[..16]);
    assert!(
        std::fs::read_to_string(cache(&w, "virtio-win.iso.sha256"))
            .unwrap()
            .starts_with(&format!("{real} size=")),
    );
    // A forged record that names the expected hash does not pass the file.
    forge_record(&w, &forged);
    let r = w.bkt(&["vm", "download", "--virtio-sha256", &forged]);
    r.failure();
    assert_eq!(
        stderr(&w, &server, &r),
        format!(
            "error: getting the VirtIO drivers\ncaused by: the cached virtio-win.iso has SHA-256 {real}, not {forged}; it was moved to $CACHE/virtio-win.iso.mismatch-TIME\nhint: check the SHA-256 you gave; run it again to download virtio-win.iso afresh, and delete $CACHE/virtio-win.iso.mismatch-TIME once you no longer need it\n"
        )
    );
    let aside = moved_aside(&w);
    let secs: u64 = aside
        .to_string_lossy()
        .rsplit('-')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now - secs < 60, "{secs} is not the time it was moved");
    assert_eq!(read(&aside), iso_bytes());
    assert!(!cache(&w, "virtio-win.iso").exists());
    assert!(!cache(&w, "virtio-win.iso.sha256").exists());
    assert_eq!(server.requests().len(), 2, "nothing downloaded");
    // The next run downloads it afresh.
    w.bkt(&["vm", "download"]).success();
    assert_eq!(read(&cache(&w, "virtio-win.iso")), iso_bytes());
    assert_eq!(server.requests()[2..], ["GET /virtio-win.iso".to_string()]);
}

#[test]
fn a_changed_file_is_hashed_again() {
    let server = files();
    let w = world(&server);
    w.bkt(&["vm", "download"]).success();
    let target = cache(&w, "virtio-win.iso");
    let ctime = |p: &Path| {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(p).unwrap();
        (m.ctime(), m.ctime_nsec())
    };
    // Wait for the file clock to tick past the record's, then change one
    // byte and put the mtime back: same size, same mtime.
    let probe = w.path("probe");
    while {
        std::fs::write(&probe, "").unwrap();
        ctime(&probe) == ctime(&target)
    } {}
    let mtime = std::fs::metadata(&target).unwrap().modified().unwrap();
    let mut changed = iso_bytes();
    changed[100] ^= 0xff;
    std::fs::write(&target, &changed).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&target)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let r = w.bkt(&["vm", "download", "--offline"]);
    r.success();
    let now = sha256(&changed);
    assert_eq!(shown_sum(&r), &now[..16]);
    assert!(
        std::fs::read_to_string(cache(&w, "virtio-win.iso.sha256"))
            .unwrap()
            .starts_with(&format!("{now} size=1572864 ")),
    );
}

#[test]
fn interrupted_download_leaves_a_resumable_part() {
    let iso = Release::tagged(iso_bytes(), "\"iso-1\"");
    let half = iso.body.len() / 2;
    let (release, held) = holder();
    let server = iso_server(move |n, req, s| {
        if n == 0 {
            // Half, then a stall: bkt is blocked in a read when Ctrl-C comes.
            cut(s, &iso, half);
            let _ = s.flush();
            hold(&held);
        } else {
            serve_release(s, &iso, req);
        }
    });
    let w = world(&server);
    let child = download_until_the_part_has(&w, half);
    let (code, said) = interrupt(child);
    assert_eq!(code, 130, "{said}");
    assert_eq!(
        screen(&w, &server, &said),
        "downloading virtio-win.iso from $URL/virtio-win.iso\nerror: getting the VirtIO drivers\ncaused by: downloading virtio-win.iso was interrupted; the 768 KiB received are kept in $CACHE/virtio-win.iso.part; run it again to resume from there\ncaused by: interrupted\n"
    );
    drop(release);
    assert!(
        !cache(&w, "virtio-win.iso").exists(),
        "no final file after an interruption"
    );
    assert_eq!(part_len(&w), half as u64);
    // The next run resumes from there.
    w.bkt(&["vm", "download"]).success();
    assert_eq!(read(&cache(&w, "virtio-win.iso")), iso_bytes());
    assert_eq!(
        server.requests()[1],
        format!("GET /virtio-win.iso range={half} if-range=\"iso-1\"")
    );
}

#[test]
fn interrupted_before_the_server_answers_keeps_nothing_and_ends_130() {
    // As a terminal starts bkt, and as a script's background job does
    // (SIGINT ignored): Ctrl-C stops it either way.
    for inherited_ignored in [false, true] {
        let iso = Release::tagged(iso_bytes(), "\"iso-1\"");
        let (release, held) = holder();
        let server = iso_server(move |n, req, s| {
            if n == 0 {
                // The request is in; no answer yet.
                hold(&held);
            } else {
                serve_release(s, &iso, req);
            }
        });
        let w = world(&server);
        let child = if inherited_ignored {
            w.spawn_with_sigint_ignored(&["vm", "download"])
        } else {
            w.command(&["vm", "download"]).spawn().unwrap()
        };
        crate::harness::poll_until("the request never reached the server", || {
            !server.requests().is_empty()
        });
        let (code, said) = interrupt(child);
        assert_eq!(code, 130, "ignored: {inherited_ignored}: {said}");
        assert!(
            said.ends_with("caused by: downloading virtio-win.iso was interrupted; nothing of virtio-win.iso was kept\ncaused by: interrupted\n"),
            "{said}"
        );
        drop(release);
        assert!(!cache(&w, "virtio-win.iso.part").exists());
        w.bkt(&["vm", "download"]).success();
        assert_eq!(read(&cache(&w, "virtio-win.iso")), iso_bytes());
        assert_eq!(server.requests()[1], "GET /virtio-win.iso");
    }
}

#[test]
fn interrupted_while_waiting_to_retry_ends_at_once_and_the_part_resumes() {
    let iso = Release::tagged(iso_bytes(), "\"iso-1\"");
    let half = iso.body.len() / 2;
    let (release, held) = holder();
    let server = iso_server(move |n, req, s| match n {
        // Cut short: bkt pauses, then tries again.
        0 => cut(s, &iso, half),
        // Should bkt not stop in its pause, its next try stalls here (and
        // is what gets interrupted): the log shows it.
        1 => hold(&held),
        _ => serve_release(s, &iso, req),
    });
    let w = world(&server).env("BKT_VM_DOWNLOAD_RETRIES", "3");
    let mut child = w.command(&["vm", "download"]).spawn().unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    while !said.contains("  retrying in 1s (") {
        assert_ne!(err.read_line(&mut said).unwrap(), 0, "{said}");
    }
    let (code, rest) = interrupt(child);
    let mut rest = rest;
    err.read_to_string(&mut rest).unwrap();
    assert_eq!(code, 130, "{said}{rest}");
    assert!(
        rest.ends_with(&format!(
            "caused by: downloading virtio-win.iso was interrupted; the 768 KiB received are kept in {}; run it again to resume from there\ncaused by: interrupted\n",
            cache(&w, "virtio-win.iso.part").display()
        )),
        "{said}{rest}"
    );
    drop(release);
    assert_eq!(part_len(&w), half as u64);
    w.bkt(&["vm", "download"]).success();
    assert_eq!(read(&cache(&w, "virtio-win.iso")), iso_bytes());
    let iso_requests: Vec<String> = server
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("GET /virtio-win.iso"))
        .collect();
    assert_eq!(iso_requests[0], "GET /virtio-win.iso");
    assert_eq!(
        iso_requests.last().unwrap(),
        &format!("GET /virtio-win.iso range={half} if-range=\"iso-1\"")
    );
}

/// Ctrl-C at points of the body chosen by a seed (printed, to replay a
/// failure): every time exit 130, the `.part` holds exactly what arrived,
/// and the next run resumes it into the whole file.
#[test]
fn interrupted_anywhere_in_the_body_the_part_resumes() {
    const CHUNK: usize = 48 << 10;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as usize;
    eprintln!("seed {seed}");
    let chunks = iso_bytes().len() / CHUNK;
    for round in 0..4 {
        // A small linear congruential step: 1..chunks-1 chunks arrive.
        let at =
            1 + (seed.wrapping_mul(2654435761).wrapping_add(round * 40503) >> 7) % (chunks - 1);
        let iso = Release::tagged(iso_bytes(), "\"iso-1\"");
        let (permit, permits) = holder();
        let server = iso_server(move |n, req, s| {
            if n == 0 {
                // The body a chunk per permit: the test decides how far.
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n{}\r\n",
                    iso.body.len(),
                    iso.headers()
                );
                for c in iso.body.chunks(CHUNK) {
                    if permits.lock().unwrap().recv().is_err() {
                        return;
                    }
                    let _ = s.write_all(c);
                    let _ = s.flush();
                }
            } else {
                serve_release(s, &iso, req);
            }
        });
        let w = world(&server);
        for _ in 0..at {
            permit.send(()).unwrap();
        }
        let child = download_until_the_part_has(&w, at * CHUNK);
        let (code, said) = interrupt(child);
        assert_eq!(code, 130, "seed {seed}, {at} chunks: {said}");
        drop(permit);
        assert_eq!(part_len(&w), (at * CHUNK) as u64, "seed {seed}");
        w.bkt(&["vm", "download"]).success();
        assert_eq!(
            read(&cache(&w, "virtio-win.iso")),
            iso_bytes(),
            "seed {seed}"
        );
        assert_eq!(
            server.requests()[1],
            format!(
                "GET /virtio-win.iso range={} if-range=\"iso-1\"",
                at * CHUNK
            ),
            "seed {seed}"
        );
    }
}

/// A run interrupted after the whole file arrived (while it was hashed)
/// leaves a whole `.part`: the server's 416 with its size says so, and the
/// next run finishes it without downloading it again.
#[test]
fn a_whole_part_is_finished_without_downloading_it_again() {
    let iso = Release::tagged(iso_bytes(), "\"iso-1\"");
    let len = iso.body.len();
    let server = iso_server(move |_, req, s| match req.range {
        Some(r) if r == len => send(
            s,
            "416 Range Not Satisfiable",
            "text/plain",
            b"",
            &format!("Content-Range: bytes */{len}\r\n"),
        ),
        _ => serve_release(s, &iso, req),
    });
    let w = world(&server);
    std::fs::create_dir_all(cache(&w, "")).unwrap();
    std::fs::write(cache(&w, "virtio-win.iso.part"), iso_bytes()).unwrap();
    std::fs::write(
        cache(&w, "virtio-win.iso.part.resume"),
        format!("url {}/virtio-win.iso\nif-range \"iso-1\"\n", server.url),
    )
    .unwrap();
    let r = w.bkt(&["vm", "download"]);
    r.success();
    assert_eq!(read(&cache(&w, "virtio-win.iso")), iso_bytes());
    assert_eq!(
        server.requests(),
        [
            format!("GET /virtio-win.iso range={len} if-range=\"iso-1\""),
            "GET /tools.exe".to_string()
        ]
    );
    assert!(!cache(&w, "virtio-win.iso.part").exists());
    assert!(!cache(&w, "virtio-win.iso.part.resume").exists());
}

/// Ctrl-C while a cached ISO is hashed (gigabytes take a while): exit 130
/// at once, and the file is neither moved aside as a mismatch nor changed.
#[test]
fn interrupted_while_hashing_leaves_the_cached_file_as_it_is() {
    let server = files();
    let w = world(&server);
    let target = cache(&w, "virtio-win.iso");
    std::fs::create_dir_all(cache(&w, "")).unwrap();
    // 1 GiB, sparse: long to hash, nothing on the disk.
    let f = std::fs::File::create(&target).unwrap();
    f.set_len(1 << 30).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"CD001", 32769).unwrap();
    drop(f);
    let child = w
        .command(&["vm", "download", "--virtio-sha256", &"0".repeat(64)])
        .spawn()
        .unwrap();
    // Hashing has begun once bkt has read part of the file.
    let io = format!("/proc/{}/io", child.id());
    crate::harness::poll_until("bkt never began to hash the cached ISO", || {
        std::fs::read_to_string(&io)
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("rchar: ")?.parse::<u64>().ok())
            })
            .is_some_and(|read| read > 64 << 20)
    });
    let (code, said) = interrupt(child);
    assert_eq!(code, 130, "{said}");
    assert_eq!(
        screen(&w, &server, &said),
        "error: getting the VirtIO drivers\ncaused by: checking $CACHE/virtio-win.iso was interrupted; the file was left as it is\ncaused by: interrupted\n"
    );
    assert_eq!(std::fs::metadata(&target).unwrap().len(), 1 << 30);
    assert!(!cache(&w, "virtio-win.iso.sha256").exists());
    assert!(
        std::fs::read_dir(cache(&w, ""))
            .unwrap()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().contains("mismatch")),
        "moved aside"
    );
    assert!(server.requests().is_empty());
}
