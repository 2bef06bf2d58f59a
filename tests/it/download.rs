//! `bkt vm download` (and create's download) against an HTTP server on
//! 127.0.0.1 that the test starts: the happy path, resume after a cut,
//! 404, a web page instead of an ISO, a slow server, a checksum mismatch,
//! and an interrupted download.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::World;

/// How the server answers the n-th request (0-based) for a path, given
/// its Range start.
type Behaviour = dyn Fn(usize, &str, Option<usize>, &mut TcpStream) + Send + Sync;

struct Server {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

fn serve(behaviour: Arc<Behaviour>) -> Server {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = requests.clone();
    let n = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut s) = conn else { break };
            let mut reader = BufReader::new(s.try_clone().unwrap());
            let mut head = String::new();
            let mut range = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    range = v.trim().trim_end_matches('-').parse().ok();
                }
                head.push_str(&line);
            }
            log.lock().unwrap().push(
                head.lines().next().unwrap_or("").to_string()
                    + &range.map(|r| format!(" range={r}")).unwrap_or_default(),
            );
            let i = n.fetch_add(1, Ordering::SeqCst);
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
            behaviour(i, &path, range, &mut s);
        }
    });
    Server { url, requests }
}

/// A 1.5 MiB "ISO": the signature where ISO 9660 has it, a pattern elsewhere.
fn iso_bytes() -> Vec<u8> {
    let mut v: Vec<u8> = (0..(3 << 19)).map(|i: u32| (i % 251) as u8).collect();
    v[32769..32774].copy_from_slice(b"CD001");
    v
}

fn exe_bytes() -> Vec<u8> {
    let mut v = vec![7u8; 200 << 10];
    v[0..2].copy_from_slice(b"MZ");
    v
}

fn send(s: &mut TcpStream, status: &str, ctype: &str, body: &[u8], extra: &str) {
    let _ = write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
        body.len()
    );
    let _ = s.write_all(body);
}

/// Serves the ISO and the tools by path, honouring Range.
fn files() -> Arc<Behaviour> {
    let iso = iso_bytes();
    let exe = exe_bytes();
    Arc::new(move |_, path: &str, range, s: &mut TcpStream| {
        let body: &[u8] = if path.ends_with(".exe") { &exe } else { &iso };
        ranged(s, body, range);
    })
}

fn ranged(s: &mut TcpStream, body: &[u8], range: Option<usize>) {
    match range {
        Some(r) => send(
            s,
            "206 Partial Content",
            "application/octet-stream",
            &body[r..],
            &format!(
                "Content-Range: bytes {r}-{}/{}\r\n",
                body.len() - 1,
                body.len()
            ),
        ),
        None => send(s, "200 OK", "application/octet-stream", body, ""),
    }
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
        .env("BKT_VM_DOWNLOAD_TIMEOUT", "2")
        .env("BKT_VM_DOWNLOAD_RETRIES", "1");
    // Start from an empty cache.
    std::fs::remove_file(w.path("home/.cache/bkt/vm/virtio-win.iso")).unwrap();
    std::fs::remove_file(w.path("home/.cache/bkt/vm/virtio-win.iso.sha256")).unwrap();
    w
}

fn cache(w: &World, f: &str) -> std::path::PathBuf {
    w.path(&format!("home/.cache/bkt/vm/{f}"))
}

#[test]
fn downloads_both_then_reuses_the_cache() {
    let server = serve(files());
    let w = world(&server);
    let r = w.bkt(&["vm", "download"]);
    r.success();
    assert_eq!(
        std::fs::read(cache(&w, "virtio-win.iso")).unwrap(),
        iso_bytes()
    );
    assert_eq!(
        std::fs::read(cache(&w, "virtio-win-guest-tools.exe")).unwrap(),
        exe_bytes()
    );
    assert!(
        r.stdout().starts_with("  ✓ virtio ISO     "),
        "{}",
        r.stdout()
    );
    assert!(
        r.stdout().contains("\n  ✓ guest tools    "),
        "{}",
        r.stdout()
    );
    assert!(!cache(&w, "virtio-win.iso.part").exists());
    let sum = std::fs::read_to_string(cache(&w, "virtio-win.iso.sha256")).unwrap();
    assert_eq!(sum.trim().len(), 64);
    // Again: no request at all.
    let before = server.requests.lock().unwrap().len();
    let r = w.bkt(&["vm", "download"]);
    r.success();
    assert!(r.stdout().contains(", cached)"), "{}", r.stdout());
    assert_eq!(server.requests.lock().unwrap().len(), before);

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
        .call_lines()
        .into_iter()
        .find(|c| c.starts_with("virt-install"))
        .unwrap();
    assert!(install.contains(&format!(
        "--disk path={},device=cdrom,bus=sata,readonly=on ",
        cache(&w, "virtio-win.iso").display()
    )));
    assert_eq!(server.requests.lock().unwrap().len(), before);
}

