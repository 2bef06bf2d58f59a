//! `bkt vm run` against fakes: fake virsh and FreeRDP clients, and a real
//! listener on a loopback address standing in for the guest's Remote
//! Desktop (on a port the kernel picks, given to bkt as BKT_VM_RDP_PORT).

use std::net::TcpListener;

use crate::harness::{
    URI, World, argv, fixture, freerdp, has_args, no_password_in_argv_or_environment, rdp_listener,
    virsh_argv,
};

const PW: &str = "hunter2 with spaces";

fn world() -> World {
    let w = World::new()
        .env("DISPLAY", ":42")
        .env("BKT_VM_RDP_PASSWORD", PW);
    w.nothing_saved();
    w
}

/// `w` with a running VM at `ip` (its Remote Desktop answers on the port
/// returned while the listener lives).
fn running_at(w: World, ip: &str) -> (World, TcpListener, u16) {
    let (rdp, port) = rdp_listener(ip);
    let w = w.rdp_port(port);
    w.rule("virsh", "* domstate --reason windows")
        .out("running (booted)\n");
    w.rule("virsh", "* domifaddr windows --source lease")
        .out(&fixture("virsh/domifaddr-lease.txt").replace("192.168.122.4", ip));
    (w, rdp, port)
}

/// Files in the world's home and outside it, with the names that make
/// quoting hard.
fn files(w: &World) -> (String, String) {
    let docs = w.path("home/Documents");
    std::fs::create_dir_all(&docs).unwrap();
    let in_home = docs.join("Q3, final «é».docx");
    std::fs::write(&in_home, "x").unwrap();
    let outside = w.path("isos/ü ber.txt");
    std::fs::write(&outside, "x").unwrap();
    (in_home.display().to_string(), outside.display().to_string())
}

#[test]
fn freerdp3_gets_the_remoteapp_form_and_the_password_on_stdin() {
    let (w, _rdp, port) = running_at(world().env("GDK_SCALE", "2"), "127.0.3.1");
    freerdp(&w, "xfreerdp3", "3.10.3", 0);
    freerdp(&w, "sdl-freerdp3", "3.10.3", 0);
    let (a, b) = files(&w);
    let r = w.bkt(&["vm", "run", "windows", "notepad", &a, &b, "--user", "anna"]);
    r.success();
    let docs = w.p("home/Documents");
    let isos = w.p("isos");
    // Only the files' directories, each a drive of its own: not the home.
    let client = argv![
        "xfreerdp3",
        format!("/v:127.0.3.1:{port}"),
        "/u:anna",
        "/from-stdin:force",
        "/cert:tofu",
        "+clipboard",
        "/app:program:C:\\Windows\\System32\\notepad.exe,'cmd:\"\\\\tsclient\\bkt1\\Q3, final «é».docx\" \"\\\\tsclient\\bkt2\\ü ber.txt\"',name:Notepad",
        "/wm-class:bkt-windows-notepad",
        format!("/drive:bkt1,{docs}"),
        format!("/drive:bkt2,{isos}"),
        "/scale:180",
        "/scale-desktop:200"
    ];
    // The SDL client is not asked: its RemoteApp support is experimental.
    assert_eq!(
        w.calls(),
        [
            virsh_argv(&["domstate", "--reason", "windows"]),
            argv!["xfreerdp3", "/version"],
            virsh_argv(&["domifaddr", "windows", "--source", "lease"]),
            client,
        ]
    );
    assert!(
        r.stdout()
            .starts_with(&format!("→ FreeRDP 3.10.3: xfreerdp3 /v:127.0.3.1:{port} ")),
        "{}",
        r.stdout()
    );
    assert_eq!(r.stderr(), "");
    assert_eq!(
        std::fs::read_to_string(w.path("xfreerdp3.stdin")).unwrap(),
        format!("{PW}\n")
    );
    no_password_in_argv_or_environment(&w);
    // --share home: the whole home as `home`, as bkt did before.
    let r = w.bkt(&[
        "vm", "run", "windows", "notepad", &a, &b, "--user", "anna", "--share", "home",
    ]);
    r.success();
    assert_eq!(
        w.last_call(),
        argv![
            "xfreerdp3",
            format!("/v:127.0.3.1:{port}"),
            "/u:anna",
            "/from-stdin:force",
            "/cert:tofu",
            "+clipboard",
            "/app:program:C:\\Windows\\System32\\notepad.exe,'cmd:\"\\\\tsclient\\home\\Documents\\Q3, final «é».docx\" \"\\\\tsclient\\bkt1\\ü ber.txt\"',name:Notepad",
            "/wm-class:bkt-windows-notepad",
            format!("/drive:home,{}", w.p("home")),
            format!("/drive:bkt1,{isos}"),
            "/scale:180",
            "/scale-desktop:200"
        ]
    );
    // A program by its path: its file name names it.
    let r = w.bkt(&[
        "vm",
        "run",
        "windows",
        r"C:\Tools\My App.exe",
        "--user",
        "anna",
    ]);
    r.success();
    let last = w.last_call();
    assert!(
        has_args(
            &last,
            &[
                "/u:anna",
                "/from-stdin:force",
                "/cert:tofu",
                "+clipboard",
                "/app:program:C:\\Tools\\My App.exe,name:My App",
                "/wm-class:bkt-windows-my-app",
                "/scale:180"
            ]
        ),
        "{last:?}"
    );
}

