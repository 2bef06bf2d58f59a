//! `bkt vm connect` and `bkt vm ip` against fakes: fake virsh, fake RDP
//! clients and viewers, and a real listener on a loopback address standing
//! in for the guest's Remote Desktop (on a port the kernel picks, given to
//! bkt as BKT_VM_RDP_PORT).

use std::net::TcpListener;

use crate::harness::{
    URI, World, argv, closed_port, fixture, freerdp, has_args, no_password_in_argv_or_environment,
    rdp_listener, virsh_argv,
};

const PW: &str = "hunter2 with spaces";

/// `domifaddr --source lease` answers with `ip` (a loopback address).
fn lease(w: &World, name: &str, ip: &str) {
    w.rule("virsh", &format!("* domifaddr {name} --source lease"))
        .out(&fixture("virsh/domifaddr-lease.txt").replace("192.168.122.4", ip));
}

fn running(w: &World, name: &str) {
    w.rule("virsh", &format!("* domstate --reason {name}"))
        .out(&fixture("virsh/domstate-reason-running.txt"));
}

fn world() -> World {
    let w = World::new()
        .env("DISPLAY", ":42")
        .env("BKT_VM_RDP_PASSWORD", PW);
    w.nothing_saved();
    w
}

/// A running VM at `ip` whose Remote Desktop answers on the port returned,
/// and a FreeRDP 3 client that exits with `code`. Keep the listener alive
/// for the test.
fn rdp_world(ip: &str, code: i32) -> (World, TcpListener, u16) {
    let (rdp, port) = rdp_listener(ip);
    let w = world().rdp_port(port);
    running(&w, "windows");
    lease(&w, "windows", ip);
    freerdp(&w, "xfreerdp3", "3.10.3", code);
    (w, rdp, port)
}

#[test]
fn the_fakes_tell_whether_they_saw_the_password() {
    // The check above is only worth something if a fake does report the
    // variable when it is there.
    let w = World::new();
    w.rule("virsh", "*");
    let fake = w.path("bin/virsh");
    let run = |pw: Option<&str>| {
        let mut c = std::process::Command::new(&fake);
        c.arg("version").env_clear().env("FAKE_DIR", w.dir.path());
        if let Some(pw) = pw {
            c.env("BKT_VM_RDP_PASSWORD", pw);
        }
        assert!(c.status().unwrap().success());
    };
    run(Some(""));
    run(None);
    run(Some(PW));
    assert_eq!(w.calls(), vec![argv!["virsh", "version"]; 3]);
    assert_eq!(
        w.calls_that_saw_the_password(),
        [argv!["virsh", "version"], argv!["virsh", "version"]]
    );
    let log = std::fs::read_to_string(w.path("log")).unwrap();
    assert!(!log.contains("hunter2"), "{log}");
}

#[test]
fn rdp_with_freerdp3_password_on_stdin_only() {
    let (w, _rdp, port) = rdp_world("127.0.0.11", 0);
    let r = w.bkt(&["vm", "connect", "windows", "--user", "anna"]);
    r.success();
    assert_eq!(
        r.stdout(),
        format!(
            "→ FreeRDP 3.10.3: xfreerdp3 /v:127.0.0.11:{port} /u:anna /from-stdin:force /cert:tofu +dynamic-resolution +clipboard /sound /t:windows\n"
        )
    );
    assert_eq!(
        w.calls(),
        [
            virsh_argv(&["domstate", "--reason", "windows"]),
            virsh_argv(&["domifaddr", "windows", "--source", "lease"]),
            argv!["xfreerdp3", "/version"],
            argv![
                "xfreerdp3",
                format!("/v:127.0.0.11:{port}"),
                "/u:anna",
                "/from-stdin:force",
                "/cert:tofu",
                "+dynamic-resolution",
                "+clipboard",
                "/sound",
                "/t:windows"
            ],
        ]
    );
    assert_eq!(
        std::fs::read_to_string(w.path("xfreerdp3.stdin")).unwrap(),
        format!("{PW}\n")
    );
    no_password_in_argv_or_environment(&w);
}

#[test]
fn freerdp2_and_xfreerdp_that_is_3() {
    let (_rdp, port) = rdp_listener("127.0.0.12");
    let w = world().rdp_port(port);
    running(&w, "windows");
    lease(&w, "windows", "127.0.0.12");
    freerdp(&w, "xfreerdp", "2.11.7", 0);
    let share = w.path("isos");
    let r = w.bkt(&[
        "vm",
        "connect",
        "windows",
        "--user",
        "anna",
        "--fullscreen",
        "--share",
        share.to_str().unwrap(),
    ]);
    r.success();
    assert_eq!(
        w.last_call(),
        argv![
            "xfreerdp",
            format!("/v:127.0.0.12:{port}"),
            "/u:anna",
            "/from-stdin:force",
            "/cert:tofu",
            "/dynamic-resolution",
            "+clipboard",
            "/sound",
            format!(
                "/drive:bkt,{}",
                std::fs::canonicalize(&share).unwrap().display()
            ),
            "/f",
            "/t:windows"
        ]
    );

    let (_rdp2, port) = rdp_listener("127.0.0.13");
    let w = world().rdp_port(port);
    running(&w, "windows");
    lease(&w, "windows", "127.0.0.13");
    freerdp(&w, "xfreerdp", "3.5.1", 0);
    w.bkt(&["vm", "connect", "windows", "--user", "anna"])
        .success();
    assert!(has_args(&w.last_call(), &["+dynamic-resolution"]));
}

