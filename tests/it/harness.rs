//! The fake-PATH harness: a temporary world with fake `virsh`,
//! `virt-install` and `qemu-img` (tests/fakes/fake.sh under each name), a
//! private manifest and images directory, and the built `bkt` run in it with
//! PATH replaced, not prepended, so an unfaked tool fails loudly.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

pub const URI: &str = "qemu:///system";

/// Poll `cond` until it holds, for 20 s at most (then fail with `what`).
#[track_caller]
pub fn poll_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A guest's Remote Desktop at `ip`: a listener on a port the kernel
/// picks (never a fixed 3389, which an xrdp or another test run may hold),
/// and that port, for [`World::rdp_port`]. It listens as it is made, so a
/// connect completes in the kernel, accepted or not.
pub fn rdp_listener(ip: &str) -> (std::net::TcpListener, u16) {
    let l = std::net::TcpListener::bind((ip, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

/// A port of `ip` where nothing listens, so a connect is refused: the
/// kernel picked it free, and the listener is gone (only a process taking
/// that very port in between could answer).
pub fn closed_port(ip: &str) -> u16 {
    rdp_listener(ip).1
}

pub fn fixture(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// An argv vector as [`World::calls`] gives them, one element per
/// argument (an argument holding spaces stays one element):
/// `argv!["virsh", "-c", URI, "start", name]`. `..more` splices in every
/// element of `more` (a shared prefix, a list of flags).
macro_rules! argv {
    ($($t:tt)*) => {{
        #[allow(unused_mut)]
        let mut v: Vec<String> = Vec::new();
        $crate::harness::argv_push!(v; $($t)*);
        v
    }};
}
#[doc(hidden)]
macro_rules! argv_push {
    ($v:ident;) => {};
    ($v:ident; .. $e:expr $(, $($rest:tt)*)?) => {
        $v.extend(
            ::std::iter::IntoIterator::into_iter($e)
                .map(|a| ::std::string::ToString::to_string(&a)),
        );
        $crate::harness::argv_push!($v; $($($rest)*)?);
    };
    ($v:ident; $e:expr $(, $($rest:tt)*)?) => {
        $v.extend([::std::string::ToString::to_string(&$e)]);
        $crate::harness::argv_push!($v; $($($rest)*)?);
    };
}
pub(crate) use {argv, argv_push};

/// The argv of `virsh -c URI ARGS`, as the fakes log it.
pub fn virsh_argv(args: &[&str]) -> Vec<String> {
    argv!["virsh", "-c", URI, ..args]
}

/// Whether `call` holds `args` as consecutive arguments (an option and
/// its value, say): each compared whole, never as part of a longer one.
pub fn has_args<S: AsRef<str>>(call: &[String], args: &[S]) -> bool {
    call.windows(args.len())
        .any(|w| w.iter().zip(args).all(|(a, b)| a == b.as_ref()))
}

/// Whether an argument of `call` holds `text` (is it, or has it inside: a
/// virsh batch, a shell line run over ssh): for the calls that must not
/// happen, looked for wherever they could hide.
pub fn mentions(call: &[String], text: &str) -> bool {
    call.iter().any(|a| a.contains(text))
}

pub struct World {
    pub dir: tempfile::TempDir,
    rule_no: AtomicUsize,
    extra_env: Vec<(String, String)>,
}

/// One rule: what a fake answers to a matching call.
pub struct Rule<'w> {
    world: &'w World,
    base: PathBuf,
}

impl Rule<'_> {
    pub fn out(self, text: &str) -> Self {
        // bkt connects to the addresses the fakes hand it (status probes
        // their Remote Desktop port): the network rule allows only loopback
        // from here.
        let private =
            regex::Regex::new(r"\b(10\.\d+|192\.168|172\.(1[6-9]|2\d|3[01]))\.\d+\.\d+/\d+")
                .unwrap();
        assert!(
            !private.is_match(text),
            "a fake must not hand out a private address (tests talk only to loopback): {}",
            private.find(text).unwrap().as_str()
        );
        fs::write(self.base.with_extension("out"), text).unwrap();
        self
    }
    pub fn err(self, text: &str) -> Self {
        fs::write(self.base.with_extension("err"), text).unwrap();
        self
    }
    pub fn code(self, code: i32) -> Self {
        fs::write(self.base.with_extension("code"), code.to_string()).unwrap();
        self
    }
    /// Answer as the tool did when `fixtures/STEM.txt` was recorded: that
    /// stdout, and `STEM.err` and `STEM.code` where the recording has them.
    pub fn recorded(self, stem: &str) -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let mut rule = self.out(&fixture(&format!("{stem}.txt")));
        if dir.join(format!("{stem}.err")).exists() {
            rule = rule.err(&fixture(&format!("{stem}.err")));
        }
        if dir.join(format!("{stem}.code")).exists() {
            let code = fixture(&format!("{stem}.code"));
            rule = rule.code(code.trim().parse().expect("an exit status"));
        }
        rule
    }
    pub fn times(self, n: u32) -> Self {
        fs::write(self.base.with_extension("times"), n.to_string()).unwrap();
        self
    }
    /// Shell run (sourced, with the call's "$@") before answering.
    pub fn sh(self, script: &str) -> Self {
        fs::write(self.base.with_extension("sh"), script).unwrap();
        self
    }
    pub fn world(&self) -> &World {
        self.world
    }
}

pub struct Run {
    pub out: Output,
}

impl Run {
    pub fn code(&self) -> i32 {
        self.out.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    #[track_caller]
    pub fn success(&self) -> &Self {
        assert_eq!(
            self.code(),
            0,
            "expected success ({})\n--- stdout\n{}\n--- stderr\n{}",
            self.out.status,
            self.stdout(),
            self.stderr()
        );
        self
    }
    /// stdout matches the regex (for lines holding a duration).
    #[track_caller]
    pub fn stdout_like(&self, re: &str) -> &Self {
        let out = self.stdout();
        assert!(regex::Regex::new(re).unwrap().is_match(&out), "{out}");
        self
    }
    #[track_caller]
    pub fn failure(&self) -> &Self {
        assert_eq!(
            self.code(),
            1,
            "expected exit 1 ({})\n--- stdout\n{}\n--- stderr\n{}",
            self.out.status,
            self.stdout(),
            self.stderr()
        );
        self
    }
}

impl World {
    pub fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        // Like a shared directory QEMU's user can enter; tests that need a
        // closed one (a Fedora home) close it themselves.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        for d in ["bin", "rules", "images", "home", "isos", "etc"] {
            fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        // QEMU's account as Debian makes it (the uid of capabilities.xml).
        fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\nlibvirt-qemu:x:64055:993:Libvirt Qemu,,,:/var/lib/libvirt:/usr/sbin/nologin\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("etc/group"),
            "kvm:x:993:\nlibvirt-qemu:x:64055:libvirt-qemu\n",
        )
        .unwrap();
        fs::write(dir.path().join("log"), "").unwrap();
        let w = World {
            dir,
            rule_no: AtomicUsize::new(0),
            extra_env: Vec::new(),
        };
        for tool in ["virsh", "virt-install", "qemu-img"] {
            w.install_fake(tool);
        }
        // A cached virtio-win ISO, so that create downloads nothing.
        let cache = w.path("home/.cache/bkt/vm");
        fs::create_dir_all(&cache).unwrap();
        let mut iso = vec![0u8; 1 << 20];
        iso[32769..32774].copy_from_slice(b"CD001");
        fs::write(cache.join("virtio-win.iso"), iso).unwrap();
        fs::write(
            cache.join("virtio-win.iso.sha256"),
            format!("{}\n", "ab".repeat(32)),
        )
        .unwrap();
        w
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Shell for a fake's rule that holds the call: it notes that it
    /// began, then waits (20 s at most) until [`World::release`].
    pub fn hold(&self) -> String {
        format!(
            ": >\"{began}\"\nn=0\nwhile [ $n -lt 400 ] && [ ! -e \"{go}\" ]; do /bin/sleep 0.05; n=$((n+1)); done\n",
            began = self.p("held-began"),
            go = self.p("held-go")
        )
    }

    /// Wait until a held call began (`what` names it if it never does).
    #[track_caller]
    pub fn wait_held(&self, what: &str) {
        poll_until(what, || self.path("held-began").exists());
    }

    /// Let held calls go on.
    pub fn release(&self) {
        fs::write(self.path("held-go"), "").unwrap();
    }

    pub fn p(&self, rel: &str) -> String {
        self.path(rel).display().to_string()
    }

    /// The one log of `vm`'s RDP client sessions in the cache
    /// (`VM-rdp-TIME-PID.log`): its path, and that it is the only one.
    #[track_caller]
    pub fn rdp_log(&self, vm: &str) -> String {
        let re = regex::Regex::new(&format!(
            "^{}-rdp-[0-9]{{8}}T[0-9]{{6}}Z-[0-9]+\\.log$",
            regex::escape(vm)
        ))
        .unwrap();
        let logs: Vec<String> = fs::read_dir(self.path("home/.cache/bkt/vm"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| re.is_match(n))
            .collect();
        assert_eq!(logs.len(), 1, "{logs:?}");
        self.p(&format!("home/.cache/bkt/vm/{}", logs[0]))
    }

    /// The fake under `tool`'s name: a hard link to the one executable copy
    /// of fake.sh, which is written once and never again. A copy per test
    /// raced with the other tests' forks: a child forked while a copy was
    /// open for writing holds that descriptor until it execs, and running
    /// the copy meanwhile fails with ETXTBSY ("Text file busy"). A link,
    /// not a symlink: tests that run bkt as another user reach the fake
    /// through this world's 0755 directory, never through the checkout
    /// (a 0700 home). Another file system than cargo's scratch directory
    /// gets a copy, as before.
    pub fn install_fake(&self, tool: &str) {
        let dst = self.path("bin").join(tool);
        if fs::hard_link(fake_program(), &dst).is_err() {
            fs::copy(fake_program(), &dst).unwrap();
            fs::set_permissions(&dst, fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    pub fn remove_fake(&self, tool: &str) {
        fs::remove_file(self.path("bin").join(tool)).unwrap();
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.extra_env.push((k.into(), v.into()));
        self
    }

    /// bkt finds the guests' Remote Desktop on `port` (`BKT_VM_RDP_PORT`).
    pub fn rdp_port(self, port: u16) -> Self {
        self.env("BKT_VM_RDP_PORT", &port.to_string())
    }

    /// Add a rule; earlier rules win.
    pub fn rule(&self, tool: &str, glob: &str) -> Rule<'_> {
        let n = self.rule_no.fetch_add(1, Ordering::SeqCst);
        let base = self.path("rules").join(format!("{n:04}"));
        fs::write(base.with_extension("match"), format!("{tool}\t{glob}")).unwrap();
        Rule { world: self, base }
    }

    /// Add a rule that wins over every rule added with [`World::rule`]
    /// (file names starting with `+` sort first).
    pub fn rule_first(&self, tool: &str, glob: &str) -> Rule<'_> {
        let n = self.rule_no.fetch_add(1, Ordering::SeqCst);
        let base = self.path("rules").join(format!("+{n:04}"));
        fs::write(base.with_extension("match"), format!("{tool}\t{glob}")).unwrap();
        Rule { world: self, base }
    }

    /// Every call the fakes received: the fields of each log line (argv,
    /// then `LC_ALL=...`, then `RDP_PASSWORD=set|unset`).
    fn log_lines(&self) -> Vec<Vec<String>> {
        fs::read_to_string(self.path("log"))
            .unwrap()
            .lines()
            .map(|l| l.split('\x1f').map(String::from).collect())
            .collect()
    }

    /// Every call the fakes received, as argv vectors (tool first).
    pub fn calls(&self) -> Vec<Vec<String>> {
        self.log_lines()
            .into_iter()
            .map(|mut f| {
                f.truncate(f.len() - 2); // LC_ALL and RDP_PASSWORD
                f
            })
            .collect()
    }

    /// The last call the fakes received.
    #[track_caller]
    pub fn last_call(&self) -> Vec<String> {
        self.calls().pop().expect("a call")
    }

    /// The LC_ALL every call saw.
    pub fn call_locales(&self) -> Vec<String> {
        self.log_lines()
            .into_iter()
            .map(|f| f[f.len() - 2].clone())
            .collect()
    }

    /// The calls (argv vectors) whose environment held
    /// `BKT_VM_RDP_PASSWORD`.
    pub fn calls_that_saw_the_password(&self) -> Vec<Vec<String>> {
        self.log_lines()
            .into_iter()
            .filter(|f| {
                let seen = f.last().unwrap();
                assert!(
                    seen == "RDP_PASSWORD=set" || seen == "RDP_PASSWORD=unset",
                    "{seen}"
                );
                seen == "RDP_PASSWORD=set"
            })
            .map(|f| f[..f.len() - 2].to_vec())
            .collect()
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.path("home/.config/bootc/vms.json")
    }

    pub fn manifest(&self) -> serde_json::Value {
        match fs::read_to_string(self.manifest_path()) {
            Ok(t) => serde_json::from_str(&t).unwrap(),
            Err(_) => serde_json::json!({ "vms": [] }),
        }
    }

    pub fn write_manifest(&self, v: serde_json::Value) {
        let p = self.manifest_path();
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    }

    /// A file that passes the ISO checks: a 40 KiB ISO 9660 image whose
    /// sources/install.wim is fixtures/wim/win11-24h2-x64.wim (Windows 11
    /// 24H2 x64: Home, Pro, Education).
    pub fn iso(&self, name: &str) -> String {
        let p = self.path("isos").join(name);
        fs::write(&p, stand_in_iso()).unwrap();
        p.display().to_string()
    }

    /// An ISO xorriso makes (`xorriso -as mkisofs`, ISO 9660 with Rock
    /// Ridge and Joliet) holding `files`: (path in the ISO, fixture).
    pub fn iso_holding(&self, name: &str, files: &[(&str, &str)]) -> String {
        let tree = self.path(&format!("tree-{name}"));
        for (inside, fx) in files {
            let at = tree.join(inside);
            fs::create_dir_all(at.parent().unwrap()).unwrap();
            fs::copy(fixture_path(fx), at).unwrap();
        }
        fs::create_dir_all(&tree).unwrap();
        let p = self.path("isos").join(name);
        let out = Command::new("xorriso")
            .args(["-as", "mkisofs", "-quiet", "-J", "-R", "-o"])
            .arg(&p)
            .arg(&tree)
            .output()
            .expect("xorriso (scripts/packages.txt)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        p.display().to_string()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        self.command_of(Path::new(env!("CARGO_BIN_EXE_bkt")), args)
    }

    /// [`World::command`] for another copy of the bkt binary (one another
    /// user can run: the checkout may be inside a 0700 directory).
    pub fn command_of(&self, bkt: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(bkt);
        // No file bkt writes here is large; a bug (or a mutant) that copies
        // a sparse test file for real is stopped at 256 MiB (SIGXFSZ)
        // instead of filling the machine's disk.
        // SIGINT and SIGQUIT at their defaults, whatever the test run
        // inherited: started from a script's background job (`cargo test
        // &`, a CI runner) they are ignored, and a test of Ctrl-C would
        // test that instead of bkt.
        // SAFETY: setrlimit and signal are async-signal-safe; the child only.
        unsafe {
            use std::os::unix::process::CommandExt;
            c.pre_exec(|| {
                let lim = libc::rlimit {
                    rlim_cur: 256 << 20,
                    rlim_max: 256 << 20,
                };
                libc::setrlimit(libc::RLIMIT_FSIZE, &lim);
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                libc::signal(libc::SIGQUIT, libc::SIG_DFL);
                Ok(())
            });
        }
        c.args(args)
            .env_clear()
            .env("PATH", self.path("bin"))
            .env("HOME", self.path("home"))
            .env("BKT_VM_HOST_MEMORY", "16G")
            .env("BKT_VM_HOST_CPUS", "8")
            .env("BKT_VM_KVM_DEVICE", self.path("kvm"))
            .env("NO_COLOR", "1")
            .env("BKT_VM_ETC", self.path("etc"))
            .env("FAKE_DIR", self.dir.path())
            // Whatever a test forgets, nothing is ever fetched from outside.
            .env("BKT_VM_VIRTIO_URL", "http://127.0.0.1:9/virtio-win.iso")
            .env(
                "BKT_VM_GUEST_TOOLS_URL",
                "http://127.0.0.1:9/virtio-win-guest-tools.exe",
            )
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.extra_env {
            c.env(k, v);
        }
        c
    }

    /// `bkt ARGS` started with SIGINT ignored, as a script's background
    /// job (`bkt ... &`) starts it.
    pub fn spawn_with_sigint_ignored(&self, args: &[&str]) -> std::process::Child {
        let mut c = self.command(args);
        // SAFETY: signal is async-signal-safe; the child only. Runs after
        // the pre_exec of `command`, which set the default.
        unsafe {
            use std::os::unix::process::CommandExt;
            c.pre_exec(|| {
                libc::signal(libc::SIGINT, libc::SIG_IGN);
                Ok(())
            });
        }
        c.spawn().unwrap()
    }

    /// Run `bkt ARGS` to completion.
    pub fn bkt(&self, args: &[&str]) -> Run {
        Run {
            out: self.command(args).output().unwrap(),
        }
    }

    /// Libvirt answering with one host's recorded outputs, no VMs, the
    /// `default` network up, and the images pool at `images/`.
    pub fn libvirt_up(&self) -> &Self {
        fs::write(self.path("kvm"), "").unwrap();
        for (tool, file) in [
            ("virsh", "tools/virsh-version.txt"),
            ("virt-install", "tools/virt-install-version.txt"),
            ("qemu-img", "tools/qemu-img-version.txt"),
        ] {
            self.rule(tool, "--version").out(&fixture(file));
        }
        self.rule("virsh", "* version")
            .out(&fixture("virsh/version.txt"));
        // No domains: the domstats part of the status batch recorded
        // before any was defined (one empty line).
        let batch = fixture("virsh/status-batch-empty.txt");
        let (_, no_domains) = batch.split_once("@@bkt domstats\n").unwrap();
        self.rule("virsh", "* domstats *").out(no_domains);
        // Shut off with nothing saved, unless a test says otherwise first.
        self.rule("virsh", "* dominfo *")
            .out(&fixture("virsh/dominfo-shutoff.txt"));
        // bkt asks `domcapabilities --virttype kvm|qemu --arch x86_64
        // --machine q35` (`Virsh::domcapabilities`, after --virt-type): each
        // is answered with its own recording. The kvm one is of another host
        // (an AMD EPYC-Genoa with KVM; fixtures/README.md).
        self.rule(
            "virsh",
            "* domcapabilities --virttype qemu --arch x86_64 --machine q35",
        )
        .out(&fixture("virsh/domcapabilities-qemu-q35.xml"));
        self.rule(
            "virsh",
            "* domcapabilities --virttype kvm --arch x86_64 --machine q35",
        )
        .out(&fixture("virsh/domcapabilities-kvm-q35.xml"));
        self.rule("virsh", "* net-info default")
            .out(&fixture("virsh/net-info-default-active.txt"));
        self.rule("virsh", "* capabilities")
            .out(&fixture("virsh/capabilities.xml"));
        // The recorded `images` pool, named `default` and at the world's
        // images directory.
        self.rule("virsh", "* pool-dumpxml default").out(
            &fixture("virsh/pool-dumpxml-images.xml")
                .replace("<name>images</name>", "<name>default</name>")
                .replace("/var/lib/libvirt/images", &self.p("images")),
        );
        self
    }

    /// `virsh dominfo` of a shut-off VM: nothing saved to disk.
    pub fn nothing_saved(&self) -> &Self {
        self.rule("virsh", "* dominfo *")
            .out(&fixture("virsh/dominfo-shutoff.txt"));
        self
    }

    /// `NAME` runs for `polls` domstate calls, then is shut off after an
    /// ACPI shutdown, as `virsh` printed it.
    pub fn shuts_down_after(&self, name: &str, polls: u32) -> &Self {
        self.rule("virsh", &format!("* domstate --reason {name}"))
            .out(&fixture("virsh/domstate-reason-running.txt"))
            .times(polls);
        self.rule("virsh", &format!("* domstate --reason {name}"))
            .out(&fixture("virsh/domstate-reason-shutoff-shutdown.txt"));
        self.rule("virsh", &format!("* shutdown {name} --mode acpi"))
            .out(&format!("Domain '{name}' is being shutdown\n"));
        self
    }

    /// `virsh list --all --name` answers with these domains.
    pub fn domains(&self, names: &[&str]) -> &Self {
        let mut out = names.join("\n");
        out.push_str("\n\n");
        self.rule("virsh", "-q -c * list --all --name").out(&out);
        self
    }

    /// Fakes for a successful disk + domain creation: qemu-img writes the
    /// disk, virt-install renders the recorded XML, virsh defines and
    /// starts it.
    pub fn creation_works(&self, disk_size: u64) -> &Self {
        self.rule("qemu-img", "create *").sh(": >\"$5\"\n");
        // The recorded `qemu-img info` of a fresh qcow2, of `disk_size`.
        self.rule("qemu-img", "info *")
            .out(&fixture("qemu-img/info-qcow2.json").replace(
                "\"virtual-size\": 4294967296,",
                &format!("\"virtual-size\": {disk_size},"),
            ));
        self.rule("virt-install", "* --print-xml --dry-run")
            .out(&fixture("virt-install/print-xml-windows-qemu.xml"));
        self.rule("virsh", "* define /dev/stdin")
            .sh("/bin/cat >\"$FAKE_DIR/stdin.define\"\n")
            .out(&fixture("virsh/define-stdin.txt"));
        self.rule("virsh", "* start * --reset-nvram")
            .out(&fixture("virsh/start-reset-nvram.txt"));
        self
    }
}

/// `bkt` on a pseudo-terminal of its own, for the prompts (dialoguer talks
/// to a terminal only): what it printed so far, and keys to type.
pub struct Pty {
    master: std::fs::File,
    child: std::process::Child,
    screen: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl World {
    /// Run `bkt ARGS` with a terminal as stdin, stdout and stderr.
    pub fn pty(&self, args: &[&str]) -> Pty {
        use std::os::fd::{FromRawFd, OwnedFd};
        use std::os::unix::process::CommandExt;
        let (mut m, mut s) = (0, 0);
        let ws = libc::winsize {
            ws_row: 50,
            ws_col: 200,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty fills two descriptors that we then own.
        let rc =
            unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), &ws) };
        assert_eq!(rc, 0, "openpty");
        // SAFETY: both descriptors are fresh and ours.
        let (master, slave) = unsafe { (std::fs::File::from_raw_fd(m), OwnedFd::from_raw_fd(s)) };
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave))
            .env("TERM", "xterm");
        // SAFETY: only async-signal-safe calls between fork and exec: a new
        // session whose controlling terminal is the pty (fd 0).
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                libc::ioctl(0, libc::TIOCSCTTY, 0);
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        let screen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = screen.clone();
        let mut reader = master.try_clone().unwrap();
        let reader = std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Pty {
            master,
            child,
            screen,
            reader: Some(reader),
        }
    }
}

impl Drop for Pty {
    /// A test that fails while bkt waits at a prompt must not leave it
    /// waiting forever: end it (our own child, by its PID).
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Pty {
    /// Everything printed so far, escape sequences removed.
    pub fn screen(&self) -> String {
        let raw = String::from_utf8_lossy(&self.screen.lock().unwrap()).into_owned();
        let esc = regex::Regex::new(r"\x1b\[[0-9;?]*[A-Za-z]|\r").unwrap();
        esc.replace_all(&raw, "").into_owned()
    }

    /// Wait until the screen shows `text` (the real condition, polled).
    #[track_caller]
    pub fn expect(&self, text: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !self.screen().contains(text) {
            assert!(
                std::time::Instant::now() < deadline,
                "never saw {text:?} on the screen:\n{}",
                self.screen()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Type a line.
    pub fn send(&mut self, line: &str) {
        use std::io::Write;
        self.master.write_all(line.as_bytes()).unwrap();
        self.master.write_all(b"\r").unwrap();
    }

    /// Wait for bkt to exit; its exit code.
    pub fn wait(mut self) -> (i32, String) {
        let st = self.child.wait().unwrap();
        // The reader ends (EIO) once no one holds the terminal's other end:
        // then it has everything.
        let screen = self.screen.clone();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let raw = String::from_utf8_lossy(&screen.lock().unwrap()).into_owned();
        let esc = regex::Regex::new(r"\x1b\[[0-9;?]*[A-Za-z]|\r").unwrap();
        (
            st.code().unwrap_or(-1),
            esc.replace_all(&raw, "").into_owned(),
        )
    }
}

/// A fake FreeRDP named `tool`: `/version` prints `version`; a session
/// saves its stdin to `$FAKE_DIR/TOOL.stdin`, then exits with `code`.
/// The recorded definition of a running Windows-shaped VM, as `windows`
/// with its disk in the world's images directory.
pub fn windows_running_xml(w: &World) -> String {
    fixture("virsh/dumpxml-windows-running.xml")
        .replace(
            "/var/lib/libvirt/images/t1.qcow2",
            &w.p("images/windows.qcow2"),
        )
        .replace("<name>t1</name>", "<name>windows</name>")
}

pub fn freerdp(w: &World, tool: &str, version: &str, code: i32) {
    w.install_fake(tool);
    let line = match version {
        // As recorded (xfreerdp3 and sdl-freerdp3 3.10.3 print the same
        // line; wlfreerdp3 is given it too).
        "2.11.7" => fixture("freerdp/xfreerdp2-version.txt"),
        "3.10.3" => fixture("freerdp/xfreerdp3-version.txt"),
        // hand-typed, not recorded: the line of the recorded 3.10.3 with
        // another version (bkt reads only the version number from it).
        _ => format!("This is FreeRDP version {version} (n/a)\n"),
    };
    w.rule(tool, "/version").out(&line);
    w.rule(tool, "/v:*")
        .sh(&format!("/bin/cat >\"$FAKE_DIR/{tool}.stdin\"\n"))
        .code(code);
}

/// No argv holds the password (`hunter2 ...` in the tests), and no child's
/// environment does: the RDP client gets it on stdin only.
pub fn no_password_in_argv_or_environment(w: &World) {
    for c in w.calls() {
        for a in &c {
            assert!(!a.contains("hunter2"), "password in argv: {c:?}");
        }
    }
    assert_eq!(w.calls_that_saw_the_password(), Vec::<Vec<String>>::new());
}

/// The path of a recording under fixtures/.
pub fn fixture_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

/// The 40 KiB stand-in install ISO, laid out by hand as ECMA-119 has it
/// (the size the tests' check lines show): the primary volume descriptor
/// at sector 16, the set's terminator at 17, the root directory at 18,
/// SOURCES at 19, and INSTALL.WIM, a real WIM (wimcapture), in the 32 KiB
/// before sector 16 that ISO 9660 leaves to its writer.
pub fn stand_in_iso() -> Vec<u8> {
    const S: usize = 2048;
    let wim = fs::read(fixture_path("wim/win11-24h2-x64.wim")).unwrap();
    assert!(wim.len() <= 15 * S);
    fn record(lba: u32, len: u32, dir: bool, name: &[u8]) -> Vec<u8> {
        let size = 33 + name.len() + (name.len() + 1) % 2;
        let mut r = vec![0u8; size];
        r[0] = size as u8;
        r[2..6].copy_from_slice(&lba.to_le_bytes());
        r[6..10].copy_from_slice(&lba.to_be_bytes());
        r[10..14].copy_from_slice(&len.to_le_bytes());
        r[14..18].copy_from_slice(&len.to_be_bytes());
        r[25] = if dir { 2 } else { 0 };
        r[28] = 1;
        r[32] = name.len() as u8;
        r[33..].iter_mut().zip(name).for_each(|(b, n)| *b = *n);
        r
    }
    let mut iso = vec![0u8; 20 * S];
    iso[S..S + wim.len()].copy_from_slice(&wim);
    let pvd = &mut iso[16 * S..17 * S];
    pvd[0] = 1;
    pvd[1..6].copy_from_slice(b"CD001");
    pvd[6] = 1;
    pvd[80..84].copy_from_slice(&20u32.to_le_bytes());
    pvd[128..130].copy_from_slice(&(S as u16).to_le_bytes());
    pvd[156..190].copy_from_slice(&record(18, S as u32, true, &[0]));
    let end = &mut iso[17 * S..18 * S];
    end[0] = 255;
    end[1..6].copy_from_slice(b"CD001");
    end[6] = 1;
    let dir = |parent: u32, here: u32, entry: Vec<u8>| {
        [
            record(here, S as u32, true, &[0]),
            record(parent, S as u32, true, &[1]),
            entry,
        ]
        .concat()
    };
    let root = dir(18, 18, record(19, S as u32, true, b"SOURCES"));
    iso[18 * S..18 * S + root.len()].copy_from_slice(&root);
    let sources = dir(18, 19, record(1, wim.len() as u32, false, b"INSTALL.WIM;1"));
    iso[19 * S..19 * S + sources.len()].copy_from_slice(&sources);
    iso
}

/// tests/fakes/fake.sh made executable, once per test process (see
/// [`World::install_fake`]), in cargo's scratch directory for tests. It is
/// written under a name of this process and renamed into place, so another
/// test run using the file meanwhile keeps the whole one it opened.
fn fake_program() -> &'static Path {
    static FAKE: OnceLock<PathBuf> = OnceLock::new();
    FAKE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let dst = dir.join("fake.sh");
        let tmp = dir.join(format!("fake.sh.{}", std::process::id()));
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fakes/fake.sh");
        fs::copy(&src, &tmp).unwrap();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).unwrap();
        fs::rename(&tmp, &dst).unwrap();
        dst
    })
}

/// Ctrl-C, as a user would, to a running `bkt`; its exit status and what
/// it said.
pub fn interrupt(child: std::process::Child) -> (i32, String) {
    // SAFETY: a plain kill(2) of our own child, by its PID.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