#[test]
fn freerdp2_gets_its_own_form() {
    let (w, _rdp, port) = running_at(world(), "127.0.3.2");
    freerdp(&w, "xfreerdp", "2.11.7", 0);
    let (a, b) = files(&w);
    // FreeRDP 2 reads /app-cmd whole: both kinds of quote are fine. A
    // file directly in the home brings the home (its directory) as `home`.
    let c = w.p("home/it's here.txt");
    std::fs::write(&c, "x").unwrap();
    w.bkt(&[
        "vm", "run", "windows", "paint", &a, &b, &c, "--user", "anna",
    ])
    .success();
    let args = w.calls().pop().unwrap();
    assert_eq!(
        args,
        [
            "xfreerdp",
            &format!("/v:127.0.3.2:{port}"),
            "/u:anna",
            "/from-stdin:force",
            "/cert:tofu",
            "+clipboard",
            "/app:mspaint.exe",
            "/app-name:Paint",
            "/app-cmd:\"\\\\tsclient\\bkt1\\Q3, final «é».docx\" \"\\\\tsclient\\bkt2\\ü ber.txt\" \"\\\\tsclient\\home\\it's here.txt\"",
            "/wm-class:bkt-windows-paint",
            &format!("/drive:bkt1,{}", w.p("home/Documents")),
            &format!("/drive:bkt2,{}", w.p("isos")),
            &format!("/drive:home,{}", w.p("home")),
        ]
    );
}