#[test]
fn client_order_and_remmina() {
    let (_rdp, port) = rdp_listener("127.0.0.14");
    let w = world().rdp_port(port);
    running(&w, "windows");
    lease(&w, "windows", "127.0.0.14");
    freerdp(&w, "xfreerdp", "2.11.7", 0);
    freerdp(&w, "sdl-freerdp3", "3.10.3", 0);
    w.bkt(&["vm", "connect", "windows", "--user", "anna"])
        .success();
    assert!(
        w.last_call()
            .starts_with(&argv!["sdl-freerdp3", format!("/v:127.0.0.14:{port}")])
    );
    // Neither xfreerdp nor xfreerdp3 is asked.
    assert!(!w.calls().iter().any(|c| c[0].starts_with("xfreerdp")));

    let (_rdp, port) = rdp_listener("127.0.0.15");
    let w = world().rdp_port(port);
    running(&w, "windows");
    lease(&w, "windows", "127.0.0.15");
    w.install_fake("remmina");
    w.rule("remmina", "*")
        .sh("/bin/cat >\"$FAKE_DIR/remmina.stdin\"\n")
        .out("remmina: its own window\n");
    let r = w.bkt(&["vm", "connect", "windows", "--user", "anna"]);
    r.success();
    // Remmina talks to the user itself: its output is not hidden in a log.
    assert_eq!(
        r.stdout(),
        format!("→ remmina -c rdp://anna@127.0.0.15:{port}\nremmina: its own window\n")
    );
    assert!(
        !std::fs::read_dir(w.path("home/.cache/bkt/vm"))
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().contains("-rdp"))
    );
    assert_eq!(
        std::fs::read_to_string(w.path("remmina.stdin")).unwrap(),
        ""
    );
    // Nor does it need a user name from us: it asks for what it lacks.
    let r = w.bkt(&["vm", "connect", "windows"]);
    r.success();
    assert_eq!(
        r.stdout(),
        format!("→ remmina -c rdp://127.0.0.15:{port}\nremmina: its own window\n")
    );
}

#[test]
fn only_a_client_that_can_open_its_window_here() {
    // Wayland without XWayland (an empty DISPLAY is none): not the X11 one.
    let (_rdp, port) = rdp_listener("127.0.0.37");
    let w = World::new()
        .env("WAYLAND_DISPLAY", "wayland-0")
        .env("DISPLAY", "")
        .env("BKT_VM_RDP_PASSWORD", PW)
        .rdp_port(port);
    running(&w, "windows");
    lease(&w, "windows", "127.0.0.37");
    freerdp(&w, "xfreerdp3", "3.10.3", 0);
    freerdp(&w, "wlfreerdp3", "3.10.3", 0);
    w.bkt(&["vm", "connect", "windows", "--user", "anna"])
        .success();
    assert!(!w.calls().iter().any(|c| c[0] == "xfreerdp3"));
    assert!(
        w.last_call()
            .starts_with(&argv!["wlfreerdp3", format!("/v:127.0.0.37:{port}")])
    );

    // X11 only: not the Wayland one.
    let (_rdp, port) = rdp_listener("127.0.0.38");
    let w = world().rdp_port(port);
    running(&w, "windows");
    lease(&w, "windows", "127.0.0.38");
    freerdp(&w, "wlfreerdp3", "3.10.3", 0);
    freerdp(&w, "xfreerdp", "2.11.7", 0);
    w.bkt(&["vm", "connect", "windows", "--user", "anna"])
        .success();
    assert!(!w.calls().iter().any(|c| c[0] == "wlfreerdp3"));
    assert!(
        w.last_call()
            .starts_with(&argv!["xfreerdp", format!("/v:127.0.0.38:{port}")])
    );
}

#[test]
fn pinned_client_from_the_environment() {
    let (_rdp, port) = rdp_listener("127.0.0.16");
    let w = world().env("BKT_VM_RDP_CLIENT", "xfreerdp").rdp_port(port);
    running(&w, "windows");
    lease(&w, "windows", "127.0.0.16");
    freerdp(&w, "xfreerdp", "2.11.7", 0);
    freerdp(&w, "sdl-freerdp3", "3.10.3", 0);
    w.bkt(&["vm", "connect", "windows", "--user", "anna"])
        .success();
    let last = w.last_call();
    assert!(
        last[0] == "xfreerdp" && last[1].starts_with("/v:"),
        "{last:?}"
    );
}

fn viewer(w: &World) {
    w.install_fake("virt-viewer");
    w.rule("virt-viewer", "*");
}

