//! Commands on a libvirt host reached over ssh (`qemu+ssh://`): the fake
//! `ssh` answers as OpenSSH and the host's tools did when fixtures/ssh/ was
//! recorded; the master's argv, the calls over it and the errors are
//! asserted.

use crate::harness::{World, argv, fixture, has_args, mentions, poll_until};

pub(crate) const URI: &str =
    "qemu+ssh://root@127.0.0.1:2222/system?keyfile=/keys/id_vm&no_verify=1";
/// The one virsh call of `status`.
const BATCH: &str = "echo @@bkt node; nodeinfo; echo @@bkt leases; net-dhcp-leases default; echo @@bkt saved; list --all --name --with-managed-save; echo @@bkt domstats; domstats --raw --state --vcpu --balloon --block";
/// What every ssh call starts with, the socket's directory replaced.
pub(crate) const SSH: [&str; 15] = [
    "ssh",
    "-S",
    "$SOCK",
    "-o",
    "BatchMode=yes",
    "-o",
    "ConnectTimeout=15",
    "-p",
    "2222",
    "-l",
    "root",
    "-i",
    "/keys/id_vm",
    "-o",
    "StrictHostKeyChecking=no",
];

/// The argv of `virsh -c URI ARGS` on this file's ssh URI.
fn virsh_there(args: &[&str]) -> Vec<String> {
    argv!["virsh", "-c", URI, ..args]
}

/// bkt's master connection to the host, started first.
pub(crate) fn master() -> Vec<String> {
    argv![
        ..SSH,
        "-M",
        "-o",
        "ControlPersist=no",
        "-f",
        "-N",
        "--",
        "127.0.0.1"
    ]
}

/// The master ended, as bkt ends.
pub(crate) fn master_exit() -> Vec<String> {
    argv![..SSH, "-O", "exit", "--", "127.0.0.1"]
}

/// `line` run by the host's shell over the master: one argument.
pub(crate) fn host_shell(line: &str) -> Vec<String> {
    argv![
        ..SSH,
        "-o",
        "ControlMaster=no",
        "-T",
        "--",
        "127.0.0.1",
        line
    ]
}

/// The free-space look at the images directory on the host.
fn df_call() -> Vec<String> {
    host_shell(
        "p=/var/lib/libvirt/images; \
         while [ ! -e \"$p\" ]; do p=$(dirname -- \"$p\"); done; df -PB1 -- \"$p\"",
    )
}

/// A world with a fake ssh: the master starts (recording the mode of the
/// socket's directory), commands over it answer from the recordings.
pub(crate) fn world() -> World {
    let w = World::new();
    w.install_fake("ssh");
    w.rule("ssh", "* -M -o ControlPersist=no -f -N -- 127.0.0.1")
        .sh("/usr/bin/stat -c %a \"${2%/m}\" >\"$FAKE_DIR/sockdir-mode\"\n")
        .recorded("ssh/master-started");
    w.rule("ssh", "* -O exit -- 127.0.0.1")
        .recorded("ssh/master-exit");
    w.rule("ssh", "* -T -- 127.0.0.1 p=* df -PB1 *")
        .recorded("ssh/df");
    w.rule("virsh", "* nodeinfo")
        .out(&fixture("virsh/nodeinfo.txt"));
    w
}

/// The calls, the random socket directory replaced by `$SOCK`; and that
/// directory, gone once bkt ended.
pub(crate) fn calls(w: &World) -> Vec<Vec<String>> {
    let re = regex::Regex::new(r"/tmp/bkt-ssh\.[A-Za-z0-9]+/m").unwrap();
    let calls = w.calls();
    for a in calls.iter().flatten() {
        if let Some(m) = re.find(a) {
            let dir = std::path::Path::new(m.as_str()).parent().unwrap();
            assert!(!dir.exists(), "{} left behind", dir.display());
        }
    }
    calls
        .iter()
        .map(|c| {
            c.iter()
                .map(|a| re.replace_all(a, "$$SOCK").into_owned())
                .collect()
        })
        .collect()
}

#[test]
fn status_over_ssh_asks_the_host_through_one_master() {
    let w = world();
    w.rule("virsh", "-c * echo @@bkt node; *")
        .out(&fixture("virsh/status-batch-node-running.txt").replace("192.168.122.4", "127.0.0.2"));
    host_probe_says(&w, "127.0.0.2", "refused");
    w.write_manifest(serde_json::json!({"vms": [
        {"name": "tiny", "type": "windows11", "disk": "/var/lib/libvirt/images/tiny.qcow2",
         "created": "2026-01-25", "rdp_enabled": true, "notes": "on the server",
         "uri": URI, "mac": "52:54:00:b4:b3:60"}
    ]}));
    let r = w.bkt(&["vm", "-c", URI, "status"]);
    r.success();
    assert_eq!(
        r.stdout(),
        "NAME  STATE     CPUS  MEMORY   DISK (used/size)  IP         RDP      AUTO-SAVE  NOTES
off   shut off  2     1 GiB    0/4 GiB           -          -        -          (not in manifest)
tiny  running   1     256 MiB  -                 127.0.0.2  refused  off        on the server
"
    );
    assert_eq!(r.stderr(), "");
    assert_eq!(sockdir_mode(&w), "700");
    // One master for the whole command, started first (libvirt's own ssh
    // goes through it too) and ended as bkt ends; one virsh, with the
    // host's size; the probe of the guest's port and the free space are
    // the host's.
    assert_eq!(
        calls(&w),
        [
            master(),
            argv!["virsh", "-c", URI, BATCH],
            probe_call("0.150", "127.0.0.2"),
            df_call(),
            master_exit(),
        ]
    );
}

/// The host's probe of `ip`:3389 answers `state` (open, refused).
pub(crate) fn host_probe_says(w: &World, ip: &str, state: &str) {
    w.rule(
        "ssh",
        &format!("* -T -- 127.0.0.1 (e=$(timeout * bash -c 'exec 3<>/dev/tcp/{ip}/3389'*"),
    )
    .out(&format!("0 {state}\n"));
}

/// The ssh call probing `ip`:3389 on the host, with a timeout of `secs`.
fn probe_call(secs: &str, ip: &str) -> Vec<String> {
    host_shell(&format!(
        "(e=$(timeout {secs} bash -c 'exec 3<>/dev/tcp/{ip}/3389' 2>&1); \
         r=$?; if [ $r = 0 ]; then echo 0 open; else case $e in *'Connection refused'*) echo 0 refused;; \
         *) echo 0 noanswer;; esac; fi) & wait"
    ))
}

