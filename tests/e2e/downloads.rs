//! The downloader against a real HTTP server (Python's) on 127.0.0.1, and
//! into a cache on a full disk.

use std::fs;
use std::io::BufRead;
use std::process::{Command, Stdio};

use crate::harness::*;

/// A tmpfs of the test's own, unmounted on drop (pass or fail) so that its
/// directory can go.
struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        run("umount", &[self.0.to_str().unwrap()]);
    }
}

#[test]
#[ignore = "needs the real virt stack: run scripts/test-all.sh"]
fn download_verifies_and_stops_cleanly_on_a_full_disk() {
    let env = Env::new("downloads", &[]);
    let root = env.work.path().join("mirror");
    fs::create_dir_all(&root).unwrap();
    fs::copy(
        env.guest_dir.join("virtio-standin.iso"),
        root.join("virtio-win.iso"),
    )
    .unwrap();
    let mut exe = vec![0u8; 300 << 10];
    exe[..2].copy_from_slice(b"MZ");
    fs::write(root.join("tools.exe"), &exe).unwrap();
    let mut server = Stopped(
        Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1", "0"])
            .current_dir(&root)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let port = {
        let mut line = String::new();
        std::io::BufReader::new(server.0.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
        line.split_whitespace()
            .skip_while(|w| *w != "port")
            .nth(1)
            .unwrap_or_else(|| panic!("python said {line:?}"))
            .to_string()
    };
    let cache = env.work.path().join("cache");
    let out = Command::new(env!("CARGO_BIN_EXE_bkt"))
        .args([
            "vm",
            "download",
            "--virtio-url",
            &format!("http://127.0.0.1:{port}/virtio-win.iso"),
            "--guest-tools-url",
            &format!("http://127.0.0.1:{port}/tools.exe"),
            "--virtio-sha256",
            &sha256(&root.join("virtio-win.iso")),
        ])
        .env("XDG_CACHE_HOME", &cache)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    // A full disk: the cache on a 1 MiB tmpfs of our own.
    let small = env.work.path().join("small");
    fs::create_dir_all(&small).unwrap();
    ok(&run(
        "mount",
        &[
            "-t",
            "tmpfs",
            "-o",
            "size=1m",
            "tmpfs",
            small.to_str().unwrap(),
        ],
    ));
    let tmpfs = Tmpfs(small.clone());
    let full = Command::new(env!("CARGO_BIN_EXE_bkt"))
        .args([
            "vm",
            "download",
            "--virtio-url",
            &format!("http://127.0.0.1:{port}/virtio-win.iso"),
        ])
        .env("XDG_CACHE_HOME", &small)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let leftover: Vec<_> = fs::read_dir(small.join("bkt/vm"))
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    // What is free once bkt removed its part (`stat -f`: free blocks, size).
    let statfs = ok(&run(
        "stat",
        &["-f", "-c", "%a %S", small.to_str().unwrap()],
    ));
    let free: Vec<u64> = statfs
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    let free = free[0] * free[1];
    drop(tmpfs);
    let (_, full_err) = text(&full);
    env.log_output("bkt vm download (cache on a 1 MiB tmpfs)", &full);
    assert_eq!(full.status.code(), Some(1));
    let message = regex::Regex::new(&format!(
        "^downloading virtio-win.iso from .*\nerror: getting the VirtIO drivers\ncaused by: the disk is full: virtio-win.iso needs (.+) more in {}, (.+) free\nhint: make room there, or set XDG_CACHE_HOME to a disk with space, and run it again\n$",
        regex::escape(&small.join("bkt/vm").display().to_string())
    ))
    .unwrap();
    let said = message
        .captures(&full_err)
        .unwrap_or_else(|| panic!("{full_err}"));
    // The figures, to the rounding of one decimal.
    let bytes = |human: &str| {
        let (v, unit) = human.split_once(' ').unwrap();
        let scale = match unit {
            "B" => 1.0,
            "KiB" => 1024.0,
            "MiB" => 1024.0 * 1024.0,
            _ => panic!("{human}"),
        };
        v.parse::<f64>().unwrap() * scale
    };
    let size = fs::metadata(root.join("virtio-win.iso")).unwrap().len();
    for (shown, real) in [(&said[1], size - free), (&said[2], free)] {
        let shown = bytes(shown);
        assert!(
            (shown - real as f64).abs() <= real as f64 * 0.05,
            "{shown} is not {real}: {full_err}"
        );
    }
    assert_eq!(
        leftover
            .iter()
            .filter(|f| f.to_string_lossy().starts_with("virtio-win.iso"))
            .collect::<Vec<_>>(),
        ["virtio-win.iso.lock"],
        "no final file and no part on a full disk"
    );

    drop(server);
    env.log_output("bkt vm download ...", &out);
    ok(&out);
    assert_eq!(
        sha256(&cache.join("bkt/vm/virtio-win.iso")),
        sha256(&root.join("virtio-win.iso"))
    );
    assert_eq!(
        sha256(&cache.join("bkt/vm/virtio-win-guest-tools.exe")),
        sha256(&root.join("tools.exe"))
    );
}