#[test]
fn connection_failure_falls_back_to_spice() {
    let (w, _rdp, _) = rdp_world("127.0.0.17", 147);
    viewer(&w);
    let r = w.bkt(&["vm", "connect", "windows", "--user", "anna"]);
    r.success();
    assert!(
        r.stdout().ends_with(
            "→ falling back to SPICE: virt-viewer --connect qemu:///system --attach windows\n"
        ),
        "{}",
        r.stdout()
    );
    assert!(r.stderr().starts_with(
        "✗ RDP: xfreerdp3 exited with code 147: connection failed (transport)\n  the client's log: "
    ), "{}", r.stderr());
    assert_eq!(
        w.last_call(),
        argv![
            "virt-viewer",
            "--connect",
            "qemu:///system",
            "--attach",
            "windows"
        ]
    );
    no_password_in_argv_or_environment(&w);
}

#[test]
fn rdp_only_fails_instead_of_falling_back() {
    let (w, _rdp, _) = rdp_world("127.0.0.18", 147);
    viewer(&w);
    let r = w.bkt(&["vm", "connect", "windows", "--user", "anna", "--rdp"]);
    r.failure();
    assert!(r.stderr().starts_with("error: RDP: xfreerdp3 exited with code 147: connection failed (transport)\nhint: the client's log: "), "{}", r.stderr());
    assert!(!w.calls().iter().any(|c| c[0] == "virt-viewer"));
}

#[test]
fn authentication_failure_is_an_error_not_a_fallback() {
    let (_rdp, port) = rdp_listener("127.0.0.19");
    let w = world().rdp_port(port);
    running(&w, "windows");
    lease(&w, "windows", "127.0.0.19");
    w.install_fake("xfreerdp3");
    w.rule("xfreerdp3", "/version")
        .out(&fixture("freerdp/xfreerdp3-version.txt"));
    w.rule("xfreerdp3", "/v:*")
        .sh("/bin/cat >/dev/null\n")
        .out("Password: one\n\ntwo\nthree\n   \nfour\nfive\nsix\n")
        .code(132);
    viewer(&w);
    let r = w.bkt(&["vm", "connect", "windows", "--user", "anna"]);
    r.failure();
    // The last five lines of the client's log that say something.
    assert_eq!(
        r.stderr(),
        format!(
            "error: xfreerdp3 exited with code 132: authentication failed for anna\n\
             --- xfreerdp3 (last lines of {})\n\
             two\nthree\nfour\nfive\nsix\n\
             hint: check the user name and password (bkt vm connect windows --user NAME); \
             a Microsoft account logs in with its email address\n",
            w.rdp_log("windows")
        )
    );
    assert!(!w.calls().iter().any(|c| c[0] == "virt-viewer"));
}

#[test]
fn rdp_off_in_windows_is_said_and_spice_used() {
    // Nothing listens on 127.0.0.20 there: the "guest" refuses.
    let port = closed_port("127.0.0.20");
    let w = world().rdp_port(port);
    running(&w, "windows");
    lease(&w, "windows", "127.0.0.20");
    freerdp(&w, "xfreerdp3", "3.10.3", 0);
    viewer(&w);
    let r = w.bkt(&["vm", "connect", "windows", "--user", "anna"]);
    r.success();
    assert_eq!(
        r.stderr(),
        format!(
            "✗ RDP: 127.0.0.20:{port} refused the connection: Remote Desktop is off in Windows\n  turn it on in Windows: Settings → System → Remote Desktop (Windows Pro)\n"
        )
    );
    assert!(
        !w.calls()
            .iter()
            .any(|c| c[0] == "xfreerdp3" && c[1].starts_with("/v:"))
    );
}

#[test]
fn no_client_then_no_viewer() {
    let (_rdp, port) = rdp_listener("127.0.0.21");
    let w = world().rdp_port(port);
    running(&w, "windows");
    lease(&w, "windows", "127.0.0.21");
    viewer(&w);
    let r = w.bkt(&["vm", "connect", "windows", "--user", "anna"]);
    r.success();
    assert!(
        r.stderr()
            .starts_with("✗ RDP: no RDP client found\n  install FreeRDP: "),
        "{}",
        r.stderr()
    );

    let (_rdp, port) = rdp_listener("127.0.0.22");
    let w = world().rdp_port(port);
    running(&w, "windows");
    lease(&w, "windows", "127.0.0.22");
    let r = w.bkt(&["vm", "connect", "windows", "--user", "anna"]);
    r.failure();
    assert!(r.stderr().ends_with("error: no SPICE viewer found (virt-viewer or remote-viewer)\nhint: install it: apt install virt-viewer / dnf install virt-viewer\n"), "{}", r.stderr());
}