/// `t2` shut off, two VMs running (the recorded domstats).
fn t2_shut_off_among_running(w: &World) {
    w.rule("virsh", "* domstate --reason t2")
        .out(&fixture("virsh/domstate-reason-shutoff-shutdown.txt"));
    w.rule("virsh", "* domstats *")
        .out(&fixture("virsh/domstats-three.txt"));
}

fn sockdir_mode(w: &World) -> String {
    std::fs::read_to_string(w.path("sockdir-mode"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn start_over_ssh_weighs_the_hosts_size_from_libvirt() {
    // The harness pins this machine's size (16G, 8 cores): the remote host
    // is what libvirt's nodeinfo says (24684096 KiB, 2 CPUs).
    let w = world();
    w.nothing_saved();
    t2_shut_off_among_running(&w);
    w.rule("virsh", "* start t2").out("Domain 't2' started\n\n");
    let r = w.bkt(&["vm", "-c", URI, "start", "t2"]);
    r.success();
    assert_eq!(r.stdout(), "Started t2\n");
    assert_eq!(
        r.stderr(),
        "⚠ with it, 3 running VMs use 4 vCPUs, more than half of the host's 2 cores\n"
    );
    assert_eq!(
        calls(&w),
        [
            master(),
            virsh_there(&["domstate", "--reason", "t2"]),
            virsh_there(&[
                "domstats",
                "--raw",
                "--state",
                "--vcpu",
                "--balloon",
                "--block"
            ]),
            virsh_there(&["nodeinfo"]),
            df_call(),
            virsh_there(&["dominfo", "t2"]),
            virsh_there(&["start", "t2"]),
            master_exit(),
        ]
    );
}

#[test]
fn stop_over_ssh_logs_in_once_and_libvirt_goes_through_that() {
    // Only libvirt is asked; its ssh (run here the way libvirt runs it, from
    // virsh's PATH) finds bkt's, which goes through the master: no
    // handshake of its own.
    let w = world();
    w.shuts_down_after("windows", 1);
    w.rule_first("virsh", "* shutdown windows --mode acpi")
        .sh("ssh -p 2222 -l root -T -e none -- 127.0.0.1 sh -c true\n")
        .out("Domain 'windows' is being shutdown\n\n");
    w.rule(
        "ssh",
        "* -p 2222 -l root -T -e none -- 127.0.0.1 sh -c true",
    );
    let r = w.bkt(&["vm", "-c", URI, "stop", "windows"]);
    r.success()
        .stdout_like(r"^windows is shut off \(shutdown\) after \ds\n$");
    assert_eq!(
        calls(&w),
        [
            master(),
            virsh_there(&["domstate", "--reason", "windows"]),
            virsh_there(&["shutdown", "windows", "--mode", "acpi"]),
            argv![
                "ssh",
                "-S",
                "$SOCK",
                "-o",
                "ControlMaster=no",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=15",
                "-p",
                "2222",
                "-l",
                "root",
                "-T",
                "-e",
                "none",
                "--",
                "127.0.0.1",
                "sh",
                "-c",
                "true"
            ],
            virsh_there(&["domstate", "--reason", "windows"]),
            master_exit(),
        ]
    );
}

#[test]
fn an_unreachable_host_is_said_with_its_fix() {
    // bkt logs in first: its master is what finds nothing listening, and
    // libvirt is never asked.
    let w = world();
    w.rule_first("ssh", "* -M -o ControlPersist=no -f -N -- 127.0.0.1")
        .recorded("ssh/master-unreachable");
    // Where the recording found nothing listening.
    let uri = URI.replace(":2222/", ":2223/");
    let r = w.bkt(&["vm", "-c", &uri, "status"]);
    r.failure();
    assert_eq!(r.stdout(), "");
    assert_eq!(
        r.stderr(),
        "error: cannot reach 127.0.0.1 over ssh (ssh: connect to host 127.0.0.1 port 2223: Connection refused)
hint: check that the host is up and runs sshd, and that --connect names it right: `ssh -p 2223 root@127.0.0.1 true` should work
"
    );
    assert_eq!(
        calls(&w),
        [argv![
            ..SSH.map(|a| if a == "2222" { "2223" } else { a }),
            "-M",
            "-o",
            "ControlPersist=no",
            "-f",
            "-N",
            "--",
            "127.0.0.1"
        ]]
    );
}

/// libvirt's own ssh failing (the host went away after bkt logged in, or
/// libvirt was told another way in): said as ssh's failure, with its fix.
#[test]
fn libvirts_own_ssh_failing_is_said_with_its_fix() {
    let w = world();
    w.rule("virsh", "-c * echo @@bkt node; *")
        .recorded("ssh/virsh-unreachable");
    let r = w.bkt(&["vm", "-c", URI, "status"]);
    r.failure();
    assert_eq!(r.stdout(), "");
    assert_eq!(
        r.stderr(),
        format!(
            "error: cannot list the VMs
caused by: cannot reach 127.0.0.1 over ssh (ssh: connect to host 127.0.0.1 port 2223: Connection refused)
caused by: `virsh -c '{URI}' '{BATCH}'` failed (exit status: 1)
--- stderr
{}hint: check that the host is up and runs sshd, and that --connect names it right: `ssh -p 2222 root@127.0.0.1 true` should work
",
            fixture("ssh/virsh-unreachable.err")
        )
    );
    assert_eq!(
        calls(&w),
        [master(), argv!["virsh", "-c", URI, BATCH], master_exit(),]
    );
}

/// libvirt's own ssh refused by the host (recorded: a key it does not
/// list): said as a refused key, not as libvirt's failure.
#[test]
fn libvirts_own_ssh_refused_is_said_as_a_refused_key() {
    let w = world();
    w.rule("virsh", "-c * echo @@bkt node; *")
        .recorded("ssh/virsh-auth-refused");
    let r = w.bkt(&["vm", "-c", URI, "status"]);
    r.failure();
    assert_eq!(r.stdout(), "");
    let err = r.stderr();
    assert!(
        err.starts_with(
            "error: cannot list the VMs\n\
             caused by: ssh could not log in to root@127.0.0.1: the host refused every key \
             (root@127.0.0.1: Permission denied (publickey).)\n"
        ),
        "{err}"
    );
    // The host's warning ended with CRLF; the error shows it by lines.
    assert!(
        err.ends_with(&format!(
            "--- stderr\n{}hint: bkt never asks for an ssh password (BatchMode): give it a key \
             the host accepts, `ssh-copy-id -p 2222 root@127.0.0.1`, or name one in the URI \
             (?keyfile=PATH)\n",
            fixture("ssh/virsh-auth-refused.err").replace("\r\n", "\n")
        )),
        "{err}"
    );
}

#[test]
fn a_refused_key_is_said_with_its_fix_and_nothing_is_left() {
    // bkt's master, with the URI's key, is refused: the first thing run.
    let w = world();
    w.rule_first("ssh", "* -M -o ControlPersist=no -f -N -- 127.0.0.1")
        .recorded("ssh/master-auth-refused");
    t2_shut_off_among_running(&w);
    let r = w.bkt(&["vm", "-c", URI, "start", "t2"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: ssh could not log in to root@127.0.0.1: the host refused every key (root@127.0.0.1: Permission denied (publickey).)
hint: bkt never asks for an ssh password (BatchMode): give it a key the host accepts, `ssh-copy-id -p 2222 root@127.0.0.1`, or name one in the URI (?keyfile=PATH)
"
    );
    // Never started: nothing to end, libvirt never asked; the socket's
    // directory is gone.
    assert_eq!(calls(&w), [master()]);
}

#[test]
fn an_unknown_host_key_is_said_with_its_fix() {
    let w = world();
    let uri = "qemu+ssh://root@127.0.0.1:2222/system?keyfile=/keys/id_vm";
    w.rule_first("ssh", "* -M -o ControlPersist=no -f -N -- 127.0.0.1")
        .recorded("ssh/master-host-key-unknown");
    t2_shut_off_among_running(&w);
    let r = w.bkt(&["vm", "-c", uri, "start", "t2"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: ssh does not trust 127.0.0.1's host key (Host key verification failed.)
hint: check the key and accept it once by hand, `ssh -p 2222 root@127.0.0.1 true`, or name a known_hosts file in the URI (?known_hosts=PATH)
"
    );
    // The master, without the `-o StrictHostKeyChecking=no` of no_verify=1.
    assert_eq!(
        calls(&w)[0],
        argv![
            ..&SSH[..SSH.len() - 2],
            "-M",
            "-o",
            "ControlPersist=no",
            "-f",
            "-N",
            "--",
            "127.0.0.1"
        ]
    );
}

#[test]
fn a_uri_that_would_hand_ssh_an_option_is_refused_before_anything_runs() {
    let w = world();
    let r = w.bkt(&[
        "vm",
        "-c",
        "qemu+ssh://-oProxyCommand=touch%20x/system",
        "status",
    ]);
    assert_eq!(r.code(), 2);
    assert!(
        r.stderr().contains(
            "invalid libvirt URI \"qemu+ssh://-oProxyCommand=touch%20x/system\": the host \"-oProxyCommand=touch%20x\" is not a host name or address"
        ),
        "{}",
        r.stderr()
    );
    assert_eq!(calls(&w), Vec::<Vec<String>>::new());
}

#[test]
fn ip_over_ssh_says_where_the_address_is_reachable() {
    let w = world();
    w.rule("virsh", "* domstate --reason tiny")
        .out(&fixture("virsh/domstate-reason-running.txt"));
    w.rule("virsh", "* domifaddr tiny --source lease")
        .out(&fixture("virsh/domifaddr-lease.txt").replace("192.168.122.", "127.0.0."));
    let r = w.bkt(&["vm", "-c", URI, "ip", "tiny"]);
    r.success();
    // The address alone on stdout, for scripts; where it works on stderr.
    let ip = r.stdout();
    assert!(ip.starts_with("127.0.0.") && ip.ends_with('\n'), "{ip}");
    assert_eq!(
        r.stderr(),
        format!(
            "{} is on 127.0.0.1's network: reachable from 127.0.0.1 only, not from here \
             (`bkt vm connect tiny` tunnels Remote Desktop through ssh)\n",
            ip.trim()
        )
    );
    // libvirt knows the address: after the login, only libvirt is asked.
    let c = calls(&w);
    assert_eq!(c[0], master());
    assert!(c[1..c.len() - 1].iter().all(|c| c[0] == "virsh"), "{c:?}");
}

#[test]
fn connect_over_ssh_hands_the_client_a_tunnel() {
    // A graphical session, a password for the client on stdin.
    let w = world().env("DISPLAY", ":42");
    let w = w.env("BKT_VM_RDP_PASSWORD", "pw");
    w.nothing_saved();
    w.rule("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-running.txt"));
    w.rule("virsh", "* domifaddr windows --source lease")
        .out(&fixture("virsh/domifaddr-lease.txt").replace("192.168.122.4", "127.0.0.11"));
    // The guest's port answers on the host's side (nothing listens here).
    host_probe_says(&w, "127.0.0.11", "open");
    w.rule(
        "ssh",
        "* -O forward -L 127.0.0.1:*:127.0.0.11:3389 -- 127.0.0.1",
    )
    .recorded("ssh/master-forward");
    w.install_fake("xfreerdp3");
    w.rule("xfreerdp3", "/version")
        .out(&fixture("freerdp/xfreerdp3-version.txt"));
    w.rule("xfreerdp3", "/v:*").out("");
    let r = w.bkt(&["vm", "-c", URI, "connect", "windows", "--user", "anna"]);
    r.success();
    let c = calls(&w);
    let port = forwarded_port(&c, "127.0.0.11:3389");
    let rdp = argv![
        "xfreerdp3",
        format!("/v:127.0.0.1:{port}"),
        "/u:anna",
        "/from-stdin:force",
        "/cert:tofu",
        "+dynamic-resolution",
        "+clipboard",
        "/sound",
        "/t:windows"
    ];
    assert_eq!(r.stdout(), format!("→ FreeRDP 3.10.3: {}\n", rdp.join(" ")));
    assert_eq!(
        r.stderr(),
        format!("RDP to 127.0.0.11:3389 through an ssh tunnel at 127.0.0.1:{port}\n")
    );
    assert_eq!(
        c,
        [
            master(),
            virsh_there(&["domstate", "--reason", "windows"]),
            virsh_there(&["domifaddr", "windows", "--source", "lease"]),
            probe_call("0.500", "127.0.0.11"),
            argv![
                ..SSH,
                "-O",
                "forward",
                "-L",
                format!("127.0.0.1:{port}:127.0.0.11:3389"),
                "--",
                "127.0.0.1"
            ],
            argv!["xfreerdp3", "/version"],
            rdp,
            master_exit(),
        ]
    );
}

/// The ssh user's id on the host (`id -u`): root, or the recorded
/// `nobody` in the libvirt group.
fn logged_in_as(w: &World, uid: &str) {
    let r = w.rule("ssh", "* -T -- 127.0.0.1 id -u");
    if uid == "0" {
        r.out("0\n");
    } else {
        r.recorded("ssh/id-nonroot");
    }
}

/// A host that answers doctor as the recorded one did: libvirt, /dev/kvm,
/// swtpm 0.7.1; here the clients are installed.
fn doctor_world(uid: &str) -> World {
    let w = world().env("DISPLAY", ":42");
    w.libvirt_up();
    logged_in_as(&w, uid);
    w.rule(
        "ssh",
        "* -T -- 127.0.0.1 stat -L -c '%f %s %u %g' -- /dev/kvm",
    )
    .recorded("ssh/stat-dev-kvm");
    w.rule("ssh", "* -T -- 127.0.0.1 command -v swtpm *")
        .recorded("ssh/swtpm-version");
    w.install_fake("virt-viewer");
    w.install_fake("xfreerdp3");
    w.rule("xfreerdp3", "/version")
        .out(&fixture("freerdp/xfreerdp3-version.txt"));
    w
}

/// This machine's part of the doctor screen, the world's fakes installed.
const THIS_MACHINE: &str = "This machine
  ✓ ssh client     ssh (to reach 127.0.0.1)
  ✓ tools          virsh 11.3.0, virt-install 4.1.0, qemu-img 10.0.2
  ✓ RDP client     xfreerdp3 (FreeRDP 3.10.3)
  ✓ SPICE viewer   virt-viewer
";

#[test]
fn doctor_over_ssh_checks_the_host_there_and_the_clients_here() {
    let w = doctor_world("0");
    let r = w.bkt(&["vm", "-c", URI, "doctor"]);
    r.success();
    let out = crate::normalize(&w, &r.stdout());
    assert_eq!(
        out,
        format!(
            "Host 127.0.0.1 (over ssh)
  ✓ ssh            logged in as root@127.0.0.1, port 2222
  ✓ libvirt        {URI} (libvirt 11.3.0, QEMU 10.0.2)
  ✓ KVM            /dev/kvm exists on 127.0.0.1
  ⚠ network        libvirt network \"default\" is active but does not start on boot
    fix: virsh -c '{URI}' net-autostart default
  ✓ Secure Boot    OVMF_CODE_4M.ms.fd (Microsoft keys enrolled)
  ✓ swtpm          swtpm 0.7.1 on 127.0.0.1
  ~ disk space     (depends on the machine)
{THIS_MACHINE}"
        )
    );
    // KVM, swtpm and the free space are the host's: asked over the one
    // master, never looked up here (no local /dev/kvm, no local swtpm).
    let c = calls(&w);
    assert_eq!(
        c.iter().filter(|l| has_args(l, &["-M"])).count(),
        1,
        "{c:#?}"
    );
    assert!(c.contains(&host_shell(
        "command -v swtpm >/dev/null || exit 1; \
         LC_ALL=C swtpm --version 2>&1; true"
    )));
    assert_eq!(c.last().unwrap(), &master_exit());
    let r = w.bkt(&["vm", "-c", URI, "doctor", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(v["host"][0]["label"], "ssh");
    assert_eq!(v["host"][5]["detail"], "swtpm 0.7.1 on 127.0.0.1");
    // The free space is the host's df (fixtures/ssh/df.txt).
    assert_eq!(
        v["host"][6]["detail"],
        format!("76 GiB free in {}", w.p("images"))
    );
    let local: Vec<&str> = v["local"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["label"].as_str().unwrap())
        .collect();
    assert_eq!(local, ["ssh client", "tools", "RDP client", "SPICE viewer"]);
}

#[test]
fn doctor_over_ssh_as_another_user_says_snapshots_need_root() {
    let w = doctor_world("65534");
    let uri = URI.replace("root@", "nobody@");
    let r = w.bkt(&["vm", "-c", &uri, "doctor"]);
    r.success();
    let out = r.stdout();
    assert!(
        out.starts_with(&format!(
            "Host 127.0.0.1 (over ssh)
  ✓ ssh            logged in as nobody@127.0.0.1, port 2222 (uid 65534)
  ⚠ snapshots      not root on 127.0.0.1: snapshots copy libvirt's NVRAM and TPM files, which only root may read there
    fix: for snapshots, connect as root: bkt vm --connect '{URI}' snapshot ...
"
        )),
        "{out}"
    );
}

#[test]
fn doctor_over_ssh_says_what_the_user_lacks_on_the_host() {
    // Logged in, but polkit there lets only the libvirt group use libvirt.
    let w = doctor_world("65534");
    w.rule_first("virsh", "* version")
        .recorded("ssh/virsh-no-libvirt-access");
    let uri = URI.replace("root@", "nobody@");
    let r = w.bkt(&["vm", "-c", &uri, "doctor"]);
    r.failure();
    assert!(
        r.stdout().contains(&format!(
            "  ✗ libvirt        cannot reach {uri}: authentication unavailable: no polkit agent available to authenticate action 'org.libvirt.unix.manage'
    fix: add nobody to the libvirt group there (`ssh -p 2222 nobody@127.0.0.1 sudo usermod -aG libvirt nobody`; it counts from the next login), or connect as root: --connect '{URI}'
  ✓ KVM            /dev/kvm exists on 127.0.0.1
  ✓ swtpm          swtpm 0.7.1 on 127.0.0.1
This machine
"
        )),
        "{}",
        r.stdout()
    );
    assert_eq!(r.stderr(), "error: 1 check failed\n");
    // Every other command says the same, with the same fix.
    w.rule_first("virsh", "-c * echo @@bkt node; *")
        .recorded("ssh/virsh-no-libvirt-access");
    let r = w.bkt(&["vm", "-c", &uri, "status"]);
    r.failure();
    assert!(
        r.stderr().starts_with(
            "error: cannot list the VMs\ncaused by: nobody may not use libvirt on 127.0.0.1\n"
        ),
        "{}",
        r.stderr()
    );
    assert!(
        r.stderr().ends_with(&format!(
            "hint: add nobody to the libvirt group there (`ssh -p 2222 nobody@127.0.0.1 sudo usermod -aG libvirt nobody`; it counts from the next login), or connect as root: --connect '{URI}'\n"
        )),
        "{}",
        r.stderr()
    );
}

#[test]
fn doctor_over_ssh_with_the_host_unreachable_says_it_once_per_side() {
    let w = doctor_world("0");
    let uri = URI.replace(":2222/", ":2223/");
    w.rule_first("ssh", "* -M -o ControlPersist=no -f -N -- 127.0.0.1")
        .recorded("ssh/master-unreachable");
    w.rule_first("virsh", "* version")
        .recorded("ssh/virsh-unreachable");
    let r = w.bkt(&["vm", "-c", &uri, "doctor"]);
    r.failure();
    let fix = "check that the host is up and runs sshd, and that --connect names it right: \
               `ssh -p 2223 root@127.0.0.1 true` should work";
    assert_eq!(
        r.stdout(),
        format!(
            "Host 127.0.0.1 (over ssh)
  ✗ ssh            cannot reach 127.0.0.1 over ssh (ssh: connect to host 127.0.0.1 port 2223: Connection refused)
    fix: {fix}
  ✗ libvirt        cannot reach {uri}: Cannot recv data: ssh: connect to host 127.0.0.1 port 2223: Connection refused: Connection reset by peer
    fix: {fix}
{THIS_MACHINE}"
        )
    );
    assert_eq!(r.stderr(), "error: 2 checks failed\n");
}

/// A shut-off UEFI + TPM VM `t1` on the host, as the recorded definition.
fn snapshot_world(uid: &str) -> World {
    let w = world();
    w.nothing_saved();
    logged_in_as(&w, uid);
    w.rule("virsh", "* domstate --reason t1")
        .out(&fixture("virsh/domstate-reason-shutoff-shutdown.txt"));
    w.rule("virsh", "* snapshot-list t1 --name").out("s0\n\n");
    w.rule("virsh", "* dumpxml --inactive t1")
        .out(&fixture("virsh/dumpxml-windows-running.xml").replace("t1_VARS", "bkt-rsnap_VARS"));
    w
}

/// The NVRAM of the recorded host's VM (fixtures/ssh/stat-nvram-denied.err).
const NVRAM: &str = "/var/lib/libvirt/qemu/nvram/bkt-rsnap_VARS.fd";

#[test]
fn a_snapshot_over_ssh_as_a_user_other_than_root_is_refused_before_anything() {
    let w = snapshot_world("65534");
    w.rule("ssh", &format!("* -T -- 127.0.0.1 stat * -- {NVRAM}"))
        .recorded("ssh/stat-nvram-denied");
    let uri = URI.replace("root@", "nobody@");
    let r = w.bkt(&["vm", "-c", &uri, "snapshot", "create", "t1", "clean"]);
    r.failure();
    assert_eq!(r.stdout(), "");
    assert_eq!(
        r.stderr(),
        format!(
            "error: a snapshot of t1 needs root on 127.0.0.1; nothing was changed
caused by: cannot read the NVRAM {NVRAM}
caused by: {}hint: {NVRAM} on 127.0.0.1 belongs to libvirt; snapshots there need root on 127.0.0.1: bkt vm --connect '{URI}' snapshot ... (with a key root accepts there)
",
            fixture("ssh/stat-nvram-denied.err")
        )
    );
    // Asked, nothing made: no directory, no copy, no disk snapshot.
    let c = calls(&w);
    assert!(
        c.iter().all(|l| !mentions(l, "mkdir")
            && !mentions(l, "cp -a")
            && !mentions(l, "snapshot-create")),
        "{c:#?}"
    );
}

#[test]
fn a_snapshot_delete_over_ssh_as_another_user_deletes_nothing() {
    let w = snapshot_world("65534");
    let root = "/var/lib/libvirt/images/t1.snapshots";
    w.rule("ssh", &format!("* -T -- 127.0.0.1 stat -c * -- {root}"))
        .recorded("ssh/stat-dir");
    w.rule("ssh", &format!("* -T -- 127.0.0.1 test -w {root}"))
        .recorded("ssh/test-w-denied");
    let uri = URI.replace("root@", "nobody@");
    let r = w.bkt(&["vm", "-c", &uri, "snapshot", "delete", "t1", "s0"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        format!(
            "error: deleting snapshot s0 of t1 needs root on 127.0.0.1; nothing was changed
caused by: cannot write in {root}
caused by: permission denied
hint: {root} on 127.0.0.1 belongs to libvirt; snapshots there need root on 127.0.0.1: bkt vm --connect '{URI}' snapshot ... (with a key root accepts there)
"
        )
    );
    // libvirt's half is not deleted either.
    assert!(calls(&w).iter().all(|l| !mentions(l, "snapshot-delete")));
}

#[test]
fn a_session_over_ssh_keeps_its_tpm_state_under_the_remote_home() {
    // The local HOME is the world's; the host's is what it printed.
    let w = snapshot_world("65534");
    let xml = regex::Regex::new("(?s)<nvram.*</nvram>")
        .unwrap()
        .replace(&fixture("virsh/dumpxml-windows-running.xml"), "")
        .into_owned();
    w.rule_first("virsh", "* dumpxml --inactive t1").out(&xml);
    w.rule("ssh", "* -T -- 127.0.0.1 printf '%s' \"$HOME\"")
        .recorded("ssh/home");
    let uri = URI
        .replace("root@", "nobody@")
        .replace("/system", "/session");
    w.bkt(&["vm", "-c", &uri, "snapshot", "create", "t1", "clean"])
        .failure();
    let home = fixture("ssh/home.txt");
    assert!(home.starts_with('/') && !home.contains('\n'), "{home:?}");
    let tpm = format!("{home}/.config/libvirt/qemu/swtpm/405a8b53-ad14-470a-9963-b210e9f1e0aa");
    assert!(
        calls(&w).contains(&argv![
            ..SSH.map(|a| if a == "root" { "nobody" } else { a }),
            "-o",
            "ControlMaster=no",
            "-T",
            "--",
            "127.0.0.1",
            format!("stat -c '%f %s %u %g' -- {tpm}")
        ]),
        "{:#?}",
        calls(&w)
    );
}

#[test]
fn doctor_over_ssh_names_the_host_for_a_missing_swtpm() {
    // Installed here or not, it is the host's swtpm that libvirt starts.
    let w = doctor_world("0");
    w.rule_first("ssh", "* -T -- 127.0.0.1 command -v swtpm *")
        .recorded("ssh/program-missing");
    let r = w.bkt(&["vm", "-c", URI, "doctor"]);
    r.failure();
    assert!(
        r.stdout().contains(
            "  ✗ swtpm          not installed on 127.0.0.1: Windows 11 needs its TPM 2.0 emulator
    fix: on 127.0.0.1: apt install swtpm swtpm-tools / dnf install swtpm swtpm-tools
"
        ),
        "{}",
        r.stdout()
    );
}

/// The local port of the master's forward to `target` among the calls.
fn forwarded_port(calls: &[Vec<String>], target: &str) -> String {
    let re =
        regex::Regex::new(&format!(r"^127\.0\.0\.1:(\d+):{}$", regex::escape(target))).unwrap();
    calls
        .iter()
        .flat_map(|c| c.windows(4))
        .find_map(|a| {
            (a[..3] == ["-O", "forward", "-L"])
                .then(|| re.captures(&a[3]))
                .flatten()
        })
        .unwrap_or_else(|| panic!("no forward to {target} in {calls:#?}"))[1]
        .to_string()
}

/// The VM's SPICE display on the host's 127.0.0.1:5900 (recorded), and
/// the master forwarding a local port to it.
fn display_on_the_hosts_loopback(w: &World) {
    w.rule("virsh", "* domdisplay --type spice windows")
        .out(&fixture("virsh/domdisplay-spice.txt"));
    w.rule(
        "ssh",
        "* -O forward -L 127.0.0.1:*:127.0.0.1:5900 -- 127.0.0.1",
    )
    .recorded("ssh/master-forward");
}

/// A running VM over ssh, the local viewers `viewers` installed.
fn spice_world(viewers: &[&str]) -> World {
    let w = world().env("DISPLAY", ":42");
    w.nothing_saved();
    w.rule("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-running.txt"));
    for v in viewers {
        w.install_fake(v);
    }
    w
}

#[test]
fn spice_over_ssh_with_only_virt_viewer_goes_through_bkts_connection() {
    let w = spice_world(&["virt-viewer"]);
    // What PATH the viewer got: its ssh is bkt's wrapper.
    w.rule("virt-viewer", "*")
        .sh("/usr/bin/printf '%s' \"$PATH\" >\"$FAKE_DIR/viewer-path\"\n");
    let r = w.bkt(&["vm", "-c", URI, "connect", "windows", "--spice"]);
    r.success();
    let c = calls(&w);
    assert_eq!(
        c,
        [
            master(),
            virsh_there(&["domstate", "--reason", "windows"]),
            argv!["virt-viewer", "--connect", URI, "--attach", "windows"],
            master_exit(),
        ]
    );
    let path = std::fs::read_to_string(w.path("viewer-path")).unwrap();
    let first = path.split(':').next().unwrap();
    assert!(
        regex::Regex::new(r"^/tmp/bkt-ssh\.[A-Za-z0-9]+/bin$")
            .unwrap()
            .is_match(first),
        "{path}"
    );
}

#[test]
fn spice_over_ssh_with_remote_viewer_goes_through_a_tunnel() {
    // virt-viewer too (one package has both): over ssh it would need `nc`
    // on the host, so remote-viewer and bkt's tunnel are used.
    let w = spice_world(&["virt-viewer", "remote-viewer"]);
    display_on_the_hosts_loopback(&w);
    w.rule("remote-viewer", "*");
    let r = w.bkt(&["vm", "-c", URI, "connect", "windows", "--spice"]);
    r.success();
    let c = calls(&w);
    let port = forwarded_port(&c, "127.0.0.1:5900");
    let viewer = argv![
        "remote-viewer",
        "--title",
        "windows",
        format!("spice://127.0.0.1:{port}")
    ];
    assert_eq!(r.stdout(), format!("→ {}\n", viewer.join(" ")));
    assert_eq!(
        c,
        [
            master(),
            virsh_there(&["domstate", "--reason", "windows"]),
            virsh_there(&["domdisplay", "--type", "spice", "windows"]),
            argv![
                ..SSH,
                "-O",
                "forward",
                "-L",
                format!("127.0.0.1:{port}:127.0.0.1:5900"),
                "--",
                "127.0.0.1"
            ],
            viewer,
            master_exit(),
        ]
    );
}

/// bkt killed outright (SIGKILL: no handler, no destructor) while a
/// viewer runs: the master, which lives in a session of its own, is still
/// ended and bkt's private directory removed, by the shell bkt left for
/// that.
#[test]
fn the_master_ends_even_when_bkt_is_killed() {
    let w = spice_world(&["remote-viewer"]);
    display_on_the_hosts_loopback(&w);
    // The viewer runs until the test lets it go.
    w.rule("remote-viewer", "*").sh(&w.hold());
    let mut child = w
        .command(&["vm", "-c", URI, "connect", "windows", "--spice"])
        .spawn()
        .unwrap();
    w.wait_held("the viewer never ran");
    let before = w.calls();
    assert_eq!(before[0][1], "-S", "{before:?}");
    let sock = regex::Regex::new(r"^(/tmp/bkt-ssh\.[A-Za-z0-9]+)/m$")
        .unwrap()
        .captures(&before[0][2])
        .expect("the master's socket")[1]
        .to_string();
    assert!(std::path::Path::new(&sock).exists());
    child.kill().unwrap();
    child.wait().unwrap();
    poll_until("the master was never ended", || {
        w.calls().iter().any(|c| has_args(c, &["-O", "exit"]))
    });
    poll_until("bkt's private directory is left", || {
        !std::path::Path::new(&sock).exists()
    });
    w.release();
    assert_eq!(
        w.last_call(),
        argv![
            ..SSH.map(|a| if a == "$SOCK" {
                format!("{sock}/m")
            } else {
                a.to_string()
            }),
            "-O",
            "exit",
            "--",
            "127.0.0.1"
        ]
    );
}

/// A URI that names another machine over anything but ssh: every command
/// refuses it before it runs anything (no probe of the guest's address
/// here, no RDP client, no file of the host taken for this machine's), and
/// says what to use. From `--connect` and from `LIBVIRT_DEFAULT_URI` alike.
#[test]
fn another_machine_without_ssh_is_refused_before_anything_runs() {
    let w = World::new();
    w.libvirt_up().domains(&["windows"]);
    let commands: [&[&str]; 9] = [
        &["status"],
        &["doctor"],
        &["start", "windows"],
        &["connect", "windows"],
        &["run", "windows", "notepad", "--detach"],
        &["ip", "windows"],
        &["stop", "windows"],
        &["download"],
        &["create", "--iso", "/nonexistent.iso", "--yes"],
    ];
    for (uri, fix) in [
        (
            "qemu+tcp://server/system",
            "qemu+ssh://[user@]server/system",
        ),
        (
            "qemu+tls://127.0.0.1/system",
            "qemu+ssh://[user@]127.0.0.1/system",
        ),
        ("qemu://server/session", "qemu+ssh://[user@]server/session"),
        (
            "qemu+libssh2://anna@server/system?known_hosts=/k",
            "qemu+ssh://anna@server/system?known_hosts=/k",
        ),
    ] {
        let by_env = World::new().env("LIBVIRT_DEFAULT_URI", uri);
        by_env.libvirt_up().domains(&["windows"]);
        for words in commands {
            for (w, args) in [
                (&w, [&["vm", "-c", uri][..], words].concat()),
                (&by_env, [&["vm"][..], words].concat()),
            ] {
                let r = w.bkt(&args);
                assert_eq!(w.calls(), Vec::<Vec<String>>::new(), "{args:?}");
                r.failure();
                assert_eq!(r.stdout(), "", "{uri} {words:?}");
                assert_eq!(
                    r.stderr(),
                    format!(
                        "error: {uri} names another machine, which bkt reaches only over ssh\n\
                         hint: use {fix}\n"
                    ),
                    "{args:?}"
                );
            }
        }
    }
}

/// `run --detach` over ssh: the client gets a tunnel of its own (one more
/// login, in the background), not a forward of bkt's master, so it keeps
/// its connection after bkt (and its master) ended; bkt returns once the
/// guest's side holds the connection, and the tunnel ends when the client
/// does.
#[test]
fn a_detached_client_over_ssh_has_a_tunnel_that_ends_with_it() {
    let w = world()
        .env("DISPLAY", ":42")
        .env("BKT_VM_RDP_PASSWORD", "pw");
    w.nothing_saved();
    w.rule("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-running.txt"));
    w.rule("virsh", "* domifaddr windows --source lease")
        .out(&fixture("virsh/domifaddr-lease.txt").replace("192.168.122.4", "127.0.0.11"));
    host_probe_says(&w, "127.0.0.11", "open");
    w.rule(
        "ssh",
        "* -M -o ControlPersist=no -o ExitOnForwardFailure=yes -f -N -L 127.0.0.1:*:127.0.0.11:3389 -- 127.0.0.1",
    )
    .recorded("ssh/master-started");
    // The host's connections: once the client runs, one established to
    // the guest's 3389 (the recorded table with the remote end of an
    // established line set to 127.0.0.11:3389, as the tunnel's sshd holds).
    let table = fixture("proc/net-tcp.txt").replace(
        "0100007F:DD30 0100007F:AEA1 01",
        "0100007F:DD30 0B00007F:0D3D 01",
    );
    w.rule("ssh", "* -T -- 127.0.0.1 cat /proc/net/tcp /proc/net/tcp6")
        .sh(&format!(
            "[ -e \"$FAKE_DIR/client.pid\" ] && {{ /usr/bin/printf '%s' '{table}'; exit 0; }}\n"
        ));
    w.install_fake("xfreerdp3");
    w.rule("xfreerdp3", "/version")
        .out(&fixture("freerdp/xfreerdp3-version.txt"));
    // The client stays, like a session.
    w.rule("xfreerdp3", "/v:*")
        .sh("/bin/cat >\"$FAKE_DIR/xfreerdp3.stdin\"\n\
         echo $$ >\"$FAKE_DIR/client.pid\"\n\
         exec /bin/sleep 60\n");
    let r = w.bkt(&[
        "vm", "-c", URI, "run", "windows", "notepad", "--user", "anna", "--detach",
    ]);
    let pid: i32 = std::fs::read_to_string(w.path("client.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: signal 0 to the process our test's fake started.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    let at_return = calls(&w);
    // Now the client ends (we started it): its tunnel ends after it.
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    r.success();
    assert!(alive, "the client ended with bkt");
    let tunnel_of = |c: &[String]| c.iter().position(|a| a == "-S").map(|i| c[i + 1].clone());
    let tunnel = &at_return[5];
    let sock = tunnel_of(tunnel).unwrap();
    let port = tunnel[tunnel.len() - 3]
        .strip_prefix("127.0.0.1:")
        .and_then(|f| f.strip_suffix(":127.0.0.11:3389"))
        .unwrap_or_else(|| panic!("{tunnel:?}"))
        .to_string();
    let sock_re = regex::Regex::new(&format!(
        "^{}/ssh-[0-9a-f]{{12}}$",
        regex::escape(&w.p("home/.cache/bkt/vm"))
    ))
    .unwrap();
    assert!(sock_re.is_match(&sock), "{sock}");
    let with_sock = |rest: &[&str]| -> Vec<String> {
        let mut c = argv![..SSH];
        c[2] = sock.clone();
        c.extend(rest.iter().map(|s| s.to_string()));
        c
    };
    let rdp = argv![
        "xfreerdp3",
        format!("/v:127.0.0.1:{port}"),
        "/u:anna",
        "/from-stdin:force",
    ];
    // Its own master with its own login, the forward on its command line
    // (not `-O forward` on bkt's); no forward asked of bkt's master.
    assert_eq!(
        tunnel,
        &with_sock(&[
            "-M",
            "-o",
            "ControlPersist=no",
            "-o",
            "ExitOnForwardFailure=yes",
            "-f",
            "-N",
            "-L",
            &format!("127.0.0.1:{port}:127.0.0.11:3389"),
            "--",
            "127.0.0.1",
        ])
    );
    assert!(
        !at_return.iter().any(|c| has_args(c, &["-O", "forward"])),
        "{at_return:#?}"
    );
    let polls = host_shell("cat /proc/net/tcp /proc/net/tcp6");
    let client = at_return
        .iter()
        .position(|c| c.starts_with(&rdp))
        .unwrap_or_else(|| panic!("{at_return:#?}"));
    assert_eq!(
        at_return[..4],
        [
            master(),
            virsh_there(&["domstate", "--reason", "windows"]),
            argv!["xfreerdp3", "/version"],
            virsh_there(&["domifaddr", "windows", "--source", "lease"]),
        ]
    );
    assert_eq!(at_return[4], probe_call("0.500", "127.0.0.11"));
    // bkt's master ended as bkt did; the tunnel not (yet).
    assert_eq!(at_return.last(), Some(&master_exit()), "{at_return:#?}");
    assert!(
        at_return[6..at_return.len() - 1]
            .iter()
            .all(|c| c == &at_return[client] || c == &polls),
        "{at_return:#?}"
    );
    assert!(at_return.contains(&polls), "{at_return:#?}");
    let end = with_sock(&["-O", "exit", "--", "127.0.0.1"]);
    assert!(!at_return.contains(&end), "{at_return:#?}");
    poll_until("the tunnel ended after the client", || {
        calls(&w).contains(&end)
    });
    assert_eq!(
        std::fs::read_to_string(w.path("xfreerdp3.stdin")).unwrap(),
        "pw\n"
    );
}

/// A VM reached over ssh with FreeRDP 3 as its client, which trusts on
/// first use the way the real one does: with `/cert:tofu` it stores the
/// served certificate (fixtures/freerdp/pinned-cert.pem) in
/// `$XDG_CONFIG_HOME/freerdp/server/HOST_PORT.pem` and notes where that was.
fn pinning_world() -> World {
    let w = world().env("DISPLAY", ":42");
    let w = w.env("BKT_VM_RDP_PASSWORD", "pw");
    w.rule("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-running.txt"));
    w.rule("virsh", "* domifaddr windows --source lease")
        .out(&fixture("virsh/domifaddr-lease.txt").replace("192.168.122.4", "127.0.0.11"));
    host_probe_says(&w, "127.0.0.11", "open");
    w.rule(
        "ssh",
        "* -O forward -L 127.0.0.1:*:127.0.0.11:3389 -- 127.0.0.1",
    )
    .recorded("ssh/master-forward");
    w.install_fake("xfreerdp3");
    w.rule("xfreerdp3", "/version")
        .out(&fixture("freerdp/xfreerdp3-version.txt"));
    let pem = format!(
        "{}/fixtures/freerdp/pinned-cert.pem",
        env!("CARGO_MANIFEST_DIR")
    );
    w.rule("xfreerdp3", "/v:* /u:anna /from-stdin:force /cert:tofu *")
        .sh(&format!(
            "echo \"$XDG_CONFIG_HOME\" >>\"$FAKE_DIR/xdg-seen\"\n\
             v=${{1#/v:}}\n\
             /bin/mkdir -p \"$XDG_CONFIG_HOME/freerdp/server\"\n\
             /bin/cp '{pem}' \"$XDG_CONFIG_HOME/freerdp/server/${{v%:*}}_${{v##*:}}.pem\"\n"
        ))
        .out("");
    w.rule(
        "xfreerdp3",
        &format!("/v:* /u:anna /from-stdin:force /cert:deny,fingerprint:sha256:{PIN} *"),
    )
    .out("");
    w
}

/// The SHA-256 of fixtures/freerdp/pinned-cert.pem's DER.
const PIN: &str = "b9:1b:5e:f1:b3:40:b9:c6:c9:e5:e7:3a:00:49:17:00:\
                   ed:3b:f4:7b:6f:8d:70:03:87:cf:21:47:2d:e9:3d:8e";

fn rdp_call(port: &str, cert: &str) -> Vec<String> {
    argv![
        "xfreerdp3",
        format!("/v:127.0.0.1:{port}"),
        "/u:anna",
        "/from-stdin:force",
        cert,
        "+dynamic-resolution",
        "+clipboard",
        "/sound",
        "/t:windows"
    ]
}

/// The files in bkt's pin store.
fn pins(w: &World) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(w.path("home/.config/bkt/vm/pins"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn the_certificate_over_ssh_is_pinned_per_vm_not_per_tunnel_port() {
    let w = pinning_world();
    let connect = || w.bkt(&["vm", "-c", URI, "connect", "windows", "--user", "anna"]);

    // First use: FreeRDP trusts on first use in this VM's own directory,
    // and bkt takes the certificate it stored there as the VM's pin.
    let r = connect();
    r.success();
    let first = calls(&w);
    let port1 = forwarded_port(&first, "127.0.0.11:3389");
    assert_eq!(
        first.last().unwrap(),
        &master_exit(),
        "the master ends last: {first:#?}"
    );
    assert_eq!(first[first.len() - 2], rdp_call(&port1, "/cert:tofu"));
    let store = pins(&w);
    assert_eq!(store.len(), 1, "{store:?}");
    let key = store[0].clone();
    assert!(
        regex::Regex::new(r"^windows@[0-9a-f]{16}$")
            .unwrap()
            .is_match(&key),
        "{key}"
    );
    let pin_file = w.path(&format!("home/.config/bkt/vm/pins/{key}"));
    assert_eq!(
        std::fs::read_to_string(&pin_file).unwrap(),
        format!("sha256 {PIN}\n")
    );
    assert_eq!(
        std::fs::read_to_string(w.path("xdg-seen")).unwrap(),
        format!("{}/.config/bkt/vm/pins/{key}.first-use\n", w.p("home"))
    );
    // FreeRDP's own store was never the user's.
    assert!(!w.path("home/.config/freerdp").exists());

    // Again, through a new tunnel (its own local port): bkt's pin on argv,
    // no new first use, the store as it was.
    let r = connect();
    r.success();
    let both = calls(&w);
    let second = both[first.len()..].to_vec();
    let port2 = forwarded_port(&second, "127.0.0.11:3389");
    assert_eq!(
        second[second.len() - 2],
        rdp_call(&port2, &format!("/cert:deny,fingerprint:sha256:{PIN}"))
    );
    assert_eq!(pins(&w), std::slice::from_ref(&key));
    assert_eq!(
        std::fs::read_to_string(&pin_file).unwrap(),
        format!("sha256 {PIN}\n")
    );
    assert_eq!(
        std::fs::read_to_string(w.path("xdg-seen"))
            .unwrap()
            .lines()
            .count(),
        1
    );

    // The guest serves another certificate: FreeRDP 3 refuses it as it
    // did against scripts/rdp-standin.py, and bkt stops with the words it
    // says locally, naming the pin to drop.
    let code: i32 = fixture("freerdp/xfreerdp3-pin-refused.code")
        .trim()
        .parse()
        .unwrap();
    w.rule_first("xfreerdp3", "/v:* /u:anna /from-stdin:force /cert:deny,* *")
        .out(&fixture("freerdp/xfreerdp3-pin-refused.txt"))
        .code(code);
    let r = connect();
    r.failure();
    let all = calls(&w);
    let third = all[both.len()..].to_vec();
    let port3 = forwarded_port(&third, "127.0.0.11:3389");
    assert_eq!(
        third[third.len() - 2],
        rdp_call(&port3, &format!("/cert:deny,fingerprint:sha256:{PIN}"))
    );
    assert_eq!(
        r.stderr(),
        format!(
            "RDP to 127.0.0.11:3389 through an ssh tunnel at 127.0.0.1:{port3}\n\
             error: the RDP certificate of 127.0.0.1:{port3} changed since the last connection, \
             and xfreerdp3 refused it: windows was recreated, or someone is in between\n\
             hint: if you recreated windows, drop the certificate bkt pinned for it and connect \
             again: rm {}\n",
            pin_file.display()
        )
    );
    assert_eq!(pins(&w), [key]);
}
