//! What every end-to-end test uses: its own directories and manifest (`Env`),
//! which on drop removes whatever of the test's own is still there, and small
//! helpers around virsh, the guest's serial console and polling.

use std::cell::RefCell;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const URI: &str = "qemu:///system";
pub const IMAGES: &str = "/var/lib/libvirt/images";

/// The newest log of `name`'s RDP client sessions under the cache `cache`
/// (`bkt/vm/NAME-rdp-TIME-PID.log`; a path that does not exist when there
/// is none).
pub fn last_rdp_log(cache: &Path, name: &str) -> PathBuf {
    let dir = cache.join("bkt/vm");
    let prefix = format!("{name}-rdp-");
    // By when it was last written: two sessions in one second differ only
    // in their process ids, which say nothing of their order.
    let mut logs: Vec<(std::time::SystemTime, String)> = fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            Some((
                e.metadata().ok()?.modified().ok()?,
                e.file_name().into_string().ok()?,
            ))
        })
        .filter(|(_, n)| n.starts_with(&prefix) && n.ends_with(".log"))
        .collect();
    logs.sort();
    dir.join(
        logs.pop()
            .map_or_else(|| format!("{name}-rdp-none.log"), |(_, n)| n),
    )
}

/// One test's world. The libvirtd, its `default` network and the namespace
/// are shared by every test (scripts/libvirt-netns.sh made them, and tears
/// them down); everything else is the test's own: its directories, its
/// manifest, its bkt cache, and the VM names given to `Env::new`, which no
/// other test uses, so the tests can run side by side.
///
/// On drop, passed or failed, it removes what is left of the test's VMs
/// (domain, disks, NVRAM, TPM state, the files bkt keeps beside a disk) and
/// of the files given to `remove_at_end`, and forgets the storage pools of
/// its directories. A test that passed but left one of its VMs behind fails
/// here: bkt was supposed to remove it.
pub struct Env {
    test: &'static str,
    started: Instant,
    vms: Vec<String>,
    extra: RefCell<Vec<PathBuf>>,
    pub guest_dir: PathBuf,
    pub work: tempfile::TempDir,
    /// A 0700 directory like a Fedora home, holding the install media:
    /// QEMU's user cannot enter it until bkt grants it (an ACL).
    pub home: tempfile::TempDir,
    /// A directory QEMU's user can read (0755), for what the test gives
    /// QEMU itself: the tiny guest's kernel and initrd. The checkout may be
    /// inside a 0700 directory.
    pub shared: tempfile::TempDir,
}

impl Env {
    /// The world of test `test`, which makes (at most) the VMs `vms`.
    pub fn new(test: &'static str, vms: &[&str]) -> Env {
        programs_present();
        let guest_dir = PathBuf::from(std::env::var("BKT_E2E_GUEST_DIR").unwrap_or_else(|_| {
            panic!(
                "BKT_E2E_GUEST_DIR is not set: run the end-to-end tier through scripts/test-all.sh"
            )
        }));
        assert!(
            guest_dir.join("win-standin.iso").exists(),
            "no stand-in ISOs in {}: run scripts/build-test-guest.sh",
            guest_dir.display()
        );
        for vm in vms {
            assert!(!defined(vm), "{vm} exists before {test} made it");
            // Files of a run that died before its drop could remove them.
            for p in remove_vm(vm) {
                eprintln!("[{test}] removed {p}, left by an earlier run");
            }
        }
        let home = tempfile::tempdir().unwrap();
        fs::set_permissions(home.path(), fs::Permissions::from_mode(0o700)).unwrap();
        let shared = tempfile::tempdir().unwrap();
        fs::set_permissions(shared.path(), fs::Permissions::from_mode(0o755)).unwrap();
        for f in ["win-standin.iso", "virtio-standin.iso"] {
            fs::copy(guest_dir.join(f), home.path().join(f)).unwrap();
        }
        // bkt's cache in that home too, with the drivers ISO in it (creates
        // without --virtio-iso take it from there), as on a Fedora desktop.
        let cache = home.path().join(".cache/bkt/vm");
        fs::create_dir_all(&cache).unwrap();
        fs::copy(
            guest_dir.join("virtio-standin.iso"),
            cache.join("virtio-win.iso"),
        )
        .unwrap();
        // virt-install defines a pool for the directory of every ISO it is
        // given, named after the directory: `vm` for every test's cache, and
        // two virt-installs picking the same free name at once race. This
        // test's own pool for it, instead (forgotten on drop).
        let pool = format!("e2e-{test}-cache");
        ok(&virsh(&[
            "pool-define-as",
            &pool,
            "dir",
            "--target",
            cache.to_str().unwrap(),
        ]));
        ok(&virsh(&["pool-start", &pool]));
        for f in ["vmlinuz", "initrd.gz"] {
            fs::copy(guest_dir.join(f), shared.path().join(f)).unwrap();
        }
        eprintln!("[{test}] started");
        Env {
            test,
            started: Instant::now(),
            vms: vms.iter().map(|v| v.to_string()).collect(),
            extra: RefCell::new(Vec::new()),
            guest_dir,
            work: tempfile::tempdir().unwrap(),
            home,
            shared,
        }
    }