#[test]
fn remote_viewer_uses_domdisplay() {
    let w = world();
    running(&w, "windows");
    w.rule("virsh", "* domdisplay --type spice windows")
        .out(&fixture("virsh/domdisplay-spice.txt"));
    w.install_fake("remote-viewer");
    w.rule("remote-viewer", "*");
    let r = w.bkt(&["vm", "connect", "windows", "--spice"]);
    r.success();
    assert_eq!(
        r.stdout(),
        "→ remote-viewer --title windows spice://127.0.0.1:5900\n"
    );
    assert_eq!(
        w.calls(),
        [
            virsh_argv(&["domstate", "--reason", "windows"]),
            virsh_argv(&["domdisplay", "--type", "spice", "windows"]),
            argv![
                "remote-viewer",
                "--title",
                "windows",
                "spice://127.0.0.1:5900"
            ],
        ]
    );
    no_password_in_argv_or_environment(&w);
}

#[test]
fn a_password_with_a_line_break_is_refused() {
    for pw in ["first\nsecond", "first\rsecond"] {
        let (_rdp, port) = rdp_listener("127.0.0.36");
        let w = World::new()
            .env("DISPLAY", ":42")
            .env("BKT_VM_RDP_PASSWORD", pw)
            .rdp_port(port);
        running(&w, "windows");
        lease(&w, "windows", "127.0.0.36");
        freerdp(&w, "xfreerdp3", "3.10.3", 0);
        let r = w.bkt(&["vm", "connect", "windows", "--user", "anna"]);
        r.failure();
        assert_eq!(
            r.stderr(),
            "error: the password contains a line break, which FreeRDP cannot read from stdin\n"
        );
        assert_eq!(w.last_call(), argv!["xfreerdp3", "/version"]);
    }
}

#[test]
fn a_password_that_is_not_utf8_reaches_the_client_as_is() {
    use std::os::unix::ffi::OsStrExt;
    let (w, _rdp, _) = rdp_world("127.0.0.32", 0);
    let pw = std::ffi::OsStr::from_bytes(b"caf\xe9 latin-1");
    let out = w
        .command(&["vm", "connect", "windows", "--user", "anna"])
        .env("BKT_VM_RDP_PASSWORD", pw)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::read(w.path("xfreerdp3.stdin")).unwrap(),
        b"caf\xe9 latin-1\n"
    );
    assert_eq!(w.calls_that_saw_the_password(), Vec::<Vec<String>>::new());
}

/// The client prints what FreeRDP VERSION really printed when the guest's
/// certificate was not the pinned one (recorded with
/// scripts/rdp-standin.py, the guest's address put in), and exits with its
/// code.
fn freerdp_refusing_a_changed_certificate(w: &World, tool: &str, fixture_name: &str, ip: &str) {
    w.install_fake(tool);
    let version = fixture(&format!("freerdp/{fixture_name}-version.txt"));
    w.rule(tool, "/version").out(&version);
    let code: i32 = fixture(&format!("freerdp/{fixture_name}-cert-changed.code"))
        .trim()
        .parse()
        .unwrap();
    w.rule(tool, "/v:*")
        .sh(&format!("/bin/cat >\"$FAKE_DIR/{tool}.stdin\"\n"))
        .out(&fixture(&format!("freerdp/{fixture_name}-cert-changed.txt")).replace("127.0.0.2", ip))
        .code(code);
}

