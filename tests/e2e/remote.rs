//! The remote phase: bkt on a "laptop" that reaches libvirt only through
//! `qemu+ssh://`. A throwaway sshd of the test's own (its host key, a
//! client key, a free port on the namespace's loopback, `LogLevel VERBOSE`
//! into a file) stands for the home server; bkt runs in a private mount
//! namespace where `/run/libvirt`, `/var/lib/libvirt` and `/etc/libvirt` are
//! empty tmpfs mounts, so any shortcut through local sockets or files fails.
//! Host keys are checked against a known_hosts file the test writes
//! (`?known_hosts=`), never `no_verify`, and root's own known_hosts is left
//! as it was.
//!
//! Through it: status, doctor, `ip` and `connect` (the real xfreerdp
//! through bkt's tunnel) of a tiny guest, bkt's certificate pin through
//! that tunnel (scripts/rdp-standin.py on the host's loopback standing in
//! for the guest's TLS); the host unreachable and a key
//! it refuses; then the Windows-shaped VM made by `create` from this
//! machine's stand-in ISOs (sent to the host), a snapshot reverted by the
//! checksums of its parts on the host, `destroy` leaving only the media,
//! and a second `create` that finds them there.
//!
//! After every command: exactly one ssh login (sshd's "Accepted publickey"
//! lines), and nothing of bkt's ssh left (its socket directory, which goes
//! under a `TMPDIR` of the test's own, or a process naming it).

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::guests::{Xvfb, define_tiny, wait_until_up};
use crate::harness::*;

/// What the mount namespace hides, each behind an empty tmpfs.
const HIDDEN: [&str; 3] = ["/run/libvirt", "/var/lib/libvirt", "/etc/libvirt"];

/// `unshare -m` with libvirt's local sockets, state and configuration
/// hidden, then the command (its arguments follow).
fn hidden() -> Vec<String> {
    let mounts: Vec<String> = HIDDEN
        .iter()
        .map(|d| format!("mount -t tmpfs none {d}"))
        .collect();
    vec![
        "unshare".into(),
        "-m".into(),
        "sh".into(),
        "-c".into(),
        format!("{} && exec \"$@\"", mounts.join(" && ")),
        "sh".into(),
    ]
}

/// A loopback port nothing listens on (just now).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The throwaway sshd: ended by its PID on drop (pass or fail); its
/// directory (keys, config, log) is the caller's.
struct Sshd {
    _child: Stopped,
    port: u16,
    log: PathBuf,
    /// The client key root may log in with, and one it may not.
    key: PathBuf,
    other: PathBuf,
    known_hosts: PathBuf,
}

impl Sshd {
    fn start(dir: &Path) -> Sshd {
        fs::create_dir_all(dir).unwrap();
        // Privilege separation needs it; apt's openssh-server makes it
        // only when a service manager starts sshd.
        fs::create_dir_all("/run/sshd").unwrap();
        let keygen = |name: &str| {
            ok(&run(
                "ssh-keygen",
                &[
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    name,
                    "-f",
                    dir.join(name).to_str().unwrap(),
                ],
            ));
        };
        for k in ["host_key", "key", "other"] {
            keygen(k);
        }
        fs::copy(dir.join("key.pub"), dir.join("authorized_keys")).unwrap();
        let log = dir.join("sshd.log");
        // A port picked free can be taken before sshd binds it: try again.
        for _ in 0..3 {
            let port = free_port();
            let config = dir.join("sshd_config");
            fs::write(
                &config,
                format!(
                    "ListenAddress 127.0.0.1\nPort {port}\nHostKey {d}/host_key\n\
                     AuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin prohibit-password\n\
                     PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                     # The keys sit under /tmp, not in a home directory.\nStrictModes no\n\
                     PidFile none\nLogLevel VERBOSE\n",
                    d = dir.display()
                ),
            )
            .unwrap();
            let _ = fs::remove_file(&log);
            let mut child = Stopped(
                Command::new("/usr/sbin/sshd")
                    .args(["-D", "-f", config.to_str().unwrap(), "-E"])
                    .arg(&log)
                    .stdin(Stdio::null())
                    .spawn()
                    .expect("/usr/sbin/sshd (apt install openssh-server)"),
            );
            let listening = format!("Server listening on 127.0.0.1 port {port}.");
            let up = wait_for("sshd listening", Duration::from_secs(20), || {
                if let Ok(Some(st)) = child.0.try_wait() {
                    return Some(Err(st));
                }
                fs::read_to_string(&log)
                    .unwrap_or_default()
                    .contains(&listening)
                    .then_some(Ok(()))
            });
            if let Err(st) = up {
                eprintln!(
                    "[remote] sshd on port {port} ended ({st}):\n{}",
                    fs::read_to_string(&log).unwrap_or_default()
                );
                drop(child);
                continue;
            }
            let host_key = fs::read_to_string(dir.join("host_key.pub")).unwrap();
            let mut f = host_key.split_whitespace();
            let (kind, key) = (f.next().unwrap(), f.next().unwrap());
            let known_hosts = dir.join("known_hosts");
            fs::write(&known_hosts, format!("[127.0.0.1]:{port} {kind} {key}\n")).unwrap();
            return Sshd {
                _child: child,
                port,
                log,
                key: dir.join("key"),
                other: dir.join("other"),
                known_hosts,
            };
        }
        panic!("sshd did not start in three tries");
    }