    /// A file or directory outside the test's directories that the test
    /// makes (not through bkt), removed at the end if it is still there.
    pub fn remove_at_end(&self, path: impl Into<PathBuf>) {
        self.extra.borrow_mut().push(path.into());
    }

    /// A line of progress, with the test's name: the tests run side by side.
    pub fn log(&self, what: &str) {
        eprintln!("[{}] {what}", self.test);
    }

    /// `$XDG_CACHE_HOME` of the bkt runs: inside the 0700 home.
    pub fn cache(&self) -> PathBuf {
        self.home.path().join(".cache")
    }

    /// A stand-in ISO in the 0700 home.
    pub fn media(&self, file: &str) -> PathBuf {
        self.home.path().join(file)
    }

    pub fn manifest(&self) -> PathBuf {
        self.work.path().join("vms.json")
    }

    pub fn bkt(&self, args: &[&str]) -> Output {
        self.bkt_with(&self.manifest(), args)
    }

    /// `bkt ARGS` with another manifest.
    pub fn bkt_with(&self, manifest: &Path, args: &[&str]) -> Output {
        self.bkt_env(manifest, args, &[])
    }

    /// `bkt ARGS` with another manifest and more environment.
    pub fn bkt_env(&self, manifest: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.bkt_via(&[], manifest, args, env)
    }

    /// `bkt ARGS` run by the command `wrapper` (`unshare ...`), which ends
    /// in executing its arguments.
    pub fn bkt_via(
        &self,
        wrapper: &[&str],
        manifest: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Output {
        let bkt = env!("CARGO_BIN_EXE_bkt");
        let mut argv: Vec<&str> = wrapper.to_vec();
        argv.push(bkt);
        argv.extend_from_slice(args);
        let mut cmd = Command::new(argv[0]);
        // SIGINT and SIGQUIT at their defaults, whatever this run inherited
        // (a script's background job has them ignored).
        // SAFETY: signal is async-signal-safe; the child only.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                libc::signal(libc::SIGQUIT, libc::SIG_DFL);
                Ok(())
            });
        }
        let out = cmd
            .args(&argv[1..])
            .env("XDG_CACHE_HOME", self.cache())
            // bkt's certificate pins, and the RDP clients' own store, in
            // the test's home, never root's (a test may name its own).
            .env("XDG_CONFIG_HOME", self.home.path().join(".config"))
            .envs(env.iter().copied())
            .env("BKT_VM_MANIFEST", manifest)
            .env("NO_COLOR", "1")
            .env_remove("LIBVIRT_DEFAULT_URI")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        self.log_output(&format!("bkt {}", args.join(" ")), &out);
        out
    }

    /// What a command printed, in one piece (other tests print too).
    pub fn log_output(&self, command: &str, out: &Output) {
        eprintln!(
            "[{}] $ {command}\n{}{}",
            self.test,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn manifest_names(&self) -> Vec<String> {
        match fs::read_to_string(self.manifest()) {
            Ok(t) => serde_json::from_str::<serde_json::Value>(&t).unwrap()["vms"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["name"].as_str().unwrap().to_string())
                .collect(),
            Err(_) => vec![],
        }
    }

    /// Storage pools whose directory is one of this test's (virt-install
    /// defines one for the directory of every ISO it is given).
    fn own_pools(&self) -> Vec<String> {
        let dirs = [self.home.path(), self.shared.path(), self.work.path()];
        let list = virsh(&["-q", "pool-list", "--all", "--name"]);
        String::from_utf8_lossy(&list.stdout)
            .lines()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .filter(|p| {
                let xml = String::from_utf8_lossy(&virsh(&["pool-dumpxml", p]).stdout).into_owned();
                roxmltree::Document::parse(&xml).is_ok_and(|doc| {
                    doc.descendants()
                        .find(|n| n.has_tag_name("path"))
                        .and_then(|n| n.text())
                        .is_some_and(|t| dirs.iter().any(|d| Path::new(t).starts_with(d)))
                })
            })
            .map(String::from)
            .collect()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let mut left = Vec::new();
        for vm in &self.vms {
            left.extend(remove_vm(vm));
        }
        for p in self.extra.borrow().iter() {
            if remove_path(p) {
                left.push(p.display().to_string());
            }
        }
        // Definitions only: the directories go with the TempDirs.
        for p in self.own_pools() {
            virsh(&["pool-destroy", &p]);
            if virsh(&["pool-undefine", &p]).status.success() {
                self.log(&format!("forgot the storage pool {p}"));
            } else {
                left.push(format!("storage pool {p} (cannot undefine it)"));
            }
        }
        let secs = self.started.elapsed().as_secs_f64();
        if left.is_empty() {
            // scripts/test-all.sh reads these lines for the slowest tests.
            let how = if std::thread::panicking() {
                "failed"
            } else {
                "done"
            };
            eprintln!("[{}] {how} in {secs:.0}s", self.test);
        } else {
            eprintln!(
                "[{}] found at the end (removed now): {}",
                self.test,
                left.join(", ")
            );
            if !std::thread::panicking() {
                panic!("{} passed but left behind: {}", self.test, left.join(", "));
            }
        }
    }
}

/// The programs of scripts/packages.txt that cannot be found, each with the
/// package provisioning should have installed.
pub fn missing_programs(list: &str, found: impl Fn(&str) -> bool) -> Vec<String> {
    let mut missing = Vec::new();
    for line in list.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let package = fields.next().unwrap();
        for program in fields {
            if !found(program) {
                missing.push(format!("{program} (Debian package {package})"));
            }
        }
    }
    missing
}