#[test]
fn create_downloads_what_is_missing() {
    let server = serve(files());
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
    assert_eq!(
        std::fs::read(cache(&w, "virtio-win.iso")).unwrap(),
        iso_bytes()
    );
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
fn a_cut_download_resumes_with_range() {
    let iso = iso_bytes();
    let exe = exe_bytes();
    let server = serve(Arc::new(
        move |i, path: &str, range, s: &mut TcpStream| match (i, range) {
            _ if path.ends_with(".exe") => ranged(s, &exe, range),
            (0, None) => {
                // Promise everything, send half, hang up.
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    iso.len()
                );
                let _ = s.write_all(&iso[..iso.len() / 2]);
            }
            (_, r) => ranged(s, &iso, r),
        },
    ));
    let w = world(&server).env("BKT_VM_DOWNLOAD_RETRIES", "2");
    let r = w.bkt(&["vm", "download", "--offline"]);
    r.failure(); // offline: nothing cached, no network
    assert!(r.stderr().starts_with("error: getting the VirtIO drivers\ncaused by: --offline: no virtio-win.iso in the cache\nhint: on a connected machine download "), "{}", r.stderr());
    assert!(server.requests.lock().unwrap().is_empty());

    let r = w.bkt(&["vm", "download"]);
    r.success();
    assert_eq!(
        std::fs::read(cache(&w, "virtio-win.iso")).unwrap(),
        iso_bytes()
    );
    let reqs = server.requests.lock().unwrap().clone();
    assert!(
        reqs[1].ends_with(&format!("range={}", iso_bytes().len() / 2)),
        "{reqs:?}"
    );
    assert!(
        r.stderr().contains("(resuming at 768 KiB)"),
        "{}",
        r.stderr()
    );
    assert!(
        r.stderr()
            .contains("  retrying in 1s (the transfer stopped at 768 KiB: "),
        "{}",
        r.stderr()
    );
}

#[test]
fn not_found_and_web_pages_are_refused() {
    let server = serve(Arc::new(|_, _, _, s: &mut TcpStream| {
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
    assert_eq!(
        server.requests.lock().unwrap().len(),
        1,
        "a 404 is not retried"
    );

    let server = serve(Arc::new(|_, _, _, s: &mut TcpStream| {
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
    let server = serve(Arc::new(|_, _, _, s: &mut TcpStream| {
        send(
            s,
            "200 OK",
            "application/octet-stream",
            &b"<html>x</html>".repeat(100_000),
            "",
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
    assert!(!cache(&w, "virtio-win.iso").exists());
}

#[test]
fn a_slow_server_times_out_and_keeps_the_part() {
    let iso = iso_bytes();
    let server = serve(Arc::new(move |_, _, _, s: &mut TcpStream| {
        let _ = write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            iso.len()
        );
        let _ = s.write_all(&iso[..100_000]);
        let _ = s.flush();
        std::thread::sleep(Duration::from_secs(6));
    }));
    let w = world(&server).env("BKT_VM_DOWNLOAD_RETRIES", "0");
    let t = std::time::Instant::now();
    let r = w.bkt(&["vm", "download"]);
    r.failure();
    assert!(
        t.elapsed() < Duration::from_secs(6),
        "gave up on the stall, did not wait it out"
    );
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

#[test]
fn checksum_mismatch_deletes_the_file() {
    let iso = iso_bytes();
    let server = serve(Arc::new(move |_, _, _, s: &mut TcpStream| {
        send(s, "200 OK", "application/octet-stream", &iso, "");
    }));
    let w = world(&server);
    let wrong = "0".repeat(64);
    let r = w.bkt(&["vm", "download", "--virtio-sha256", &wrong]);
    r.failure();
    assert!(
        r.stderr().contains("has SHA-256 ")
            && r.stderr()
                .contains(&format!("not the expected {wrong}; it was deleted")),
        "{}",
        r.stderr()
    );
    assert!(!cache(&w, "virtio-win.iso").exists());
    assert!(!cache(&w, "virtio-win.iso.part").exists());
    let r = w.bkt(&["vm", "download", "--virtio-sha256", "xyz"]);
    r.failure();
    assert!(
        r.stderr()
            .contains("--virtio-sha256 must be 64 hexadecimal digits")
    );
}

#[test]
fn interrupted_download_leaves_a_resumable_part() {
    let iso = iso_bytes();
    let half = iso.len() / 2;
    let server = serve(Arc::new(move |i, path: &str, range, s: &mut TcpStream| {
        if path.ends_with(".exe") {
            ranged(s, &exe_bytes(), range);
        } else if i == 0 {
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
                iso.len()
            );
            let _ = s.write_all(&iso[..half]);
            let _ = s.flush();
            std::thread::sleep(Duration::from_secs(10));
        } else {
            ranged(s, &iso, range);
        }
    }));
    let w = world(&server).env("BKT_VM_DOWNLOAD_TIMEOUT", "30");
    let child = w.command(&["vm", "download"]).spawn().unwrap();
    let part = cache(&w, "virtio-win.iso.part");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0) < half as u64 {
        assert!(
            std::time::Instant::now() < deadline,
            "the first half never arrived"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Ctrl-C, as a user would.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(
        !cache(&w, "virtio-win.iso").exists(),
        "no final file after an interruption"
    );
    assert_eq!(std::fs::metadata(&part).unwrap().len(), half as u64);
    // The next run resumes from there.
    w.bkt(&["vm", "download"]).success();
    assert_eq!(
        std::fs::read(cache(&w, "virtio-win.iso")).unwrap(),
        iso_bytes()
    );
    let reqs = server.requests.lock().unwrap().clone();
    assert!(reqs[1].ends_with(&format!("range={half}")), "{reqs:?}");
}