    /// The URI of this host with client key `key`.
    fn uri(&self, key: &Path) -> String {
        uri(self.port, key, &self.known_hosts)
    }

    /// How many logins sshd accepted so far.
    fn logins(&self) -> usize {
        fs::read_to_string(&self.log)
            .unwrap()
            .matches("Accepted publickey for root from 127.0.0.1")
            .count()
    }
}

fn uri(port: u16, key: &Path, known_hosts: &Path) -> String {
    format!(
        "qemu+ssh://root@127.0.0.1:{port}/system?keyfile={}&known_hosts={}",
        key.display(),
        known_hosts.display()
    )
}

/// The PIDs whose command line names `marker` (bkt's ssh processes name
/// their socket directory, which lives under the test's own TMPDIR).
fn pids_naming(marker: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(marker) {
            pids.push(pid);
        }
    }
    pids
}

/// bkt's runs over ssh: their TMPDIR (where bkt's ssh socket directory
/// goes), and on drop an end to any ssh process a failed run left there,
/// by its PID.
struct Runs {
    tmp: PathBuf,
}

impl Runs {
    /// What is left of bkt's ssh after a command: socket directories and
    /// processes naming them.
    fn leftovers(&self) -> (Vec<String>, Vec<i32>) {
        let dirs = fs::read_dir(&self.tmp)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("bkt-ssh."))
            .collect();
        (dirs, pids_naming(self.tmp.to_str().unwrap()))
    }

    /// Nothing of bkt's ssh is left once `what` returned. The master ends
    /// on `ssh -O exit`, a moment after bkt asked: polled.
    fn assert_clean(&self, what: &str) {
        wait_for(
            &format!("nothing of bkt's ssh left after {what}"),
            // From the end of the command: ssh -O exit on a loaded machine.
            Duration::from_secs(30),
            || {
                let (dirs, pids) = self.leftovers();
                (dirs.is_empty() && pids.is_empty()).then_some(())
            },
        );
    }
}

impl Drop for Runs {
    fn drop(&mut self) {
        for pid in pids_naming(self.tmp.to_str().unwrap()) {
            eprintln!("[remote] ending ssh process {pid} a run left behind");
            // SAFETY: a process one of our bkt runs started, by its PID.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
    }
}

/// Root's known_hosts as it is now (None: no such file).
fn root_known_hosts() -> Option<Vec<u8>> {
    fs::read("/root/.ssh/known_hosts").ok()
}

#[test]
#[ignore = "needs the real virt stack: run scripts/test-all.sh"]
fn every_command_over_qemu_ssh() {
    let name = "e2e-remote";
    let env = Env::new("remote", &[name, REMOTE_VM]);
    // The guest's port 3389 holds each connection and echoes it
    // (`bkt.rdp=hold`): an RDP client that reaches it gets its own request
    // back and fails at negotiation, which nothing short of the guest can
    // make it do.
    define_tiny(&env, name, 1, " bkt.rdp=hold");
    let ip = wait_until_up(&env, name);
    let known_hosts_before = root_known_hosts();
    let sshd = Sshd::start(&env.work.path().join("sshd"));
    env.log(&format!("sshd on 127.0.0.1:{}", sshd.port));
    let runs = Runs {
        tmp: env.work.path().join("tmp"),
    };
    fs::create_dir(&runs.tmp).unwrap();
    let manifest = env.work.path().join("remote.json");
    let uri = sshd.uri(&sshd.key);
    let wrapper = hidden();
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let tmp = runs.tmp.to_str().unwrap().to_string();
    // One command over ssh: it logs in once (or, `logins` 0, not at all)
    // and leaves nothing behind.
    let remote = |args: &[&str], extra: &[(&str, &str)], logins: usize| -> Output {
        let before = sshd.logins();
        let mut e = vec![("TMPDIR", tmp.as_str())];
        e.extend_from_slice(extra);
        let out = env.bkt_via(&wrapper, &manifest, args, &e);
        let what = args.join(" ").replace(&uri, "URI");
        runs.assert_clean(&what);
        assert_eq!(
            sshd.logins() - before,
            logins,
            "ssh logins of `bkt {what}`\n{}",
            fs::read_to_string(&sshd.log).unwrap()
        );
        out
    };

    // Every file operation of bkt's ssh host against this real one: the
    // unit test that needs a host (scripts/test-all.sh names its binary).
    let unit_tests = std::env::var("BKT_E2E_UNIT_TESTS").unwrap_or_else(|_| {
        panic!("BKT_E2E_UNIT_TESTS is not set: run the end-to-end tier through scripts/test-all.sh")
    });
    let mut argv = wrapper.clone();
    argv.extend([
        unit_tests.as_str(),
        "--ignored",
        "--exact",
        "vm::ctx::ssh::tests::real_host_file_operations",
    ]);
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .env("BKT_TEST_SSH_URI", &uri)
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    env.log_output("real_host_file_operations", &out);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("test result: ok. 1 passed"),
        "{said}"
    );
    runs.assert_clean("the unit test's file operations");