/// Whether `program` is an existing absolute path, or a name on PATH or in
/// the sbin directories (root's programs, as provisioning checks them).
fn findable(program: &str) -> bool {
    if program.starts_with('/') {
        return Path::new(program).exists();
    }
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin"])
        .filter(|d| !d.is_empty())
        .any(|d| {
            fs::metadata(Path::new(d).join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Before any test: every program the tier (and the project's scripts) run
/// is there, else every test fails at once naming each missing program and
/// its package, instead of "not found" deep inside one test.
fn programs_present() {
    static MISSING: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let missing = MISSING
        .get_or_init(|| missing_programs(include_str!("../../scripts/packages.txt"), findable));
    assert!(
        missing.is_empty(),
        "missing programs: {}\nscripts/provision-virt-stack.sh installs them (it reads scripts/packages.txt); run it, or scripts/test-all.sh, which does",
        missing.join(", ")
    );
}

#[test]
fn missing_programs_are_named_with_their_package() {
    let list = "# comment\nvirtinst  virt-install\nlibvirt-daemon-driver-qemu\nacl setfacl getfacl\novmf /usr/share/OVMF/x.fd\n";
    let missing = missing_programs(list, |p| p == "setfacl");
    assert_eq!(
        missing,
        [
            "virt-install (Debian package virtinst)",
            "getfacl (Debian package acl)",
            "/usr/share/OVMF/x.fd (Debian package ovmf)",
        ]
    );
}

/// Remove a file or a directory tree; whether there was one.
fn remove_path(p: &Path) -> bool {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p).is_ok(),
        Ok(_) => fs::remove_file(p).is_ok(),
        Err(_) => false,
    }
}

/// Remove what is left of VM `name`: the domain (destroyed, undefined with
/// NVRAM and TPM state, never with `--remove-all-storage`, which takes
/// ISOs along), its disk images (not its CD-ROMs), and the files bkt keeps
/// beside its disk. Returns what there was.
fn remove_vm(name: &str) -> Vec<String> {
    let mut gone = Vec::new();
    if virsh(&["domstate", name]).status.success() {
        virsh(&["destroy", name]);
        let blk = virsh(&["-q", "domblklist", name, "--details"]);
        for l in String::from_utf8_lossy(&blk.stdout).lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            if let ["file", "disk", _, path] = f[..]
                && !path.ends_with(".iso")
                && remove_path(Path::new(path))
            {
                gone.push(path.to_string());
            }
        }
        if !virsh(&[
            "undefine",
            name,
            "--nvram",
            "--tpm",
            "--snapshots-metadata",
            "--managed-save",
        ])
        .status
        .success()
        {
            virsh(&["undefine", name, "--nvram"]);
        }
        gone.insert(0, format!("domain {name}"));
    }
    let beside = |suffix: &str| PathBuf::from(IMAGES).join(format!("{name}{suffix}"));
    for p in [
        beside(".qcow2"),
        beside(".snapshots"),
        beside("-answer.iso"),
        beside("-enable-rdp.iso"),
        PathBuf::from(format!("/var/lib/libvirt/qemu/nvram/{name}_VARS.fd")),
        PathBuf::from(format!("/var/lib/libvirt/qemu/save/{name}.save")),
    ] {
        if remove_path(&p) {
            gone.push(p.display().to_string());
        }
    }
    gone
}

pub fn run(prog: &str, args: &[&str]) -> Output {
    Command::new(prog)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{prog}: {e}"))
}

pub fn virsh(args: &[&str]) -> Output {
    let mut a = vec!["-c", URI];
    a.extend_from_slice(args);
    run("virsh", &a)
}

pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "command failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A small `create --yes` under software emulation.
pub fn small_create<'a>(name: &'a str, iso: &'a str) -> Vec<&'a str> {
    let mut args = vec!["vm", "create", "--name", name, "--iso", iso];
    args.extend(emulated("1G"));
    args
}

/// `create windows` with both stand-in ISOs under software emulation
/// (the words after `vm` and any `-c URI`).
pub fn windows_create<'a>(
    name: &'a str,
    iso: &'a Path,
    virtio: &'a Path,
    memory: &'a str,
    disk_size: &'a str,
) -> Vec<&'a str> {
    let mut args = vec![
        "create",
        "windows",
        "--name",
        name,
        "--iso",
        iso.to_str().unwrap(),
        "--virtio-iso",
        virtio.to_str().unwrap(),
        "--disk-size",
        disk_size,
    ];
    args.extend(emulated(memory));
    args
}