#[test]
fn a_changed_certificate_is_an_error_not_a_fallback() {
    // FreeRDP 2, in auto mode (SPICE would be the fallback), config in ~/.config.
    let (_rdp, port) = rdp_listener("127.0.0.33");
    let w = world().rdp_port(port);
    running(&w, "windows");
    lease(&w, "windows", "127.0.0.33");
    freerdp_refusing_a_changed_certificate(&w, "xfreerdp", "xfreerdp2", "127.0.0.33");
    viewer(&w);
    let r = w.bkt(&["vm", "connect", "windows", "--user", "anna"]);
    r.failure();
    assert_eq!(
        r.stdout(),
        format!(
            "→ FreeRDP 2.11.7: xfreerdp /v:127.0.0.33:{port} /u:anna /from-stdin:force /cert:tofu /dynamic-resolution +clipboard /sound /t:windows\n"
        )
    );
    assert_eq!(
        r.stderr(),
        format!(
            "error: the RDP certificate of 127.0.0.33:3389 changed since the last connection, \
             and xfreerdp refused it: windows was recreated, or someone is in between\n\
             hint: if you recreated windows, drop the certificate FreeRDP 2 pinned and connect again: \
             sed -i '/^127\\.0\\.0\\.33 3389 /d' {}/.config/freerdp/known_hosts2\n",
            w.p("home")
        )
    );
    assert_eq!(
        w.calls(),
        [
            virsh_argv(&["domstate", "--reason", "windows"]),
            virsh_argv(&["domifaddr", "windows", "--source", "lease"]),
            argv!["xfreerdp", "/version"],
            argv![
                "xfreerdp",
                format!("/v:127.0.0.33:{port}"),
                "/u:anna",
                "/from-stdin:force",
                "/cert:tofu",
                "/dynamic-resolution",
                "+clipboard",
                "/sound",
                "/t:windows"
            ],
        ]
    );
    assert_eq!(
        std::fs::read_to_string(w.path("xfreerdp.stdin")).unwrap(),
        format!("{PW}\n")
    );
    no_password_in_argv_or_environment(&w);

    // FreeRDP 3, with XDG_CONFIG_HOME set.
    let (_rdp, port) = rdp_listener("127.0.0.34");
    let w = world()
        .env("XDG_CONFIG_HOME", "/srv/anna config")
        .rdp_port(port);
    running(&w, "windows");
    lease(&w, "windows", "127.0.0.34");
    freerdp_refusing_a_changed_certificate(&w, "xfreerdp3", "xfreerdp3", "127.0.0.34");
    viewer(&w);
    let r = w.bkt(&["vm", "connect", "windows", "--user", "anna"]);
    r.failure();
    assert_eq!(
        r.stdout(),
        format!(
            "→ FreeRDP 3.10.3: xfreerdp3 /v:127.0.0.34:{port} /u:anna /from-stdin:force /cert:tofu +dynamic-resolution +clipboard /sound /t:windows\n"
        )
    );
    assert_eq!(
        r.stderr(),
        "error: the RDP certificate of 127.0.0.34:3389 changed since the last connection, \
         and xfreerdp3 refused it: windows was recreated, or someone is in between\n\
         hint: if you recreated windows, drop the certificate FreeRDP 3 pinned and connect again: \
         rm '/srv/anna config/freerdp/server/127.0.0.34_3389.pem'\n"
    );
    assert_eq!(
        w.calls(),
        [
            virsh_argv(&["domstate", "--reason", "windows"]),
            virsh_argv(&["domifaddr", "windows", "--source", "lease"]),
            argv!["xfreerdp3", "/version"],
            argv![
                "xfreerdp3",
                format!("/v:127.0.0.34:{port}"),
                "/u:anna",
                "/from-stdin:force",
                "/cert:tofu",
                "+dynamic-resolution",
                "+clipboard",
                "/sound",
                "/t:windows"
            ],
        ]
    );
    no_password_in_argv_or_environment(&w);
}

#[test]
fn a_first_contact_that_fails_still_falls_back() {
    // FreeRDP 3 logs "REMOTE HOST IDENTIFICATION HAS CHANGED" when it pins a
    // certificate for the first time: that is no changed certificate.
    let (_rdp, port) = rdp_listener("127.0.0.35");
    let w = world().rdp_port(port);
    running(&w, "windows");
    lease(&w, "windows", "127.0.0.35");
    w.install_fake("xfreerdp3");
    w.rule("xfreerdp3", "/version")
        .out(&fixture("freerdp/xfreerdp3-version.txt"));
    let code: i32 = fixture("freerdp/xfreerdp3-cert-first.code")
        .trim()
        .parse()
        .unwrap();
    w.rule("xfreerdp3", "/v:*")
        .sh("/bin/cat >/dev/null\n")
        .out(&fixture("freerdp/xfreerdp3-cert-first.txt").replace("127.0.0.2", "127.0.0.35"))
        .code(code);
    viewer(&w);
    let r = w.bkt(&["vm", "connect", "windows", "--user", "anna"]);
    r.success();
    assert!(
        r.stderr().starts_with(
            "✗ RDP: xfreerdp3 exited with code 147: connection failed (transport)\n  the client's log: "
        ),
        "{}",
        r.stderr()
    );
    assert_eq!(
        w.last_call(),
        argv![
            "virt-viewer",
            "--connect",
            "qemu:///system",
            "--attach",
            "windows"
        ]
    );
}

#[test]
fn from_shut_off_it_starts_waits_for_the_address_and_the_port() {
    let (_rdp, port) = rdp_listener("127.0.0.23");
    let w = world().rdp_port(port);
    w.rule("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-shutoff-shutdown.txt"));
    w.rule("virsh", "* start windows")
        .out("Domain 'windows' started\n");
    // No address for the first two rounds of lease, agent, ARP.
    w.rule("virsh", "* domifaddr windows --source lease")
        .out(&fixture("virsh/domifaddr-lease-none.txt"))
        .times(2);
    w.rule("virsh", "* domifaddr windows --source agent")
        .recorded("virsh/domifaddr-agent-unavailable");
    w.rule("virsh", "* domifaddr windows --source arp")
        .out(&fixture("virsh/domifaddr-arp.txt"));
    lease(&w, "windows", "127.0.0.23");
    freerdp(&w, "xfreerdp3", "3.10.3", 0);
    let r = w.bkt(&["vm", "connect", "windows", "--user", "anna"]);
    r.success();
    assert!(
        r.stdout()
            .starts_with("windows is shut off; starting it\n→ FreeRDP 3.10.3: "),
        "{}",
        r.stdout()
    );
    assert_eq!(
        r.stderr(),
        "waiting for an IP address (lease, guest agent, ARP) …\n"
    );
    let lease_calls = w
        .calls()
        .iter()
        .filter(|c| c.ends_with(&argv!["--source", "lease"]))
        .count();
    assert_eq!(lease_calls, 3);
}