    // The mount namespace really hides the local libvirt: without the
    // URI, bkt cannot reach it.
    let out = remote(&["vm", "status"], &[], 0);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Failed to connect socket to '/var/run/libvirt/libvirt-sock'"),
        "{stderr}"
    );

    // status: the running guest, its address on the host's network and
    // its port, probed there.
    let (table, stderr) = text(&remote(&["vm", "-c", &uri, "status"], &[], 1));
    let row = table
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in\n{table}{stderr}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        (
            cols[1],
            cols.contains(&ip.as_str()),
            cols.contains(&"answers")
        ),
        ("running", true, true),
        "{row}"
    );
    let out = remote(&["vm", "-c", &uri, "status", name, "--json"], &[], 1);
    let st: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(st["vms"][0]["name"], name, "{st}");
    assert_eq!(st["vms"][0]["ip"], ip.as_str(), "{st}");
    assert_eq!(st["vms"][0]["rdp_port"], "open", "{st}");

    // doctor: the remote host's checks and the guest's, from there.
    let out = remote(&["vm", "-c", &uri, "doctor", name, "--json"], &[], 1);
    let doc: serde_json::Value = serde_json::from_str(&text(&out).0).unwrap();
    let level = |label: &str| check_level(&doc["vms"][0]["checks"], label);
    assert_eq!(level("IP"), "pass", "{doc}");
    assert_eq!(level("RDP"), "pass", "{doc}");
    let host = |label: &str| check(&doc["host"], label);
    let libvirt = host("libvirt");
    assert_eq!(libvirt["level"], "pass", "{doc}");
    assert!(
        libvirt["detail"].as_str().unwrap().starts_with(&uri),
        "{doc}"
    );
    // The free space is the host's images directory, not what bkt's
    // mount namespace shows there (a tmpfs of half the RAM).
    let space = host("disk space");
    let detail = space["detail"].as_str().unwrap();
    let m = regex::Regex::new(r"^([\d.]+) GiB free in /var/lib/libvirt/images$")
        .unwrap()
        .captures(detail)
        .unwrap_or_else(|| panic!("disk space: {detail}"));
    let gib = |bytes: u64| bytes as f64 / (1u64 << 30) as f64;
    let real = gib(free_bytes(IMAGES));
    let said: f64 = m[1].parse().unwrap();
    assert!(
        (said - real).abs() < 2.0,
        "doctor says {said} GiB free, the host's images directory has {real:.1} GiB"
    );
    let (report, _) = text(&remote(&["vm", "-c", &uri, "doctor"], &[], 1));
    assert!(
        report.contains(&format!("✓ libvirt        {uri} (libvirt ")),
        "{report}"
    );

    // ip: the address alone on stdout; that it is the host's network on
    // stderr.
    let (stdout, stderr) = text(&ok_out(remote(&["vm", "-c", &uri, "ip", name], &[], 1)));
    assert_eq!(stdout, format!("{ip}\n"));
    assert_eq!(
        stderr,
        format!(
            "{ip} is on 127.0.0.1's network: reachable from 127.0.0.1 only, not from here \
             (`bkt vm connect {name}` tunnels Remote Desktop through ssh)\n"
        )
    );

    // connect: the real xfreerdp through bkt's tunnel.
    connect_through_the_tunnel(&env, &runs, name, &ip, |extra| {
        remote(
            &[
                "vm",
                "-c",
                &uri,
                "connect",
                name,
                "--rdp",
                "--user",
                "anna",
                "--timeout",
                "60",
            ],
            extra,
            1,
        )
    });

    // The certificate pinned through the real tunnel: first use pins, a
    // new tunnel port is no new first use, another certificate is refused.
    pinned_certificate_through_the_tunnel(&env, name, &ip, |extra| {
        remote(
            &[
                "vm",
                "-c",
                &uri,
                "connect",
                name,
                "--rdp",
                "--user",
                "anna",
                "--timeout",
                "60",
            ],
            extra,
            1,
        )
    });

    // run --detach: a tunnel of the client's own, which outlives bkt.
    detach_through_a_tunnel_of_its_own(&env, &runs, name, |extra| {
        remote(
            &[
                "vm",
                "-c",
                &uri,
                "run",
                name,
                "notepad",
                "--detach",
                "--user",
                "anna",
                "--timeout",
                "60",
            ],
            extra,
            // bkt's master, and the tunnel's own login.
            2,
        )
    });

    // The host unreachable: nothing listens on the port.
    let closed = free_port();
    let out = remote(
        &[
            "vm",
            "-c",
            &self::uri(closed, &sshd.key, &sshd.known_hosts),
            "status",
        ],
        &[],
        0,
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out).1,
        format!(
            "error: cannot reach 127.0.0.1 over ssh (ssh: connect to host 127.0.0.1 port {closed}: Connection refused)\n\
             hint: check that the host is up and runs sshd, and that --connect names it right: \
             `ssh -p {closed} root@127.0.0.1 true` should work\n"
        )
    );

    // Another machine over libvirt's TCP: refused before anything runs.
    // Under -v every external command would be printed before it ran;
    // nothing is, and nobody logs in.
    let out = remote(
        &["vm", "-v", "-c", "qemu+tcp://127.0.0.1/system", "status"],
        &[],
        0,
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out),
        (
            String::new(),
            "error: qemu+tcp://127.0.0.1/system names another machine, which bkt reaches \
             only over ssh\nhint: use qemu+ssh://[user@]127.0.0.1/system\n"
                .to_string()
        )
    );

    // A key the host refuses: said, never a password prompt.
    let out = remote(&["vm", "-c", &sshd.uri(&sshd.other), "status"], &[], 0);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out).1,
        format!(
            "error: ssh could not log in to root@127.0.0.1: the host refused every key \
             (root@127.0.0.1: Permission denied (publickey).)\n\
             hint: bkt never asks for an ssh password (BatchMode): give it a key the host accepts, \
             `ssh-copy-id -p {} root@127.0.0.1`, or name one in the URI (?keyfile=PATH)\n",
            sshd.port
        )
    );

    create_snapshot_destroy_over_ssh(&env, &uri, &remote);

    // The tiny guest was defined here, not by a remote create: the local
    // bkt removes it.
    ok(&env.bkt(&["vm", "destroy", name, "--yes"]));
    assert!(!defined(name));

    assert!(
        root_known_hosts() == known_hosts_before,
        "root's ~/.ssh/known_hosts changed: bkt or libvirt wrote a host key there"
    );
}