/// One vCPU of software emulation with `memory`, and no questions.
fn emulated(memory: &str) -> [&str; 7] {
    [
        "--virt-type",
        "qemu",
        "--memory",
        memory,
        "--cpus",
        "1",
        "--yes",
    ]
}

/// Whether libvirt has a domain of that name (or UUID).
pub fn defined(name: &str) -> bool {
    virsh(&["domstate", name]).status.success()
}

pub fn domstate(name: &str) -> String {
    ok(&virsh(&["domstate", "--reason", name]))
        .trim()
        .to_string()
}

pub fn sha256(path: &Path) -> String {
    ok(&run("sha256sum", &[path.to_str().unwrap()]))
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// The level (`pass`, `warn`, `fail`) of the check labelled `label` in a
/// list of `bkt vm doctor --json`'s checks (`doc["host"]`,
/// `doc["vms"][0]["checks"]`).
pub fn check_level(checks: &serde_json::Value, label: &str) -> String {
    check(checks, label)["level"].as_str().unwrap().to_string()
}

/// The check labelled `label` in a list of doctor's checks.
pub fn check<'a>(checks: &'a serde_json::Value, label: &str) -> &'a serde_json::Value {
    checks
        .as_array()
        .unwrap_or_else(|| panic!("not a list of checks: {checks}"))
        .iter()
        .find(|c| c["label"] == label)
        .unwrap_or_else(|| panic!("no {label} check in {checks}"))
}

/// Poll `cond` every 250 ms until it holds or `limit` passes.
pub fn wait_for<T>(what: &str, limit: Duration, mut cond: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = cond() {
            eprintln!("  {what}: after {:.1}s", start.elapsed().as_secs_f64());
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

pub fn xml_doc(xml: &str) -> roxmltree::Document<'_> {
    roxmltree::Document::parse(xml).unwrap()
}

pub fn find<'a>(
    doc: &'a roxmltree::Document<'a>,
    tag: &str,
    pred: impl Fn(&roxmltree::Node) -> bool,
) -> Option<roxmltree::Node<'a, 'a>> {
    doc.descendants().find(|n| n.has_tag_name(tag) && pred(n))
}

/// The `<source file=...>` of a domain's device node.
pub fn source_file(dev: &roxmltree::Node) -> String {
    dev.children()
        .find(|c| c.has_tag_name("source"))
        .and_then(|s| s.attribute("file"))
        .unwrap()
        .to_string()
}

/// The source of a domain's drive, from `virsh domblklist`.
pub fn drive_source(name: &str, target: &str) -> String {
    ok(&virsh(&["domblklist", name]))
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 2 && f[0] == target).then(|| f[1].to_string())
        })
        .unwrap_or_default()
}

/// Copy everything the guest writes to its serial console (a pty) into a
/// buffer, from a background thread.
pub fn capture_serial(pty: &str) -> Arc<Mutex<Vec<u8>>> {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink = buf.clone();
    let mut f = fs::File::open(pty).unwrap_or_else(|e| panic!("{pty}: {e}"));
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = f.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    buf
}

/// A child process the test started (a server, an X server, bkt itself),
/// ended by its PID with SIGTERM and reaped on drop, pass or fail.
pub struct Stopped(pub std::process::Child);

impl Stopped {
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            // SIGTERM lets an X server remove its lock and socket.
            // SAFETY: signalling our own child, not yet reaped, by its PID.
            unsafe {
                libc::kill(self.0.id() as i32, libc::SIGTERM);
            }
        }
        let _ = self.0.wait();
    }
}
