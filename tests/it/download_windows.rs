//! `bkt vm download --windows` and `--iso-url` against
//! scripts/ms-standin.py: a local HTTPS stand-in for Microsoft's download
//! service that answers as the public clients specify it (never recorded:
//! nothing here has met Microsoft), its certificate from a test CA that
//! bkt is given through BKT_VM_CA_FILE, checks on.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use sha2::{Digest, Sha256};

use crate::harness::{World, interrupt, poll_until};

/// The ISO the stand-in serves: 2 MiB, the ISO 9660 signature in place.
fn iso_bytes() -> Vec<u8> {
    let mut v: Vec<u8> = (0..2u32 << 20).map(|i| (i % 251) as u8).collect();
    v[32769..32774].copy_from_slice(b"CD001");
    v
}

fn sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

const ISO: &str = "Win11_25H2_English_x64.iso";

/// The stand-in, running until dropped.
struct Standin {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Standin {
    fn start(scenario: &str) -> Standin {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("w.iso"), iso_bytes()).unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let child = Command::new("python3")
            .arg(root.join("scripts/ms-standin.py"))
            .arg("--fixtures")
            .arg(root.join("fixtures/microsoft"))
            .args(["--iso", &p(d, "w.iso"), "--tls-dir", &p(d, "")])
            .args(["--port-file", &p(d, "port"), "--log", &p(d, "log")])
            .args(["--scenario", scenario])
            .stdin(Stdio::null())
            .spawn()
            .expect("python3 (scripts/packages.txt)");
        let port_file = d.join("port");
        poll_until("the stand-in never wrote its port", || port_file.exists());
        let port = std::fs::read_to_string(&port_file)
            .unwrap()
            .parse()
            .unwrap();
        Standin { child, dir, port }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// A World whose bkt asks this stand-in, with its CA.
    fn world(&self) -> World {
        World::new()
            .env("BKT_VM_CA_FILE", &p(self.dir.path(), "ca.pem"))
            .env("BKT_VM_MS_WWW_URL", &format!("{}/www", self.url()))
            .env("BKT_VM_MS_VLSCPPE_URL", &format!("{}/vlscppe", self.url()))
            .env("BKT_VM_MS_OVDF_URL", &format!("{}/ovdf", self.url()))
            .env("BKT_VM_DOWNLOAD_TIMEOUT", "60")
            .env("BKT_VM_DOWNLOAD_RETRIES", "1")
    }