/// The free bytes of the file system holding `dir`, seen from here
/// (outside bkt's mount namespace).
fn free_bytes(dir: &str) -> u64 {
    let out = ok(&run("df", &["-B1", "--output=avail", dir]));
    out.lines().nth(1).unwrap().trim().parse().unwrap()
}

/// Exit status 0, and the output.
fn ok_out(out: Output) -> Output {
    ok(&out);
    out
}

/// `bkt vm connect --rdp` (through `connect`, given extra environment) with
/// the real xfreerdp, started through a wrapper that notes what of bkt's
/// ssh exists while the client runs: the master, its socket directory.
fn connect_through_the_tunnel(
    env: &Env,
    runs: &Runs,
    name: &str,
    ip: &str,
    connect: impl FnOnce(&[(&str, &str)]) -> Output,
) {
    let x = Xvfb::start();
    let seen = env.work.path().join("seen-during-rdp");
    let client = env.work.path().join("client/xfreerdp");
    fs::create_dir_all(client.parent().unwrap()).unwrap();
    fs::write(
        &client,
        format!(
            "#!/bin/sh\n[ \"$1\" = /version ] && exec xfreerdp \"$@\"\n\
             ls -d {tmp}/bkt-ssh.* >{seen} 2>&1\n\
             ps -eo args | grep -F {tmp}/bkt-ssh. | grep -F -- ' -M ' >>{seen}\n\
             exec xfreerdp \"$@\"\n",
            tmp = runs.tmp.display(),
            seen = seen.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&client, fs::Permissions::from_mode(0o755)).unwrap();
    // bkt's files in the test's home, not root's: a first use leaves
    // VM@DIGEST.first-use under $XDG_CONFIG_HOME/bkt/vm/pins.
    let config = env.home.path().join(".config");
    let out = connect(&[
        ("XDG_CONFIG_HOME", config.to_str().unwrap()),
        ("DISPLAY", x.display.as_str()),
        ("BKT_VM_RDP_PASSWORD", "not-a-real-password"),
        ("BKT_VM_RDP_CLIENT", client.to_str().unwrap()),
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let tunnel = regex::Regex::new(&format!(
        r"RDP to {}:3389 through an ssh tunnel at 127\.0\.0\.1:(\d+)\n",
        regex::escape(ip)
    ))
    .unwrap();
    let port = &tunnel
        .captures(&stderr)
        .unwrap_or_else(|| panic!("no tunnel in\n{stderr}"))[1];
    assert!(
        stdout.starts_with(&format!(
            "→ FreeRDP {}: {} /v:127.0.0.1:{port} /u:anna ",
            x.freerdp_version("xfreerdp"),
            client.display()
        )),
        "{stdout}"
    );
    assert!(
        stderr.contains("exited with code 133: protocol negotiation failed"),
        "{stderr}"
    );
    // The client's request came back from the guest's echo: the tunnel
    // reached its port 3389, and the failure is RDP's, not TCP's.
    let log = fs::read_to_string(last_rdp_log(&env.cache(), name)).unwrap();
    assert!(
        log.contains("expected X224_TPDU_CONNECTION_CONFIRM")
            && log.contains("ERRCONNECT_SECURITY_NEGO_CONNECT_FAILED"),
        "{log}"
    );
    assert!(
        !log.contains("ERRCONNECT_CONNECT_TRANSPORT_FAILED"),
        "{log}"
    );
    assert!(!format!("{stdout}{stderr}{log}").contains("not-a-real-password"));
    // While the client ran, bkt's master and its socket directory were
    // there (so the checks after each command look at the right place).
    let seen = fs::read_to_string(&seen).unwrap();
    env.log(&format!("during the RDP session:\n{seen}"));
    assert!(
        seen.contains(&format!("{}/bkt-ssh.", runs.tmp.display())),
        "{seen}"
    );
    assert!(
        seen.contains(&format!("ssh -S {}/bkt-ssh.", runs.tmp.display())),
        "{seen}"
    );
    // Nothing listens on the tunnel's port any more.
    assert!(
        TcpStream::connect(format!("127.0.0.1:{port}")).is_err(),
        "the tunnel at 127.0.0.1:{port} outlived connect"
    );
}

/// `bkt vm run --detach` over ssh with a stand-in client (the guest's
/// 3389 is an echo, which a real RDP client would leave at once): it
/// connects to where bkt tells it, sends a line and reads it back from the
/// guest, then waits for the test (two minutes at most, so that a failed
/// test leaves neither it nor its tunnel). bkt returns once connected, its own
/// master gone; the client's connection still carries a line after that;
/// once the client ends, its tunnel (a process of its own) ends too.
fn detach_through_a_tunnel_of_its_own(
    env: &Env,
    runs: &Runs,
    name: &str,
    run: impl FnOnce(&[(&str, &str)]) -> Output,
) {
    let x = Xvfb::start();
    let dir = env.work.path().join("detached");
    fs::create_dir_all(&dir).unwrap();
    let (first, go, second) = (dir.join("first"), dir.join("go"), dir.join("second"));
    let client = dir.join("xfreerdp");
    let code = format!(
        "import os,socket,sys\n\
         sys.stdin.readline()\n\
         port=int([a for a in sys.argv[1:] if a.startswith('/v:')][0].rsplit(':',1)[1])\n\
         s=socket.create_connection(('127.0.0.1',port))\n\
         def echo(line,to):\n\
         \x20   s.sendall(line)\n\
         \x20   got=b''\n\
         \x20   while not got.endswith(b'\\n'):\n\
         \x20       b=s.recv(100)\n\
         \x20       if not b: break\n\
         \x20       got+=b\n\
         \x20   open(to,'wb').write(got)\n\
         echo(b'first\\n',{first:?})\n\
         import select,time\n\
         end=time.time()+120\n\
         while not os.path.exists({go:?}) and time.time()<end: select.select([],[],[],0.05)\n\
         echo(b'second\\n',{second:?})\n",
        first = first.display().to_string(),
        go = go.display().to_string(),
        second = second.display().to_string(),
    );
    fs::write(dir.join("client.py"), code).unwrap();
    fs::write(
        &client,
        format!(
            "#!/bin/sh\n[ \"$1\" = /version ] && exec xfreerdp \"$@\"\n\
             exec python3 {} \"$@\"\n",
            dir.join("client.py").display()
        ),
    )
    .unwrap();
    fs::set_permissions(&client, fs::Permissions::from_mode(0o755)).unwrap();
    let started = std::time::Instant::now();
    // bkt's files in the test's home, not root's: a first use leaves
    // VM@DIGEST.first-use under $XDG_CONFIG_HOME/bkt/vm/pins.
    let config = env.home.path().join(".config");
    let out = run(&[
        ("XDG_CONFIG_HOME", config.to_str().unwrap()),
        ("DISPLAY", x.display.as_str()),
        ("BKT_VM_RDP_PASSWORD", "not-a-real-password"),
        ("BKT_VM_RDP_CLIENT", client.to_str().unwrap()),
    ]);
    let took = started.elapsed();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    // Back once the client held its connection, not after the 30 s that
    // --detach waits at most.
    assert!(took < Duration::from_secs(25), "run --detach took {took:?}");
    assert!(stdout.contains("is up; its log: "), "{stdout}");
    // Before bkt returned, the line went to the guest and came back.
    wait_for("the client's first echo", Duration::from_secs(10), || {
        fs::read_to_string(&first).ok().filter(|t| t == "first\n")
    });
    // bkt's master is gone (`run` above checked: nothing names its
    // directory); the tunnel is a process of its own.
    let forward = regex::Regex::new(r"/v:127\.0\.0\.1:(\d+) ").unwrap();
    let port = forward
        .captures(&stdout)
        .unwrap_or_else(|| panic!("no /v: in {stdout}"))[1]
        .to_string();
    let tunnel = pids_naming(&format!("127.0.0.1:{port}:"));
    assert_eq!(tunnel.len(), 1, "the tunnel's ssh: {tunnel:?}");
    assert!(runs.leftovers().0.is_empty());
    // The connection still carries a line after bkt and its master ended.
    fs::write(&go, "").unwrap();
    wait_for("the client's second echo", Duration::from_secs(10), || {
        fs::read_to_string(&second).ok().filter(|t| t == "second\n")
    });
    // The client ended (its script ran out): the tunnel ends with it.
    wait_for(
        "the tunnel to end with the client",
        Duration::from_secs(30),
        || (!Path::new(&format!("/proc/{}", tunnel[0])).exists()).then_some(()),
    );
    assert!(
        TcpStream::connect(format!("127.0.0.1:{port}")).is_err(),
        "the tunnel at 127.0.0.1:{port} outlived its client"
    );
    // The detached session's own log: it must exist, or the check below
    // could not fail.
    let log = fs::read_to_string(last_rdp_log(&env.cache(), name)).unwrap();
    assert!(!format!("{stdout}{stderr}{log}").contains("not-a-real-password"));
}

/// One bkt command over ssh, given extra environment and the number of
/// ssh logins it may make.
type Remote<'a> = dyn Fn(&[&str], &[(&str, &str)], usize) -> Output + 'a;

/// The Windows-shaped VM that `create` makes over ssh.
const REMOTE_VM: &str = "e2e-rcreate";

/// create from this machine's stand-in ISOs (sent to the host once), a
/// snapshot taken and reverted (checked by the checksums of the disk,
/// NVRAM and TPM state where they are, on the host), destroy leaving only
/// the sent media, and a second create finding them there. `remote` runs
/// one bkt command over `uri` and checks its single login.
fn create_snapshot_destroy_over_ssh(env: &Env, uri: &str, remote: &Remote) {
    let name = REMOTE_VM;
    let iso = env.media("win-standin.iso");
    let virtio = env.media("virtio-standin.iso");
    let sent = |local: &Path| {
        let file = local.file_name().unwrap().to_str().unwrap();
        PathBuf::from(IMAGES).join(format!("bkt-media-{}-{file}", &sha256(local)[..16]))
    };
    let (win, vio) = (sent(&iso), sent(&virtio));
    for m in [&win, &vio] {
        assert!(
            !m.exists(),
            "{} is there before the test sent it",
            m.display()
        );
        // Media are never bkt's to delete: the test takes its own away.
        env.remove_at_end(m);
    }
    let mut create = vec!["vm", "-c", uri];
    create.extend(windows_create(name, &iso, &virtio, "1G", "1G"));
    let (out, err) = text(&ok_out(remote(&create, &[], 1)));
    env.log("created over ssh");
    for (local, there) in [(&iso, &win), (&virtio, &vio)] {
        let file = local.file_name().unwrap().to_str().unwrap();
        assert!(
            out.contains(&format!(
                "  • uploaded       {file} → 127.0.0.1:{} (",
                there.display()
            )),
            "{out}{err}"
        );
        assert_eq!(sha256(there), sha256(local), "{}", there.display());
    }
    // Nothing half-sent is left beside them.
    let parts: Vec<_> = fs::read_dir(IMAGES)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| f.starts_with(".bkt-media-"))
        .collect();
    assert!(parts.is_empty(), "{parts:?}");

    // Running, with Secure Boot, the TPM and the media where they were
    // sent; its disk a volume libvirt made in the images pool.
    assert_eq!(domstate(name), "running (booted)");
    let xml = ok(&virsh(&["dumpxml", name]));
    let doc = xml_doc(&xml);
    let loader = find(&doc, "loader", |_| true).expect("a UEFI loader");
    assert_eq!(loader.attribute("secure"), Some("yes"), "{xml}");
    assert!(find(&doc, "tpm", |n| n.attribute("model") == Some("tpm-crb")).is_some());
    let cdroms: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("disk") && n.attribute("device") == Some("cdrom"))
        .map(|d| source_file(&d))
        .collect();
    assert_eq!(
        cdroms,
        [win.display().to_string(), vio.display().to_string()],
        "{xml}"
    );
    let (disk, nvram, tpm) = crate::windows::parts_of(name);
    assert_eq!(ok(&virsh(&["vol-pool", &disk])).trim(), "images");
    assert_eq!(disk, format!("{IMAGES}/{name}.qcow2"));

    // A snapshot of the shut-off VM, then a revert: the checksums of the
    // three parts on the host are back to what they were.
    ok(&remote(&["vm", "-c", uri, "stop", name, "--force"], &[], 1));
    let before = crate::windows::parts_sums(env, &disk, &nvram, &tpm);
    ok(&remote(
        &["vm", "-c", uri, "snapshot", "create", name, "clean"],
        &[],
        1,
    ));
    let snapshots = PathBuf::from(IMAGES).join(format!("{name}.snapshots"));
    assert!(snapshots.join("clean").is_dir(), "{}", snapshots.display());
    crate::windows::change_all_three(env, &disk, &nvram, &tpm, &before);
    ok(&remote(
        &[
            "vm", "-c", uri, "snapshot", "revert", name, "clean", "--yes",
        ],
        &[],
        1,
    ));
    assert_eq!(
        crate::windows::parts_sums(env, &disk, &nvram, &tpm),
        before,
        "disk, NVRAM and TPM state as they were when the snapshot was taken"
    );

    // destroy: nothing of the VM is left on the host but the media.
    let destroy = ["vm", "-c", uri, "destroy", name, "--yes"];
    let (out, err) = text(&ok_out(remote(&destroy, &[], 1)));
    assert!(!defined(name), "{out}{err}");
    for gone in [disk.as_str(), nvram.as_str()] {
        assert!(!Path::new(gone).exists(), "{gone} is left\n{out}{err}");
    }
    assert!(!tpm.exists(), "{} is left", tpm.display());
    assert!(!snapshots.exists(), "{} is left", snapshots.display());
    assert_eq!(sha256(&win), sha256(&iso), "the install ISO kept, whole");
    assert_eq!(sha256(&vio), sha256(&virtio), "the drivers ISO kept, whole");

    // The next create finds them there by checksum and sends nothing.
    let mtimes = || [&win, &vio].map(|m| fs::metadata(m).unwrap().modified().unwrap());
    let kept = mtimes();
    let (out, err) = text(&ok_out(remote(&create, &[], 1)));
    for (local, there) in [(&iso, &win), (&virtio, &vio)] {
        let file = local.file_name().unwrap().to_str().unwrap();
        assert!(
            out.contains(&format!(
                "  • on host        {file}: 127.0.0.1:{} has the same SHA-256; not sent again\n",
                there.display()
            )),
            "{out}{err}"
        );
    }
    assert!(!out.contains("uploaded"), "{out}");
    assert_eq!(mtimes(), kept, "the media were not written again");
    ok(&remote(&destroy, &[], 1));
    assert!(!defined(name));
    // The sent media are the user's to remove: here, the test's.
    for m in [&win, &vio] {
        fs::remove_file(m).unwrap();
    }
}

/// scripts/rdp-standin.py serving `cert` on 127.0.0.1:`port`, once it
/// listens (its "listening on" line); ended by its PID on drop.
fn standin(cert: &(PathBuf, PathBuf), port: u16) -> Stopped {
    use std::io::BufRead;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/rdp-standin.py");
    let mut child = Stopped(
        Command::new("python3")
            .arg(script)
            .args(["serve", "--addr", "127.0.0.1", "--port", &port.to_string()])
            .arg("--cert")
            .arg(&cert.0)
            .arg("--key")
            .arg(&cert.1)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut err = std::io::BufReader::new(child.0.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.contains("listening on 127.0.0.1:"), "{line}");
    // Read the rest of its log, so that it never writes to a closed pipe.
    std::thread::spawn(move || {
        for l in err.lines().map_while(Result::ok) {
            eprintln!("  {l}");
        }
    });
    child
}

/// A self-signed certificate and its key, as the stand-in takes them.
fn self_signed(dir: &Path, cn: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{cn}.pem"));
    let key = dir.join(format!("{cn}.key"));
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .arg("-subj")
        .arg(format!("/CN={cn}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    (cert, key)
}

/// bkt's certificate pin over a real ssh tunnel, with the real xfreerdp
/// (FreeRDP 2). The busybox guest cannot serve TLS, so
/// scripts/rdp-standin.py stands in for its Remote Desktop on the host's
/// loopback inside the test's namespace: the host's connections to the
/// guest's address at the stand-in's port (what sshd opens for bkt's
/// tunnel, and bkt's probe) are redirected to it by an iptables DNAT rule
/// in this namespace's OUTPUT chain (removed at the end). The tunnel, its
/// random local port and the client are the real ones.
fn pinned_certificate_through_the_tunnel(
    env: &Env,
    name: &str,
    ip: &str,
    connect: impl Fn(&[(&str, &str)]) -> Output,
) {
    let dir = env.work.path().join("standin");
    fs::create_dir_all(&dir).unwrap();
    let a = self_signed(&dir, "windows-a");
    let b = self_signed(&dir, "windows-b");
    let port = free_port();
    let rule = |op: &str| {
        let out = Command::new("iptables")
            .args(["-t", "nat", op, "OUTPUT", "-p", "tcp", "-d", ip])
            .args(["--dport", &port.to_string(), "-j", "DNAT"])
            .args(["--to-destination", &format!("127.0.0.1:{port}")])
            .output()
            .unwrap();
        assert!(out.status.success(), "iptables {op}: {out:?}");
    };
    rule("-A");
    struct Undo<F: Fn(&str)>(F);
    impl<F: Fn(&str)> Drop for Undo<F> {
        fn drop(&mut self) {
            (self.0)("-D");
        }
    }
    let _undo = Undo(rule);
    let x = Xvfb::start();
    let port_s = port.to_string();
    // bkt's pins in the test's home (the e2e runs share root's HOME).
    let config = env.home.path().join(".config");
    let extra = [
        ("XDG_CONFIG_HOME", config.to_str().unwrap()),
        ("DISPLAY", x.display.as_str()),
        ("BKT_VM_RDP_PASSWORD", "not-a-real-password"),
        ("BKT_VM_RDP_CLIENT", "xfreerdp"),
        ("BKT_VM_RDP_PORT", port_s.as_str()),
    ];
    let version = x.freerdp_version("xfreerdp");
    let tunnel = regex::Regex::new(&format!(
        r"RDP to {}:{port} through an ssh tunnel at 127\.0\.0\.1:(\d+)\n",
        regex::escape(ip)
    ))
    .unwrap();
    let pins = config.join("bkt/vm/pins");
    let fingerprint = |cert: &Path| -> String {
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(cert)
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .strip_prefix("sha256 Fingerprint=")
            .unwrap()
            .to_lowercase()
    };
    let fp = fingerprint(&a.0);
    let run = |cert: &str| -> (String, String, String) {
        let out = connect(&extra);
        let (stdout, stderr) = text(&out);
        env.log(&format!("connect with {cert}:\n{stdout}{stderr}"));
        assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
        let tport = tunnel
            .captures(&stderr)
            .unwrap_or_else(|| panic!("no tunnel in\n{stderr}"))[1]
            .to_string();
        assert!(
            stdout.starts_with(&format!(
                "→ FreeRDP {version}: xfreerdp /v:127.0.0.1:{tport} /u:anna /from-stdin:force {cert} "
            )),
            "{stdout}"
        );
        (tport, stdout, stderr)
    };
    let pinned = |exp: &[String]| {
        let mut names: Vec<String> = fs::read_dir(&pins)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        assert_eq!(names, exp);
    };

    // First use: FreeRDP accepts A (the stand-in then hangs up: 147) and
    // bkt keeps its fingerprint as the VM's one pin.
    let standin_a = standin(&a, port);
    let (port1, _, stderr) = run("/cert:tofu");
    assert!(
        stderr.contains("exited with code 147: connection failed (transport)"),
        "{stderr}"
    );
    let names: Vec<String> = fs::read_dir(&pins)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with(&format!("{name}@")), "{names:?}");
    let pin_file = pins.join(&names[0]);
    assert_eq!(
        fs::read_to_string(&pin_file).unwrap(),
        format!("sha256 {fp}\n")
    );
    assert!(!config.join("freerdp").exists());

    // Again, through a new tunnel: bkt's pin on argv, A accepted (147
    // again, past TLS), no new pin.
    let (port2, _, stderr) = run(&format!("/cert:deny,fingerprint:sha256:{fp}"));
    env.log(&format!("tunnel ports: {port1}, then {port2}"));
    assert!(
        stderr.contains("exited with code 147: connection failed (transport)"),
        "{stderr}"
    );
    pinned(&names);
    assert_eq!(
        fs::read_to_string(&pin_file).unwrap(),
        format!("sha256 {fp}\n")
    );

    // The guest's certificate changes (B): refused, as locally.
    drop(standin_a);
    let _standin_b = standin(&b, port);
    let (port3, _, stderr) = run(&format!("/cert:deny,fingerprint:sha256:{fp}"));
    assert!(
        stderr.contains(&format!(
            "error: the RDP certificate of 127.0.0.1:{port3} changed since the last connection, \
             and xfreerdp refused it: {name} was recreated, or someone is in between\n\
             hint: if you recreated {name}, drop the certificate bkt pinned for it and connect \
             again: rm {}\n",
            pin_file.display()
        )),
        "{stderr}"
    );
    pinned(&names);
}