#[test]
fn a_missing_file_stops_everything_before_it_starts() {
    let w = world();
    freerdp(&w, "xfreerdp3", "3.10.3", 0);
    let r = w.bkt(&["vm", "run", "windows", "notepad", "Documents/nope.txt"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: no such file: Documents/nope.txt\nhint: check the path; nothing was started\n"
    );
    assert!(w.calls().is_empty(), "{:?}", w.calls());

    // A name Windows cannot open: also before anything.
    std::fs::write(w.path("home/a:b.txt"), "x").unwrap();
    let r = w.bkt(&["vm", "run", "windows", "notepad", "~/a:b.txt"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        format!(
            "error: {}: Windows cannot open a file whose path holds ':'\n",
            w.p("home/a:b.txt")
        )
    );
    // And a file FreeRDP 3's option parser cannot carry: checked once the
    // client is known, before the VM is touched further.
    std::fs::write(w.path("home/it's here.txt"), "x").unwrap();
    w.rule("virsh", "* domstate --reason windows")
        .out("shut off (shutdown)\n");
    let r = w.bkt(&["vm", "run", "windows", "notepad", "~/it's here.txt"]);
    r.failure();
    assert!(
        r.stderr()
            .starts_with("error: FreeRDP 3 cannot pass \"cmd:\\\"\\\\\\\\tsclient\\\\home\\\\it's here.txt\\\"\" in a comma-separated option: it holds both kinds of quote\n"),
        "{}",
        r.stderr()
    );
    assert_eq!(
        w.calls(),
        [
            virsh_argv(&["domstate", "--reason", "windows"]),
            argv!["xfreerdp3", "/version"]
        ]
    );
}

#[test]
fn remmina_alone_cannot_run_a_program() {
    let w = world();
    w.rule("virsh", "* domstate --reason windows")
        .out("running (booted)\n");
    w.install_fake("remmina");
    w.rule("remmina", "*");
    let r = w.bkt(&["vm", "run", "windows", "notepad"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: only remmina is installed, and Remmina cannot open a single Windows program \
         (RDP RemoteApp) from the command line\n\
         hint: install FreeRDP: apt install freerdp3-x11 (or freerdp2-x11) / dnf install freerdp; \
         `bkt vm connect` keeps working with what you have\n"
    );
    assert!(!w.calls().iter().any(|c| c[0] == "remmina"));

    // The SDL client alone: not for RemoteApp either.
    let w = world();
    w.rule("virsh", "* domstate --reason windows")
        .out("running (booted)\n");
    freerdp(&w, "sdl-freerdp3", "3.10.3", 0);
    let r = w.bkt(&["vm", "run", "windows", "notepad"]);
    r.failure();
    assert!(
        r.stderr().starts_with(
            "error: sdl-freerdp3 cannot open a single Windows program here: RemoteApp needs \
             xfreerdp3 or xfreerdp, with an X display (XWayland on Wayland)\n"
        ),
        "{}",
        r.stderr()
    );
}

#[test]
fn an_unknown_app_says_how_to_name_one() {
    let w = world();
    let r = w.bkt(&["vm", "run", "windows", "word"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: no program \"word\" known in windows\nhint: list them with `bkt vm apps windows`, \
         or give its Windows path ('C:\\Program Files\\...\\x.exe') or its program name (notepad.exe)\n"
    );
    assert!(w.calls().is_empty());
}

#[test]
fn a_saved_vm_is_restored_first() {
    let (_rdp, port) = rdp_listener("127.0.3.3");
    let w = world().rdp_port(port);
    w.rule_first("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-saved.txt"));
    w.rule_first("virsh", "* dominfo windows")
        .out(&fixture("virsh/dominfo-saved.txt"));
    w.rule("virsh", "* start windows")
        .out("Domain 'windows' started\n\n");
    w.rule("virsh", "* domtime windows --sync").out("");
    w.rule("virsh", "* domifaddr windows --source lease")
        .out(&fixture("virsh/domifaddr-lease.txt").replace("192.168.122.4", "127.0.3.3"));
    freerdp(&w, "xfreerdp3", "3.10.3", 0);
    let r = w.bkt(&["vm", "run", "windows", "cmd", "--user", "anna"]);
    r.success();
    let calls = w.calls();
    assert_eq!(
        calls[..4],
        [
            virsh_argv(&["domstate", "--reason", "windows"]),
            argv!["xfreerdp3", "/version"],
            virsh_argv(&["dominfo", "windows"]),
            virsh_argv(&["start", "windows"]),
        ]
    );
    let last = calls.last().unwrap();
    assert!(
        last.starts_with(&argv![
            "xfreerdp3",
            format!("/v:127.0.3.3:{port}"),
            "/u:anna"
        ]) && last.len() > 3,
        "{calls:?}"
    );
}

#[test]
fn a_failed_connection_is_explained_without_a_fallback() {
    let (w, _rdp, _) = running_at(world(), "127.0.3.4");
    freerdp(&w, "xfreerdp3", "3.10.3", 147);
    w.install_fake("virt-viewer");
    w.rule("virt-viewer", "*");
    let r = w.bkt(&["vm", "run", "windows", "notepad", "--user", "anna"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        format!(
            "error: RDP: xfreerdp3 exited with code 147: connection failed (transport)\n\
             hint: the client's log: {}\n",
            w.rdp_log("windows")
        )
    );
    assert!(!w.calls().iter().any(|c| c[0] == "virt-viewer"));
}

#[test]
fn detach_returns_once_the_client_holds_its_connection() {
    let (w, rdp, port) = running_at(world(), "127.0.3.5");
    w.install_fake("xfreerdp3");
    w.rule("xfreerdp3", "/version")
        .out(&fixture("freerdp/xfreerdp3-version.txt"));
    // The client connects to the guest's port and stays, like a session.
    w.rule("xfreerdp3", "/v:*").sh(&format!(
        "/bin/cat >\"$FAKE_DIR/xfreerdp3.stdin\"\n\
         echo $$ >\"$FAKE_DIR/client.pid\"\n\
         exec /usr/bin/python3 -c 'import socket,time; s=socket.create_connection((\"127.0.3.5\",{port})); time.sleep(60)'\n",
    ));
    let r = w.bkt(&[
        "vm", "run", "windows", "notepad", "--user", "anna", "--detach",
    ]);
    let pid: i32 = std::fs::read_to_string(w.path("client.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The client is still there after bkt returned; end it (we started it).
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    unsafe { libc::kill(pid, libc::SIGTERM) };
    drop(rdp);
    r.success();
    assert!(alive, "the client ended with bkt");
    assert_eq!(
        r.stdout().lines().last().unwrap(),
        format!("xfreerdp3 is up; its log: {}", w.rdp_log("windows"))
    );
    assert_eq!(
        std::fs::read_to_string(w.path("xfreerdp3.stdin")).unwrap(),
        format!("{PW}\n")
    );
}

/// A fake xfreerdp3 that prints what Debian's 3.10.3 printed at an NLA
/// login (recorded) and exits with `code`. The recording ended with
/// [`nla_recorded_code`] (the stand-in hangs up after the AUTHENTICATE);
/// a test that gives another code says why.
fn freerdp3_without_md4(w: &World, code: i32) {
    w.install_fake("xfreerdp3");
    w.rule("xfreerdp3", "/version")
        .out(&fixture("freerdp/xfreerdp3-version.txt"));
    w.rule("xfreerdp3", "/v:*")
        .sh("/bin/cat >/dev/null\n")
        .out(&fixture("freerdp/xfreerdp3-nla-md4.txt"))
        .code(code);
}

/// The exit status the NLA log was recorded with (147: transport).
fn nla_recorded_code() -> i32 {
    fixture("freerdp/xfreerdp3-nla-md4.code")
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_failed_login_names_the_missing_md4_and_what_to_do() {
    let (w, _rdp, _) = running_at(world(), "127.0.3.6");
    // Not the recorded 147: 132 is FreeRDP's code for a refused login,
    // which a Windows without MD4 on the client's side gives and the
    // stand-in (it hangs up instead) cannot.
    freerdp3_without_md4(&w, 132);
    let r = w.bkt(&["vm", "run", "windows", "notepad", "--user", "anna"]);
    r.failure();
    let cnf = w.p("home/.cache/bkt/vm/openssl-legacy.cnf");
    let stderr = r.stderr();
    assert!(
        stderr.starts_with(
            "error: xfreerdp3 exited with code 132: authentication failed for anna\n--- xfreerdp3 (last lines of "
        ),
        "{stderr}"
    );
    assert!(
        stderr.ends_with(&format!(
            "hint: check the user name and password (bkt vm run windows notepad --user NAME); \
             a Microsoft account logs in with its email address\n\
             hint: xfreerdp3 logged `Failed to initialize digest md4`: its OpenSSL lacks MD4, which \
             NTLM (Network Level Authentication to a Windows outside a domain) needs. If the login \
             failed for that, load OpenSSL's legacy provider: OPENSSL_CONF={cnf} bkt vm run windows \
             notepad, or use FreeRDP 2: BKT_VM_RDP_CLIENT=xfreerdp bkt vm run windows notepad\n"
        )),
        "{stderr}"
    );
    assert!(
        std::fs::read_to_string(&cnf)
            .unwrap()
            .contains("legacy = legacy_sect\n")
    );
}

#[test]
fn connect_says_it_too_before_falling_back() {
    let (w, _rdp, _) = running_at(world(), "127.0.3.7");
    // Not the recorded 147: 133 (a failed negotiation) is a failure the
    // hint is given for, and the stand-in's hang-up is not.
    freerdp3_without_md4(&w, 133);
    w.install_fake("virt-viewer");
    w.rule("virt-viewer", "*");
    let r = w.bkt(&["vm", "connect", "windows", "--user", "anna"]);
    r.success();
    let log = w.rdp_log("windows");
    let cnf = w.p("home/.cache/bkt/vm/openssl-legacy.cnf");
    assert_eq!(
        r.stderr(),
        format!(
            "✗ RDP: xfreerdp3 exited with code 133: protocol negotiation failed\n  \
             the client's log: {log}\n  \
             xfreerdp3 logged `Failed to initialize digest md4`: its OpenSSL lacks MD4, which \
             NTLM (Network Level Authentication to a Windows outside a domain) needs. If the login \
             failed for that, load OpenSSL's legacy provider: OPENSSL_CONF={cnf} bkt vm connect \
             windows, or use FreeRDP 2: BKT_VM_RDP_CLIENT=xfreerdp bkt vm connect windows\n"
        )
    );
    // A session that ended well (0, not the recorded 147: the same log
    // under a session that went on) says nothing of it, nor does the
    // transport failure the log was recorded with.
    let (w, _rdp, _) = running_at(world(), "127.0.3.8");
    freerdp3_without_md4(&w, 0);
    let r = w.bkt(&["vm", "run", "windows", "notepad", "--user", "anna"]);
    r.success();
    assert_eq!(r.stderr(), "");
    let (w, _rdp, _) = running_at(world(), "127.0.3.10");
    assert_eq!(nla_recorded_code(), 147);
    freerdp3_without_md4(&w, nla_recorded_code());
    let r = w.bkt(&["vm", "run", "windows", "notepad", "--user", "anna"]);
    r.failure();
    assert!(!r.stderr().contains("md4"), "{}", r.stderr());
    assert!(!w.path("home/.cache/bkt/vm/openssl-legacy.cnf").exists());
}

#[test]
fn a_refused_command_line_names_the_argument() {
    let (w, _rdp, _) = running_at(world(), "127.0.3.11");
    w.install_fake("xfreerdp3");
    w.rule("xfreerdp3", "/version")
        .out(&fixture("freerdp/xfreerdp3-version.txt"));
    w.rule("xfreerdp3", "/v:*")
        .sh("/bin/cat >/dev/null\n")
        .out(
            "[13:10:27:416] [29881:000074b9] [ERROR][com.winpr.commandline] - [log_error]: \
             Failed at index 8 [/app:x]: Unexpected keyword\n\nUsage: xfreerdp3 [options]\n    /v:<server>\n",
        )
        .code(23);
    let r = w.bkt(&["vm", "run", "windows", "notepad", "--user", "anna"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        format!(
            "error: xfreerdp3 exited with code 23: the client rejected its command line\n\
             --- xfreerdp3 (last lines of {})\n\
             Failed at index 8 [/app:x]: Unexpected keyword\n\
             hint: or use the SPICE console: bkt vm connect windows --spice\n",
            w.rdp_log("windows")
        )
    );
}

/// `windows` in the manifest as a bkt before `config --share` wrote it
/// (no share, no clipboard), with a field of some other version.
fn managed(w: &World) {
    w.write_manifest(serde_json::json!({"vms": [{
        "name": "windows", "type": "windows11", "disk": w.p("images/windows.qcow2"),
        "created": "2026-11-28", "uri": URI, "rdp_user": "anna", "future": {"x": 1},
    }], "files": []}));
}

#[test]
fn share_none_and_slash_stop_everything_before_it_starts() {
    let w = world();
    freerdp(&w, "xfreerdp3", "3.10.3", 0);
    let (a, _) = files(&w);
    let r = w.bkt(&["vm", "run", "windows", "notepad", &a, "--share", "none"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        format!(
            "error: --share none gives Windows no drive, so it cannot open {a}\n\
             hint: drop --share none to share the file's directory (or leave the file out); \
             nothing was started\n"
        )
    );
    // `/` itself, or through a symlink: never a drive.
    std::os::unix::fs::symlink("/", w.path("home/top")).unwrap();
    for given in ["/", "~/top"] {
        let r = w.bkt(&["vm", "run", "windows", "explorer", given]);
        r.failure();
        assert_eq!(
            r.stderr(),
            "error: /: bkt never shares / (the whole file system) with Windows: open a \
             directory under it\n"
        );
    }
    // As the VM's setting, the error says where `none` comes from.
    managed(&w);
    w.rule("virsh", "* domstate --reason windows")
        .out("shut off (shutdown)\n");
    w.bkt(&["vm", "config", "windows", "--share", "none"])
        .success();
    let r = w.bkt(&["vm", "run", "windows", "notepad", &a]);
    r.failure();
    assert_eq!(
        r.stderr(),
        format!(
            "error: windows shares nothing with Windows (bkt vm config windows --share none), \
             so it cannot open {a}\n\
             hint: share the file's directory for this run: --share files, or for every run: \
             bkt vm config windows --share files; nothing was started\n"
        )
    );
    // Only `config`'s own domstate: run asked nothing.
    assert_eq!(
        w.calls(),
        [virsh_argv(&["domstate", "--reason", "windows"])]
    );
}

#[test]
fn the_vms_share_and_clipboard_reach_run_and_connect() {
    let (w, _rdp, port) = running_at(world(), "127.0.3.12");
    // What every client line here starts with, with the clipboard on and off.
    let client_head = |clipboard: &str| {
        argv![
            "xfreerdp3",
            format!("/v:127.0.3.12:{port}"),
            "/u:anna",
            "/from-stdin:force",
            "/cert:tofu",
            clipboard
        ]
    };
    let (clip_on, clip_off) = (client_head("+clipboard"), client_head("-clipboard"));
    freerdp(&w, "xfreerdp3", "3.10.3", 0);
    managed(&w);
    let (a, _) = files(&w);
    // An entry from before: files, clipboard on, and no drive without a file.
    w.bkt(&["vm", "run", "windows", "notepad"]).success();
    let plain = argv![
        ..&clip_on,
        r"/app:program:C:\Windows\System32\notepad.exe,name:Notepad",
        "/wm-class:bkt-windows-notepad"
    ];
    assert_eq!(w.last_call(), plain);

    let r = w.bkt(&[
        "vm",
        "config",
        "windows",
        "--share",
        "home",
        "--clipboard",
        "off",
    ]);
    r.success();
    assert_eq!(
        r.stdout(),
        "windows: `bkt vm run` shares your whole home, and the directory of each file outside it\n\
         windows: the clipboard is not shared with Windows\n"
    );
    let entry = &w.manifest()["vms"][0];
    assert_eq!(entry["share"], "home");
    assert_eq!(entry["clipboard"], false);
    assert_eq!(entry["future"], serde_json::json!({"x": 1}));
    let r = w.bkt(&["vm", "config", "windows", "--json"]);
    r.success();
    let v: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"name": "windows", "auto_save": 0, "watcher": false,
            "share": "home", "clipboard": false})
    );
    assert_eq!(
        w.bkt(&["vm", "config", "windows"]).stdout(),
        "auto-save   off\n\
         share       home (run shares your whole home, and the directory of each file outside it)\n\
         clipboard   off\n"
    );

    // run, as a menu entry runs it (no --share): the VM's setting.
    w.bkt(&["vm", "run", "windows", "notepad"]).success();
    let home = w.p("home");
    assert_eq!(
        w.last_call(),
        argv![
            ..&clip_off,
            r"/app:program:C:\Windows\System32\notepad.exe,name:Notepad",
            "/wm-class:bkt-windows-notepad",
            format!("/drive:home,{home}")
        ]
    );
    // --share for one run wins over it.
    w.bkt(&["vm", "run", "windows", "notepad", &a, "--share", "files"])
        .success();
    assert_eq!(
        w.last_call(),
        argv![
            ..&clip_off,
            "/app:program:C:\\Windows\\System32\\notepad.exe,'cmd:\"\\\\tsclient\\bkt1\\Q3, final «é».docx\"',name:Notepad",
            "/wm-class:bkt-windows-notepad",
            format!("/drive:bkt1,{}", w.p("home/Documents"))
        ]
    );
    // --share none: no drive, over the VM's home.
    w.bkt(&["vm", "run", "windows", "notepad", "--share", "none"])
        .success();
    assert_eq!(
        w.last_call(),
        argv![
            ..&clip_off,
            r"/app:program:C:\Windows\System32\notepad.exe,name:Notepad",
            "/wm-class:bkt-windows-notepad"
        ]
    );
    // connect: the clipboard off too, and no drive unless --share PATH.
    w.bkt(&["vm", "connect", "windows"]).success();
    assert_eq!(
        w.last_call(),
        argv![
            "xfreerdp3",
            format!("/v:127.0.3.12:{port}"),
            "/u:anna",
            "/from-stdin:force",
            "/cert:tofu",
            "+dynamic-resolution",
            "-clipboard",
            "/sound",
            "/t:windows"
        ]
    );
    // FreeRDP 2 gets the same switch.
    let (w2, _rdp2, port2) = running_at(world(), "127.0.3.13");
    freerdp(&w2, "xfreerdp", "2.11.7", 0);
    managed(&w2);
    w2.bkt(&["vm", "config", "windows", "--clipboard", "off"])
        .success();
    w2.bkt(&["vm", "run", "windows", "paint"]).success();
    assert_eq!(
        w2.last_call(),
        argv![
            "xfreerdp",
            format!("/v:127.0.3.13:{port2}"),
            "/u:anna",
            "/from-stdin:force",
            "/cert:tofu",
            "-clipboard",
            "/app:mspaint.exe",
            "/app-name:Paint",
            "/wm-class:bkt-windows-paint"
        ]
    );
    w2.bkt(&["vm", "connect", "windows"]).success();
    assert_eq!(
        w2.last_call(),
        argv![
            "xfreerdp",
            format!("/v:127.0.3.13:{port2}"),
            "/u:anna",
            "/from-stdin:force",
            "/cert:tofu",
            "/dynamic-resolution",
            "-clipboard",
            "/sound",
            "/t:windows"
        ]
    );
}

#[test]
fn remmina_cannot_keep_the_clipboard_off() {
    let (w, _rdp, _) = running_at(world(), "127.0.3.14");
    managed(&w);
    w.bkt(&["vm", "config", "windows", "--clipboard", "off"])
        .success();
    w.install_fake("remmina");
    w.rule("remmina", "*");
    w.install_fake("virt-viewer");
    w.rule("virt-viewer", "*");
    let r = w.bkt(&["vm", "connect", "windows"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: Remmina cannot be told from its command line to keep the clipboard to itself, \
         and windows's clipboard is off\n\
         hint: install FreeRDP (apt install freerdp3-x11 / dnf install freerdp), or share the \
         clipboard: bkt vm config windows --clipboard on\n"
    );
    assert!(
        !w.calls()
            .iter()
            .any(|c| c[0] == "remmina" || c[0] == "virt-viewer")
    );
}

#[test]
fn a_share_word_this_bkt_does_not_know_is_an_error() {
    let w = world();
    managed(&w);
    let mut m = w.manifest();
    m["vms"][0]["share"] = "everything".into();
    w.write_manifest(m);
    freerdp(&w, "xfreerdp3", "3.10.3", 0);
    let r = w.bkt(&["vm", "run", "windows", "notepad"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: the manifest says windows shares \"everything\" with Windows, which this bkt \
         does not know\nhint: set it again: bkt vm config windows --share files (or home, none)\n"
    );
    assert!(w.calls().is_empty());
}

#[test]
fn each_session_has_its_own_log_and_the_last_five_stay() {
    let (w, _rdp, _) = running_at(world(), "127.0.3.12");
    freerdp(&w, "xfreerdp3", "3.10.3", 147);
    let dir = w.path("home/.cache/bkt/vm");
    // Five earlier sessions, the log of an older bkt, and the logs of a VM
    // whose name starts like this one's.
    let old: Vec<String> = (1..=5)
        .map(|i| format!("windows-rdp-20200101T00000{i}Z-{i}.log"))
        .collect();
    let others = [
        "windows-rdp.log",
        "windows-rdp-x-rdp-20190101T000000Z-1.log",
    ];
    for f in old.iter().map(String::as_str).chain(others) {
        std::fs::write(dir.join(f), "an earlier session\n").unwrap();
    }
    let r = w.bkt(&["vm", "run", "windows", "notepad", "--user", "anna"]);
    r.failure();
    let mut logs: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("windows-rdp"))
        .collect();
    logs.sort();
    let new = logs
        .iter()
        .find(|n| !old.contains(n) && !others.contains(&n.as_str()))
        .expect("a log of its own")
        .clone();
    // The oldest went; four earlier ones and the new one are left.
    let mut want: Vec<String> = old[1..].to_vec();
    want.push(new.clone());
    want.extend(others.iter().map(|s| s.to_string()));
    want.sort();
    assert_eq!(logs, want);
    // The error names this session's log, which holds this session alone.
    assert!(
        r.stderr().ends_with(&format!(
            "hint: the client's log: {}\n",
            dir.join(&new).display()
        )),
        "{}",
        r.stderr()
    );
    assert!(
        !std::fs::read_to_string(dir.join(&new))
            .unwrap()
            .contains("an earlier session")
    );
}