#[test]
fn no_address_before_the_timeout() {
    let w = world();
    running(&w, "windows");
    w.rule("virsh", "* domifaddr *")
        .out(&fixture("virsh/domifaddr-lease-none.txt"));
    viewer(&w);
    let t = std::time::Instant::now();
    let r = w.bkt(&["vm", "connect", "windows", "--timeout", "1"]);
    r.success();
    // Well short of the default 300 s, with room for a loaded machine.
    assert!(t.elapsed() < std::time::Duration::from_secs(20));
    assert!(r.stderr().contains("✗ RDP: no IPv4 address for windows after 1s (no DHCP lease, guest agent or ARP entry)\n"), "{}", r.stderr());
    let r = w.bkt(&["vm", "connect", "windows", "--timeout", "1", "--rdp"]);
    r.failure();
}

#[test]
fn no_graphical_session() {
    let w = World::new();
    running(&w, "windows");
    let r = w.bkt(&["vm", "connect", "windows"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: no graphical session: neither DISPLAY nor WAYLAND_DISPLAY is set\nhint: run `bkt vm connect` from your desktop session (or over ssh -X)\n"
    );
}

#[test]
fn user_and_password_without_a_terminal() {
    let (_rdp, port) = rdp_listener("127.0.0.24");
    let w = World::new().env("DISPLAY", ":42").rdp_port(port);
    running(&w, "windows");
    lease(&w, "windows", "127.0.0.24");
    freerdp(&w, "xfreerdp3", "3.10.3", 0);
    let r = w.bkt(&["vm", "connect", "windows"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: no Windows user name for windows\nhint: pass it once with --user: bkt vm connect windows --user NAME\n"
    );
    let r = w.bkt(&["vm", "connect", "windows", "--user", "anna"]);
    r.failure();
    assert!(r.stderr().ends_with("error: no password for anna on windows\nhint: run it on a terminal to be asked, or set BKT_VM_RDP_PASSWORD\n"), "{}", r.stderr());
    assert!(
        !w.calls()
            .iter()
            .any(|c| c[0] == "xfreerdp3" && c[1].starts_with("/v:"))
    );
}

#[test]
fn the_user_is_remembered() {
    let (_rdp, port) = rdp_listener("127.0.0.25");
    let w = world().rdp_port(port);
    w.write_manifest(
        serde_json::json!({"vms": [{"name": "windows", "type": "windows11",
        "disk": "/w.qcow2", "created": "2026-01-25", "uri": URI}]}),
    );
    running(&w, "windows");
    lease(&w, "windows", "127.0.0.25");
    freerdp(&w, "xfreerdp3", "3.10.3", 0);
    w.bkt(&["vm", "connect", "windows", "--user", "anna"])
        .success();
    assert_eq!(w.manifest()["vms"][0]["rdp_user"], "anna");
    let text = std::fs::read_to_string(w.manifest_path()).unwrap();
    assert!(!text.contains("hunter2"));
    w.bkt(&["vm", "connect", "windows"]).success();
    assert!(has_args(&w.last_call(), &["/u:anna"]));
}

#[test]
fn ip_for_scripts() {
    let w = World::new();
    running(&w, "windows");
    w.rule("virsh", "* domifaddr windows --source lease")
        .out(&fixture("virsh/domifaddr-lease-none.txt"));
    w.rule("virsh", "* domifaddr windows --source agent")
        .recorded("virsh/domifaddr-agent-unavailable");
    w.rule("virsh", "* domifaddr windows --source arp")
        .out(&fixture("virsh/domifaddr-arp-tiny.txt").replace("192.168.122.40/0", "127.0.0.40/0"));
    let r = w.bkt(&["vm", "ip", "windows"]);
    r.success();
    assert_eq!(r.stdout(), "127.0.0.40\n");
    assert_eq!(r.stderr(), "");

    let w = World::new();
    w.rule("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-shutoff-shutdown.txt"));
    let r = w.bkt(&["vm", "ip", "windows"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: windows is shut off; it has no address\nhint: start it first: bkt vm start windows\n"
    );

    let w = World::new();
    running(&w, "windows");
    w.rule("virsh", "* domifaddr *")
        .out(&fixture("virsh/domifaddr-lease-none.txt"));
    let r = w.bkt(&["vm", "ip", "windows"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: no IPv4 address known for windows (no DHCP lease, guest agent or ARP entry)\nhint: it may still be booting: bkt vm ip windows --timeout 120\n"
    );
}

#[test]
fn ip_refuses_an_agent_answer_that_is_not_an_address() {
    // Hand-typed, not recorded (no guest agent of ours answers this): what
    // virsh prints when the agent in a hostile guest says its address is
    // an escape sequence (a window title and a screen clear) or a word.
    for (addr, shown) in [
        (
            "\x1b]0;owned\x07\x1b[2J/24",
            r#""\x1b]0;owned\x07\x1b[2J/24""#,
        ),
        ("evil.example/24", r#""evil.example/24""#),
    ] {
        let w = World::new();
        running(&w, "windows");
        w.rule("virsh", "* domifaddr windows --source lease")
            .out(&fixture("virsh/domifaddr-lease-none.txt"));
        w.rule("virsh", "* domifaddr windows --source agent")
            .out(&format!(
                " Name       MAC address          Protocol     Address\n\
             -------------------------------------------------------------------------------\n \
             Ethernet   52:54:00:b4:b3:60    ipv4         {addr}\n\n"
            ));
        // Waiting does not wait it out: the first answer ends it.
        for args in [
            &["vm", "ip", "windows"][..],
            &["vm", "ip", "windows", "--timeout", "60"],
        ] {
            let r = w.bkt(args);
            r.failure();
            assert_eq!(r.code(), 1);
            assert_eq!(r.stdout(), "");
            assert_eq!(
                r.stderr(),
                format!("error: the guest gave something that is not an address: {shown}\n")
            );
        }
        // The ARP table is not asked once the agent has answered.
        assert!(
            !w.calls().iter().any(|c| has_args(c, &["--source", "arp"])),
            "{:?}",
            w.calls()
        );
    }
}

#[test]
fn a_stale_lease_is_followed_to_the_new_address() {
    // Right after a start libvirt still reports the previous boot's lease;
    // the guest then comes up on another address.
    // The guest at .30 refuses (nothing listens there), until the lease
    // moves on to .31.
    let (_rdp, port) = rdp_listener("127.0.0.31");
    let w = world().rdp_port(port);
    w.rule("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-shutoff-shutdown.txt"));
    w.rule("virsh", "* start windows")
        .out("Domain 'windows' started\n");
    w.rule("virsh", "* domifaddr windows --source lease")
        .out(&fixture("virsh/domifaddr-lease.txt").replace("192.168.122.4", "127.0.0.30"))
        .times(1);
    lease(&w, "windows", "127.0.0.31");
    freerdp(&w, "xfreerdp3", "3.10.3", 0);
    let r = w.bkt(&[
        "vm",
        "connect",
        "windows",
        "--user",
        "anna",
        "--timeout",
        "30",
    ]);
    r.success();
    assert_eq!(
        r.stderr(),
        format!(
            "waiting for Remote Desktop on 127.0.0.30:{port} …\nwaiting for Remote Desktop on 127.0.0.31:{port} …\n"
        )
    );
    assert!(
        w.last_call()
            .starts_with(&argv!["xfreerdp3", format!("/v:127.0.0.31:{port}")])
    );
}

#[test]
fn connect_leaves_an_idle_watcher_behind_when_auto_save_is_on() {
    let (w, _rdp, _) = rdp_world("127.0.0.46", 0);
    w.write_manifest(
        serde_json::json!({"vms": [{"name": "windows", "type": "windows11",
        "disk": "", "created": "2026-11-28", "uri": URI, "auto_save": 900}]}),
    );
    // Running for connect's two looks; the watcher then finds it shut off
    // and ends at its first look.
    w.rule_first("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-running.txt"))
        .times(2);
    w.rule_first("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-shutoff.txt"));
    std::os::unix::fs::symlink("/usr/bin/setsid", w.path("bin/setsid")).unwrap();
    let r = w.bkt(&["vm", "connect", "windows", "--user", "anna"]);
    r.success();
    assert!(
        r.stdout().ends_with(
            "windows is saved to disk after 15m unused (bkt vm config windows --auto-save off \
             turns that off)\n"
        ),
        "{}",
        r.stdout()
    );
    let log = w.path(&format!(
        "home/.cache/bkt/vm/windows@{}.watch.log",
        crate::save::SYSTEM
    ));
    let ended = "windows: the VM is shut off; nothing to watch\n";
    let since = std::time::Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .ends_with(ended)
        && since.elapsed() < std::time::Duration::from_secs(20)
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(said.starts_with("windows: watching (pid "), "{said}");
    assert!(said.ends_with(ended), "{said}");
}

#[test]
fn share_never_slash() {
    let w = world();
    freerdp(&w, "xfreerdp3", "3.10.3", 0);
    std::os::unix::fs::symlink("/", w.path("home/top")).unwrap();
    for given in ["/".to_string(), w.p("home/top")] {
        let r = w.bkt(&["vm", "connect", "windows", "--share", &given]);
        r.failure();
        assert_eq!(
            r.stderr(),
            format!(
                "error: --share {given}: bkt never shares / (the whole file system) with \
                 Windows\nhint: share the directory Windows needs, e.g. --share ~/Shared; \
                 nothing was started\n"
            )
        );
    }
    assert!(w.calls().is_empty(), "{:?}", w.calls());
}

#[test]
fn the_user_of_a_same_named_vm_on_another_connection_is_never_used() {
    let (_rdp, port) = rdp_listener("127.0.0.26");
    let w = world().rdp_port(port);
    w.write_manifest(serde_json::json!({"vms": [
        {"name": "windows", "type": "windows11", "disk": "/s.qcow2", "created": "2026-01-25",
         "uri": "qemu:///session", "rdp_user": "bob"},
        {"name": "windows", "type": "windows11", "disk": "/w.qcow2", "created": "2026-01-25",
         "uri": URI}]}));
    running(&w, "windows");
    lease(&w, "windows", "127.0.0.26");
    freerdp(&w, "xfreerdp3", "3.10.3", 0);
    let r = w.bkt(&["vm", "connect", "windows"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: no Windows user name for windows\nhint: pass it once with --user: bkt vm connect windows --user NAME\n"
    );
    w.bkt(&["vm", "connect", "windows", "--user", "anna"])
        .success();
    let m = w.manifest();
    assert_eq!(m["vms"][0]["rdp_user"], "bob");
    assert_eq!(m["vms"][1]["rdp_user"], "anna");
    w.bkt(&["vm", "connect", "windows"]).success();
    assert!(has_args(&w.last_call(), &["/u:anna"]));
}

/// The SHA-256 of the certificate the fake FreeRDP 2 below pins.
const PIN: &str = "db:71:32:76:0f:40:c8:38:aa:17:01:af:ef:19:b9:2a:\
                   57:43:61:ff:58:83:c1:5d:b8:fb:42:3d:42:b5:9c:39";

#[test]
fn a_certificate_other_than_bkts_pin_is_refused_locally_with_the_pin_to_drop() {
    // FreeRDP 2, bkt's files under $XDG_CONFIG_HOME (a space in it).
    let (_rdp, port) = rdp_listener("127.0.0.36");
    let w = world();
    let cfg = w.p("cfg dir");
    let w = w.env("XDG_CONFIG_HOME", &cfg).rdp_port(port);
    running(&w, "windows");
    lease(&w, "windows", "127.0.0.36");
    freerdp(&w, "xfreerdp", "2.11.7", 0);
    // At a first use it stores the certificate as the real one does: a
    // known_hosts2 line (fixtures/freerdp/xfreerdp2-known_hosts2.txt).
    w.rule_first("xfreerdp", "/v:* /u:anna /from-stdin:force /cert:tofu *")
        .sh(&format!(
            "/bin/mkdir -p \"$XDG_CONFIG_HOME/freerdp\"\n\
             /bin/cp '{}/fixtures/freerdp/xfreerdp2-known_hosts2.txt' \"$XDG_CONFIG_HOME/freerdp/known_hosts2\"\n",
            env!("CARGO_MANIFEST_DIR")
        ));
    let r = w.bkt(&["vm", "connect", "windows", "--user", "anna"]);
    r.success();
    let pins = std::path::Path::new(&cfg).join("bkt/vm/pins");
    let names: Vec<String> = std::fs::read_dir(&pins)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    let pin_file = pins.join(&names[0]);
    assert_eq!(
        std::fs::read_to_string(&pin_file).unwrap(),
        format!("sha256 {PIN}\n")
    );

    // The guest now serves another certificate: FreeRDP 2 refuses it with
    // what it printed against scripts/rdp-standin.py.
    let code: i32 = fixture("freerdp/xfreerdp2-pin-refused.code")
        .trim()
        .parse()
        .unwrap();
    w.rule_first("xfreerdp", "/v:* /u:anna /from-stdin:force /cert:deny,* *")
        .sh("/bin/cat >\"$FAKE_DIR/xfreerdp.stdin\"\n")
        .out(&fixture("freerdp/xfreerdp2-pin-refused.txt"))
        .code(code);
    viewer(&w);
    let before = w.calls().len();
    let r = w.bkt(&["vm", "connect", "windows", "--user", "anna"]);
    r.failure();
    let rdp = argv![
        "xfreerdp",
        format!("/v:127.0.0.36:{port}"),
        "/u:anna",
        "/from-stdin:force",
        format!("/cert:deny,fingerprint:sha256:{PIN}"),
        "/dynamic-resolution",
        "+clipboard",
        "/sound",
        "/t:windows"
    ];
    assert_eq!(r.stdout(), format!("→ FreeRDP 2.11.7: {}\n", rdp.join(" ")));
    assert_eq!(
        r.stderr(),
        format!(
            "error: the RDP certificate of 127.0.0.36:{port} changed since the last connection, \
             and xfreerdp refused it: windows was recreated, or someone is in between\n\
             hint: if you recreated windows, drop the certificate bkt pinned for it and connect \
             again: rm '{}'\n",
            pin_file.display()
        )
    );
    // Not a fallback to SPICE: no viewer ran.
    assert_eq!(
        w.calls()[before..],
        [
            virsh_argv(&["domstate", "--reason", "windows"]),
            virsh_argv(&["domifaddr", "windows", "--source", "lease"]),
            argv!["xfreerdp", "/version"],
            rdp,
        ]
    );
    assert_eq!(
        std::fs::read_to_string(w.path("xfreerdp.stdin")).unwrap(),
        format!("{PW}\n")
    );
    no_password_in_argv_or_environment(&w);
}
