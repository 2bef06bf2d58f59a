//! start and stop against fakes.

use crate::harness::{URI, World, fixture, has_args, mentions, virsh_argv};

pub fn nosuch(w: &World, name: &str) {
    w.rule("virsh", &format!("* domstate --reason {name}"))
        .err(&format!(
            "error: failed to get domain '{name}'\nerror: Domain not found: no domain with matching name '{name}'\n"
        ))
        .code(1);
}

/// The VM gone between its state and its dominfo: libvirt's error, as
/// recorded for `nosuch`, said as bkt's reading of its state.
#[test]
fn a_vm_gone_before_its_dominfo_is_said() {
    let w = World::new();
    w.rule("virsh", "* domstate --reason nosuch")
        .out(&fixture("virsh/domstate-reason-shutoff-shutdown.txt"));
    w.rule("virsh", "* dominfo nosuch")
        .recorded("virsh/dominfo-nosuch");
    let r = w.bkt(&["vm", "start", "nosuch"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        format!(
            "error: cannot read nosuch's state\n\
             caused by: `virsh -c {URI} dominfo nosuch` failed (exit status: 1)\n\
             --- stderr\n{}",
            fixture("virsh/dominfo-nosuch.err")
        )
    );
    assert!(!w.calls().iter().any(|c| has_args(c, &["start"])));
}

#[test]
fn start_a_shut_off_vm() {
    let w = World::new();
    w.nothing_saved();
    w.rule("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-shutoff-shutdown.txt"));
    w.rule("virsh", "* start windows")
        .out("Domain 'windows' started\n\n");
    let r = w.bkt(&["vm", "start", "windows"]);
    r.success();
    assert_eq!(r.stdout(), "Started windows\n");
    assert_eq!(
        w.calls(),
        [
            virsh_argv(&["domstate", "--reason", "windows"]),
            virsh_argv(&[
                "domstats",
                "--raw",
                "--state",
                "--vcpu",
                "--balloon",
                "--block"
            ]),
            virsh_argv(&["dominfo", "windows"]),
            virsh_argv(&["start", "windows"]),
        ]
    );
}

#[test]
fn start_warns_when_the_host_would_be_overcommitted() {
    let w = World::new()
        .env("BKT_VM_HOST_MEMORY", "4G")
        .env("BKT_VM_HOST_CPUS", "2");
    w.nothing_saved();
    w.rule("virsh", "* domstate --reason t2")
        .out(&fixture("virsh/domstate-reason-shutoff-shutdown.txt"));
    w.rule("virsh", "* domstats *")
        .out(&fixture("virsh/domstats-three.txt"));
    w.rule("virsh", "* start t2").out("Domain 't2' started\n\n");
    let r = w.bkt(&["vm", "start", "t2"]);
    r.success();
    assert_eq!(r.stdout(), "Started t2\n");
    assert_eq!(
        r.stderr(),
        "⚠ with it, 3 running VMs use 3.2 GiB of memory, more than half of the host's 4 GiB\n\
         ⚠ with it, 3 running VMs use 4 vCPUs, more than half of the host's 2 cores\n"
    );
}

#[test]
fn start_when_running_is_fine() {
    let w = World::new();
    w.rule("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-running.txt"));
    let r = w.bkt(&["vm", "start", "windows"]);
    r.success();
    assert_eq!(r.stdout(), "windows is already running\n");
    assert_eq!(
        w.calls(),
        [virsh_argv(&["domstate", "--reason", "windows"])]
    );
}

#[test]
fn start_failure_says_what_and_what_next() {
    let w = World::new();
    w.nothing_saved();
    w.rule("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-shutoff-shutdown.txt"));
    w.rule("virsh", "* start windows")
        .err("error: Failed to start domain 'windows'\nerror: Cannot access storage file '/var/lib/libvirt/images/windows.qcow2': No such file or directory\n")
        .code(1);
    let r = w.bkt(&["vm", "start", "windows"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: cannot start windows
caused by: `virsh -c qemu:///system start windows` failed (exit status: 1)
--- stderr
error: Failed to start domain 'windows'
error: Cannot access storage file '/var/lib/libvirt/images/windows.qcow2': No such file or directory
hint: the VM's disk or an ISO it uses is gone; put it back or detach it (`virsh edit`)
"
    );
}

/// What libvirt's host says (over ssh, a machine of its own) is quoted in
/// errors as data: a title change, a colour and a carriage return in its
/// stderr are shown, not acted on; its lines stay lines. (Hand-typed
/// stderr: a hostile one, not a recording.)
#[test]
fn terminal_control_in_a_tools_stderr_is_shown_not_acted_on() {
    let w = World::new();
    w.nothing_saved();
    w.rule("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-shutoff-shutdown.txt"));
    w.rule("virsh", "* start windows")
        .err("error: Failed to start domain 'windows'\n\x1b]0;owned\x07\x1b[31mred\rerror: x\n")
        .code(1);
    let r = w.bkt(&["vm", "start", "windows"]);
    r.failure();
    assert!(
        !r.stderr().contains('\x1b') && !r.stderr().contains('\r'),
        "{:?}",
        r.stderr()
    );
    assert!(
        r.stderr().contains(
            "error: Failed to start domain 'windows'\n\\x1b]0;owned\\x07\\x1b[31mred\\x0derror: x\n"
        ),
        "{}",
        r.stderr()
    );
}

#[test]
fn unknown_vm_names_the_ones_that_exist() {
    let w = World::new();
    nosuch(&w, "windos");
    w.domains(&["windows", "scratch"]);
    for cmd in ["start", "stop"] {
        let r = w.bkt(&["vm", cmd, "windos"]);
        r.failure();
        assert_eq!(
            r.stderr(),
            "error: no VM named \"windos\" on qemu:///system (the VMs there are: windows, scratch)\n"
        );
    }
}