    /// The requests so far, the session id and the challenge's time as
    /// `SID` and `MS`.
    fn requests(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
        session_and_time(&log).lines().map(str::to_string).collect()
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        // Our own child, by its PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn p(d: &Path, f: &str) -> String {
    d.join(f).display().to_string()
}

fn cache(w: &World, f: &str) -> PathBuf {
    w.path(&format!("home/.cache/bkt/vm/{f}"))
}

/// Text with the machine's parts named: `$MS` for the stand-in, `$CACHE`,
/// `TIME` for a moved-aside file's time, `…` for the transport's own words
/// after "stopped at SIZE: ".
fn screen(w: &World, s: &Standin, text: &str) -> String {
    let dir = cache(w, "").display().to_string();
    let t = text
        .replace(&s.url(), "$MS")
        .replace(&dir, "$CACHE/")
        .replace(dir.trim_end_matches('/'), "$CACHE");
    let t = regex::Regex::new(r"mismatch-\d+")
        .unwrap()
        .replace_all(&t, "mismatch-TIME");
    regex::Regex::new(r"(stopped at [^:]+): [^)\n]*")
        .unwrap()
        .replace_all(&t, "$1: …")
        .into_owned()
}

/// bkt's session id as `SID`, the challenge's time as `MS`.
fn session_and_time(text: &str) -> String {
    let sid = regex::Regex::new(r"(session_id=|sessionID=)[0-9a-f-]{36}").unwrap();
    let t = sid.replace_all(text, "${1}SID");
    regex::Regex::new(r"mdt=\d+")
        .unwrap()
        .replace_all(&t, "mdt=MS")
        .into_owned()
}

const STEPS_1_TO_4: [&str; 5] = [
    "GET /www/en-us/software-download/windows11",
    "GET /vlscppe/tags?org_id=y6jn8c31&session_id=SID",
    "GET /ovdf/mdt.js?instanceId=560dc9f3-1aa5-4a2f-b63c-9e18f8d0e175&PageId=si&session_id=SID",
    "GET /ovdf/?session_id=SID&CustomerId=560dc9f3-1aa5-4a2f-b63c-9e18f8d0e175&PageId=si&w=3F9A1C0B7E&mdt=MS&rticks=638901234567890123",
    "GET /www/software-download-connector/api/getskuinformationbyproductedition?profile=606624d44113&productEditionId=3321&SKU=undefined&friendlyFileName=undefined&Locale=en-US&sessionID=SID",
];
const STEP_5: &str = "GET /www/software-download-connector/api/GetProductDownloadLinksBySku?profile=606624d44113&productEditionId=undefined&SKU=19061&friendlyFileName=undefined&Locale=en-US&sessionID=SID referer=https://www.microsoft.com/software-download/windows11";

fn iso_request(token: u32, range: Option<(usize, &str)>) -> String {
    let mut l =
        format!("GET /dbazure/{ISO}?t=tok{token}&P1=1765152000&P2=601&P3=2&P4=c2lnbmF0dXJl");
    if let Some((at, v)) = range {
        l.push_str(&format!(" range=bytes={at}- if-range={v}"));
    }
    l
}

fn flow(isos: &[String]) -> Vec<String> {
    let mut v: Vec<String> = STEPS_1_TO_4.iter().map(|s| s.to_string()).collect();
    v.push(STEP_5.into());
    v.extend(isos.iter().cloned());
    v
}

fn etag() -> String {
    format!("\"iso-{}\"", &sha256(&iso_bytes())[..12])
}

/// The next `download --windows` completes the file from the 1 MiB kept
/// in its `.part`: a new session's link, asked for the rest by the ETag.
fn the_next_run_resumes_from_the_first_mib(w: &World, s: &Standin) {
    w.bkt(&["vm", "download", "--windows"]).success();
    assert_eq!(std::fs::read(cache(w, ISO)).unwrap(), iso_bytes());
    assert_eq!(
        s.requests().last().unwrap(),
        &iso_request(2, Some((1 << 20, &etag())))
    );
}

/// The `.part` of the ISO in the cache.
fn part(w: &World) -> PathBuf {
    cache(w, &format!("{ISO}.part"))
}

fn happy_screen(sum: &str, extra: &str) -> String {
    format!(
        "Windows 11 from Microsoft\n  ✓ edition        product edition 3321\n  ✓ language       English (United States) (SKU 19061)\n  ✓ SHA-256        {}… (published on Microsoft's page)\n  ✓ Windows ISO    $CACHE/{ISO} (2 MiB, sha256 {}…, matches Microsoft's SHA-256{extra})\nNext: bkt vm create windows --iso $CACHE/{ISO}\n",
        &sum[..16],
        &sum[..16]
    )
}

#[test]
fn downloads_the_iso_microsoft_publishes_then_reuses_it() {
    let s = Standin::start("ok");
    let w = s.world();
    let r = w.bkt(&["vm", "download", "--windows"]);
    r.success();
    let sum = sha256(&iso_bytes());
    assert_eq!(screen(&w, &s, &r.stdout()), happy_screen(&sum, ""));
    assert_eq!(
        screen(&w, &s, &r.stderr()),
        format!("downloading {ISO} from $MS/dbazure/{ISO}?…\n")
    );
    assert_eq!(std::fs::read(cache(&w, ISO)).unwrap(), iso_bytes());
    assert_eq!(s.requests(), flow(&[iso_request(1, None)]));
    // Again: the flow tells the file's name, the cache has it.
    let r = w.bkt(&["vm", "download", "--windows"]);
    r.success();
    assert_eq!(screen(&w, &s, &r.stdout()), happy_screen(&sum, ", cached"));
    assert_eq!(r.stderr(), "");
    assert_eq!(s.requests().len(), 13);
}

#[test]
fn verbose_shows_each_request_but_never_the_links_token() {
    let s = Standin::start("ok");
    let w = s.world();
    let r = w.bkt(&["vm", "-v", "download", "--windows"]);
    r.success();
    let err = session_and_time(&screen(&w, &s, &r.stderr()));
    let mut want: Vec<String> = STEPS_1_TO_4
        .iter()
        .map(|l| l.replacen("GET /", "+ GET $MS/", 1))
        .collect();
    want.push(STEP_5.replacen("GET /", "+ GET $MS/", 1).replace(
        " referer=https://www.microsoft.com/software-download/windows11",
        "",
    ));
    want.push(format!("+ GET $MS/dbazure/{ISO}?…"));
    want.push(format!("downloading {ISO} from $MS/dbazure/{ISO}?…"));
    assert_eq!(err.lines().collect::<Vec<_>>(), want);
    assert!(!r.stderr().contains("tok1"), "the link's token was shown");
}

#[test]
fn lang_list_shows_microsofts_languages() {
    let s = Standin::start("ok");
    let w = s.world();
    let r = w.bkt(&["vm", "download", "--windows", "--lang", "list"]);
    r.success();
    assert_eq!(
        r.stdout(),
        "Windows 11 from Microsoft\n  ✓ edition        product edition 3321\nLanguages of the Windows 11 ISO (product edition 3321):\n  English (United States)\n  English International\n  German                     Deutsch\n"
    );
    let r = w.bkt(&["vm", "download", "--windows", "--lang", "Klingon"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: Microsoft offers no Windows 11 ISO in \"Klingon\"\nhint: see the languages with: bkt vm download --windows --lang list\n"
    );
}

#[test]
fn a_refusal_says_why_and_the_ways_out() {
    let s = Standin::start("refuse");
    let w = s.world();
    let r = w.bkt(&["vm", "download", "--windows"]);
    r.failure();
    assert_eq!(
        r.stdout(),
        "Windows 11 from Microsoft\n  ✓ edition        product edition 3321\n  ✓ language       English (United States) (SKU 19061)\n"
    );
    assert_eq!(
        r.stderr(),
        "error: Microsoft refused to hand out the Windows 11 ISO to this address (step 5/5, the download link (GetProductDownloadLinksBySku): ErrorSettings.SentinelReject (Type 9): Sentinel marked this request as rejected.)\nhint: Microsoft blocks some addresses for a while (VPNs, data centres, many downloads); a browser on this network is refused too. Try again later or from another network, or download the ISO in a browser from https://www.microsoft.com/software-download/windows11 and then run: bkt vm create NAME --iso PATH\n"
    );
    assert!(!cache(&w, ISO).exists());
    assert_eq!(s.requests(), flow(&[]));
}

#[test]
fn a_changed_challenge_names_the_step() {
    let s = Standin::start("changed");
    let w = s.world();
    let r = w.bkt(&["vm", "download", "--windows"]);
    r.failure();
    assert_eq!(r.stdout(), "Windows 11 from Microsoft\n");
    assert_eq!(
        r.stderr(),
        "error: Microsoft's answer at step 3/5, the ov-df challenge is not what bkt expects: mdt.js has no `w=` challenge (regex [?&]w=([A-F0-9]+)); Microsoft may have changed its page or API\nhint: try again later; if it persists, download the ISO in a browser from https://www.microsoft.com/software-download/windows11 and run: bkt vm create NAME --iso PATH (or use --iso-url with a mirror)\n"
    );
    assert_eq!(s.requests(), STEPS_1_TO_4[..3].to_vec());
}

#[test]
fn a_page_without_the_edition_falls_back_to_3321() {
    let s = Standin::start("no-edition");
    let w = s.world();
    let r = w.bkt(&["vm", "download", "--windows"]);
    r.success();
    assert!(
        r.stdout().starts_with("Windows 11 from Microsoft\n  ⚠ edition        the page lists no Windows 11 edition; trying 3321 as other clients do\n"),
        "{}",
        r.stdout()
    );
    assert_eq!(std::fs::read(cache(&w, ISO)).unwrap(), iso_bytes());
}

#[test]
fn an_expired_link_is_renewed_and_the_part_resumed() {
    let s = Standin::start("expire:1048576");
    let w = s.world();
    let r = w.bkt(&["vm", "download", "--windows"]);
    r.success();
    assert_eq!(std::fs::read(cache(&w, ISO)).unwrap(), iso_bytes());
    let at = 1 << 20;
    assert_eq!(
        screen(&w, &s, &r.stderr()),
        format!(
            "downloading {ISO} from $MS/dbazure/{ISO}?…\n  retrying in 1s (the transfer stopped at 1 MiB: …)\n  the download link expired (HTTP 403); asking for a fresh one\ndownloading {ISO} from $MS/dbazure/{ISO}?… (resuming at 1 MiB)\n"
        )
    );
    let mut want = flow(&[iso_request(1, None), iso_request(1, Some((at, &etag())))]);
    want.push(STEP_5.into());
    want.push(iso_request(2, Some((at, &etag()))));
    assert_eq!(s.requests(), want);
}

#[test]
fn a_fresh_link_to_another_release_is_never_spliced_onto_the_part() {
    // The first link is cut at 1 MiB and expires; the fresh one serves a
    // new release (byte 0 differs, another ETag). Spliced, the file would
    // keep the old byte 0 and miss the page's SHA-256.
    let s = Standin::start("expire:1048576,new-release");
    let w = s.world();
    let r = w.bkt(&["vm", "download", "--windows"]);
    r.success();
    let mut new = iso_bytes();
    new[0] ^= 0xff;
    assert_eq!(std::fs::read(cache(&w, ISO)).unwrap(), new);
    assert_eq!(
        screen(&w, &s, &r.stderr()),
        format!(
            "downloading {ISO} from $MS/dbazure/{ISO}?…\n  retrying in 1s (the transfer stopped at 1 MiB: …)\n  the download link expired (HTTP 403); asking for a fresh one\n  the server sent the whole file, not the rest (it changed, or cannot resume); starting over\ndownloading {ISO} from $MS/dbazure/{ISO}?…\n"
        )
    );
    // The fresh link was asked for the rest of the old file, by its ETag.
    assert_eq!(
        s.requests().last().unwrap(),
        &iso_request(2, Some((1 << 20, &etag())))
    );
}

#[test]
fn a_wrong_hash_is_moved_aside_never_used() {
    let s = Standin::start("wrong-hash");
    let w = s.world();
    let r = w.bkt(&["vm", "download", "--windows"]);
    r.failure();
    let sum = sha256(&iso_bytes());
    assert_eq!(
        screen(&w, &s, &r.stderr()),
        format!(
            "downloading {ISO} from $MS/dbazure/{ISO}?…\nerror: getting the Windows 11 ISO\ncaused by: {ISO} from $MS/dbazure/{ISO}?… has SHA-256 {sum}, not the expected {zero}; it was not used and is kept as $CACHE/{ISO}.mismatch-TIME\nhint: the server may have a newer release than the SHA-256 Microsoft's page publishes: compare with the checksum it publishes, and delete $CACHE/{ISO}.mismatch-TIME once you no longer need it\n",
            zero = "0".repeat(64)
        )
    );
    assert!(!cache(&w, ISO).exists());
    let aside: Vec<_> = std::fs::read_dir(cache(&w, ""))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".mismatch-"))
        .collect();
    assert_eq!(aside.len(), 1);
    assert_eq!(std::fs::read(aside[0].path()).unwrap(), iso_bytes());
}

#[test]
fn a_short_body_is_kept_and_the_next_run_completes_it() {
    let s = Standin::start("short:1048576");
    let w = s.world().env("BKT_VM_DOWNLOAD_RETRIES", "0");
    let r = w.bkt(&["vm", "download", "--windows"]);
    r.failure();
    assert_eq!(
        screen(&w, &s, &r.stderr()),
        format!(
            "downloading {ISO} from $MS/dbazure/{ISO}?…\nerror: getting the Windows 11 ISO\ncaused by: downloading $MS/dbazure/{ISO}?… failed after 1 tries: the transfer stopped at 1 MiB: …\nhint: run it again to resume ($CACHE/{ISO}.part is kept), or use --offline with a copy placed at $CACHE/{ISO}\n"
        )
    );
    assert_eq!(std::fs::metadata(part(&w)).unwrap().len(), 1 << 20);
    // A new session, a new link: the same file by its validator.
    the_next_run_resumes_from_the_first_mib(&w, &s);
}

#[test]
fn a_web_page_answering_a_resume_keeps_the_part() {
    let s = Standin::start("short:1048576,portal");
    let w = s.world().env("BKT_VM_DOWNLOAD_RETRIES", "0");
    w.bkt(&["vm", "download", "--windows"]).failure();
    let part = part(&w);
    assert_eq!(std::fs::metadata(&part).unwrap().len(), 1 << 20);
    let r = w.bkt(&["vm", "download", "--windows"]);
    r.failure();
    assert_eq!(
        screen(&w, &s, &r.stderr()),
        format!(
            "error: getting the Windows 11 ISO\ncaused by: $MS/dbazure/{ISO}?… sent a web page (Content-Type: text/html; charset=utf-8), not the {ISO}; $CACHE/{ISO}.part is kept to resume from\nhint: a captive portal or proxy may be answering for the server: sign in or check the network, then run it again\n"
        )
    );
    assert_eq!(std::fs::metadata(&part).unwrap().len(), 1 << 20);
    assert!(cache(&w, &format!("{ISO}.part.resume")).exists());
}

#[test]
fn a_full_disk_says_so_and_keeps_nothing() {
    // A real ENOSPC without root, as tests/it/download.rs makes it.
    let s = Standin::start("ok");
    let w = s.world();
    std::fs::create_dir_all(cache(&w, "")).unwrap();
    std::os::unix::fs::symlink("/dev/full", part(&w)).unwrap();
    let r = w.bkt(&["vm", "download", "--windows"]);
    r.failure();
    let want = regex::Regex::new(&format!(
        "^downloading {iso} from \\$MS/dbazure/{iso}\\?…\nerror: getting the Windows 11 ISO\ncaused by: the disk is full: {iso} needs 0 B more in \\$CACHE, [0-9.]+ [KMGT]iB free\nhint: make room there, or set XDG_CACHE_HOME to a disk with space, and run it again\n$",
        iso = regex::escape(ISO)
    ))
    .unwrap();
    let err = screen(&w, &s, &r.stderr());
    assert!(want.is_match(&err), "{err}");
    assert!(std::fs::symlink_metadata(part(&w)).is_err());
    assert!(!cache(&w, ISO).exists());
}

#[test]
fn ctrl_c_ends_130_and_the_next_run_resumes() {
    let s = Standin::start("stall:1048576");
    let w = s.world();
    let child = w.command(&["vm", "download", "--windows"]).spawn().unwrap();
    let part = part(&w);
    poll_until("the first MiB never arrived", || {
        std::fs::metadata(&part).map_or(0, |m| m.len()) >= 1 << 20
    });
    let (code, said) = interrupt(child);
    assert_eq!(code, 130);
    assert_eq!(
        screen(&w, &s, &said),
        format!(
            "downloading {ISO} from $MS/dbazure/{ISO}?…\nerror: getting the Windows 11 ISO\ncaused by: downloading {ISO} was interrupted; the 1 MiB received are kept in $CACHE/{ISO}.part; run it again to resume from there\ncaused by: interrupted\n"
        )
    );
    the_next_run_resumes_from_the_first_mib(&w, &s);
}

#[test]
fn ctrl_c_while_microsoft_has_not_answered_ends_130_at_once() {
    let s = Standin::start("stall-page");
    let w = s.world();
    let child = w.command(&["vm", "download", "--windows"]).spawn().unwrap();
    poll_until("the page was never asked for", || !s.requests().is_empty());
    let (code, said) = interrupt(child);
    assert_eq!(code, 130);
    assert_eq!(
        said,
        "error: asking Microsoft for the Windows 11 ISO was interrupted; nothing was downloaded\ncaused by: interrupted\n"
    );
    assert!(!cache(&w, ISO).exists());
}

#[test]
fn a_mirror_with_a_hash_is_verified() {
    let s = Standin::start("ok");
    let w = s.world();
    let url = format!("{}/mirror/Win11_Company.iso", s.url());
    let sum = sha256(&iso_bytes());
    let r = w.bkt(&[
        "vm",
        "download",
        "--iso-url",
        &url,
        "--iso-sha256",
        &sum.to_uppercase(),
    ]);
    r.success();
    assert_eq!(
        screen(&w, &s, &r.stdout()),
        format!(
            "Windows 11 from a mirror\n  ✓ Windows ISO    $CACHE/Win11_Company.iso (2 MiB, sha256 {}…, matches --iso-sha256)\nNext: bkt vm create windows --iso $CACHE/Win11_Company.iso\n",
            &sum[..16]
        )
    );
    assert_eq!(
        s.requests(),
        vec!["GET /mirror/Win11_Company.iso".to_string()]
    );
    let r = w.bkt(&["vm", "download", "--iso-url", &url, "--iso-sha256", "abc"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: --iso-sha256 must be 64 hexadecimal digits\n"
    );
}

#[test]
fn a_mirror_without_a_hash_is_recorded_and_said_unvouched() {
    let s = Standin::start("ok");
    let w = s.world();
    let url = format!("{}/mirror/Win11_Company.iso", s.url());
    let r = w.bkt(&["vm", "download", "--iso-url", &url]);
    r.success();
    let sum = sha256(&iso_bytes());
    assert_eq!(
        screen(&w, &s, &r.stdout()),
        format!(
            "Windows 11 from a mirror\n  ✓ Windows ISO    $CACHE/Win11_Company.iso (2 MiB, sha256 {}…)\n  ⚠ SHA-256        nothing vouches for this file: its SHA-256 {sum} is recorded in $CACHE/Win11_Company.iso.sha256; compare it with the one its source publishes\nNext: bkt vm create windows --iso $CACHE/Win11_Company.iso\n",
            &sum[..16]
        )
    );
    let record = std::fs::read_to_string(cache(&w, "Win11_Company.iso.sha256")).unwrap();
    assert!(record.starts_with(&format!("{sum} ")), "{record}");
}

#[test]
fn a_mirrors_token_is_never_shown_nor_stored() {
    use std::os::unix::fs::PermissionsExt;
    let s = Standin::start("short:1048576");
    let w = s.world().env("BKT_VM_DOWNLOAD_RETRIES", "0");
    let url = format!("{}/mirror/Win11_Company.iso?sig=sekrit", s.url());
    let r = w.bkt(&["vm", "-v", "download", "--iso-url", &url]);
    r.failure();
    assert!(!r.stderr().contains("sekrit"), "{}", r.stderr());
    assert!(!r.stdout().contains("sekrit"), "{}", r.stdout());
    assert!(
        screen(&w, &s, &r.stderr())
            .contains("downloading $MS/mirror/Win11_Company.iso?… failed after 1 tries"),
        "{}",
        r.stderr()
    );
    let record = cache(&w, "Win11_Company.iso.part.resume");
    let text = std::fs::read_to_string(&record).unwrap();
    assert!(!text.contains("sekrit"), "{text}");
    let mode = std::fs::metadata(&record).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // The record still resumes the same mirror's file.
    w.bkt(&["vm", "download", "--iso-url", &url]).success();
    assert_eq!(
        std::fs::read(cache(&w, "Win11_Company.iso")).unwrap(),
        iso_bytes()
    );
    assert_eq!(
        s.requests().last().unwrap(),
        &format!(
            "GET /mirror/Win11_Company.iso?sig=sekrit range=bytes={}- if-range={}",
            1 << 20,
            etag()
        )
    );
}

#[test]
fn a_cached_iso_without_a_hash_is_not_said_to_come_from_microsoft() {
    let s = Standin::start("no-hash");
    let w = s.world();
    // Microsoft's own, fetched now: HTTPS from Microsoft is what vouches.
    let r = w.bkt(&["vm", "download", "--windows"]);
    r.success();
    assert!(
        r.stdout().contains("from Microsoft over HTTPS)"),
        "{}",
        r.stdout()
    );
    // The same name from a mirror, then cached: it may be anything.
    std::fs::remove_file(cache(&w, ISO)).unwrap();
    std::fs::remove_file(cache(&w, &format!("{ISO}.sha256"))).unwrap();
    let url = format!("{}/mirror/{ISO}", s.url());
    w.bkt(&["vm", "download", "--iso-url", &url]).success();
    let r = w.bkt(&["vm", "download", "--windows"]);
    r.success();
    let out = r.stdout();
    assert!(!out.contains("from Microsoft over HTTPS"), "{out}");
    assert!(out.contains(", cached)"), "{out}");
    assert!(out.contains("nothing vouches for this file"), "{out}");
}

#[test]
fn without_the_test_ca_the_certificate_is_refused() {
    let s = Standin::start("ok");
    let w = World::new()
        .env("BKT_VM_MS_WWW_URL", &format!("{}/www", s.url()))
        .env("BKT_VM_DOWNLOAD_TIMEOUT", "60");
    let r = w.bkt(&["vm", "download", "--windows"]);
    r.failure();
    let err = screen(&w, &s, &r.stderr());
    assert!(
        err.starts_with("error: step 1/5, the download page: cannot reach $MS/www/en-us/software-download/windows11: "),
        "{err}"
    );
    assert!(err.contains("UnknownIssuer"), "{err}");
    assert!(s.requests().is_empty());
}

#[test]
fn create_yes_without_an_iso_names_the_download() {
    let w = World::new();
    w.libvirt_up().domains(&[]);
    let r = w.bkt(&["vm", "create", "--yes"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: no Windows ISO given\nhint: pass it with --iso PATH, or download Windows 11 first (about 7 GiB from Microsoft): bkt vm download --windows\n"
    );
}