#[test]
fn invalid_names_never_reach_virsh() {
    let w = World::new();
    // Validated once, by the command line parser: a usage error (2).
    for (cmd, arg) in [
        ("start", "<NAME>"),
        ("stop", "<NAME>"),
        ("destroy", "<NAME>"),
        ("status", "[NAME]"),
    ] {
        let r = w.bkt(&["vm", cmd, "--", "-rf"]);
        assert_eq!(r.code(), 2);
        assert_eq!(
            r.stderr(),
            format!(
                "error: invalid value '-rf' for '{arg}': invalid VM name \"-rf\": use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit\n\nFor more information, try '--help'.\n"
            )
        );
    }
    assert!(w.calls().is_empty());
}

#[test]
fn libvirt_down_is_explained() {
    let w = World::new();
    w.rule("virsh", "*")
        .err("error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/run/libvirt/libvirt-sock': No such file or directory\n")
        .code(1);
    let r = w.bkt(&["vm", "start", "windows"]);
    r.failure();
    assert!(r.stderr().ends_with("hint: libvirt is not reachable: start it (`sudo systemctl start libvirtd`, or `virtqemud` on modular hosts) or check --connect / LIBVIRT_DEFAULT_URI\n"), "{}", r.stderr());
}

#[test]
fn stop_polls_until_off() {
    let w = World::new();
    w.shuts_down_after("windows", 3);
    let r = w.bkt(&["vm", "stop", "windows"]);
    r.success()
        .stdout_like(r"^windows is shut off \(shutdown\) after \ds\n$");
    assert_eq!(r.stderr(), "waiting for windows to shut down …\n");
    let calls = w.calls();
    assert_eq!(calls[0], virsh_argv(&["domstate", "--reason", "windows"]));
    assert_eq!(
        calls[1],
        virsh_argv(&["shutdown", "windows", "--mode", "acpi"])
    );
    // Then it looks until the VM is off.
    assert_eq!(
        calls[2..],
        vec![virsh_argv(&["domstate", "--reason", "windows"]); 3]
    );
}

#[test]
fn stop_timeout_leaves_it_running_and_suggests_force() {
    let w = World::new();
    w.rule("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-running.txt"));
    w.rule("virsh", "* shutdown windows --mode acpi")
        .out("Domain 'windows' is being shutdown\n");
    let t = std::time::Instant::now();
    let r = w.bkt(&["vm", "stop", "windows", "--timeout", "1"]);
    r.failure();
    // Well short of the default 180 s, with room for a loaded machine.
    assert!(t.elapsed() < std::time::Duration::from_secs(20));
    assert_eq!(
        r.stderr(),
        "waiting for windows to shut down …
error: windows did not shut down within 1s; it is still running
hint: the guest is ignoring the ACPI power button (busy, or at a prompt); try again with a longer --timeout, shut it down from inside, or `bkt vm stop windows --force` (unsaved work in the guest is lost)
"
    );
    assert!(!w.calls().iter().any(|c| mentions(c, "destroy")));
}

#[test]
fn stop_resumes_a_paused_vm_first() {
    let w = World::new();
    w.rule("virsh", "* domstate --reason windows")
        .out("paused (user)\n")
        .times(1);
    w.rule("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-shutoff-shutdown.txt"));
    w.rule("virsh", "* resume windows")
        .out("Domain 'windows' resumed\n");
    w.rule("virsh", "* shutdown windows --mode acpi")
        .out("Domain 'windows' is being shutdown\n");
    let r = w.bkt(&["vm", "stop", "windows"]);
    r.success();
    assert!(
        r.stdout().starts_with(
            "windows was paused; resumed it to shut it down\nwindows is shut off (shutdown) after "
        ),
        "{}",
        r.stdout()
    );
    let calls = w.calls();
    assert_eq!(calls[1], virsh_argv(&["resume", "windows"]));
    assert_eq!(
        calls[2],
        virsh_argv(&["shutdown", "windows", "--mode", "acpi"])
    );
}

#[test]
fn stop_force_and_already_off() {
    let w = World::new();
    w.nothing_saved();
    w.rule("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-running.txt"))
        .times(1);
    w.rule("virsh", "* domstate --reason windows")
        .out("shut off (destroyed)\n");
    w.rule("virsh", "* destroy windows")
        .out("Domain 'windows' destroyed\n");
    let r = w.bkt(&["vm", "stop", "windows", "--force"]);
    r.success();
    assert_eq!(r.stdout(), "windows is powered off (forced)\n");
    let r = w.bkt(&["vm", "stop", "windows"]);
    r.success();
    assert_eq!(r.stdout(), "windows is already shut off\n");
    assert_eq!(
        w.calls(),
        [
            virsh_argv(&["domstate", "--reason", "windows"]),
            virsh_argv(&["destroy", "windows"]),
            virsh_argv(&["domstate", "--reason", "windows"]),
            virsh_argv(&["dominfo", "windows"]),
        ]
    );
}

#[test]
fn ctrl_c_stops_a_command_even_when_bkt_inherited_it_ignored() {
    use std::os::unix::process::ExitStatusExt;
    let w = World::new();
    w.nothing_saved();
    w.rule("virsh", "* domstate --reason w")
        .out(&fixture("virsh/domstate-reason-shutoff-shutdown.txt"));
    // `start` waits in virsh; Ctrl-C comes then.
    w.rule("virsh", "* start w").sh(&w.hold());
    let child = w.spawn_with_sigint_ignored(&["vm", "start", "w"]);
    w.wait_held("virsh start never began");
    // SAFETY: a plain kill(2) of our own child, by its PID.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    w.release();
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGINT),
        "{:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
