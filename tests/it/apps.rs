//! `bkt vm apps` against fakes: a fake virsh standing in for the guest
//! agent (guest-exec, then guest-exec-status), answering in the format QEMU
//! specifies and the discovery script's specified output.

use base64::Engine;

use crate::harness::{URI, World, argv, fixture, freerdp, has_args, rdp_listener, virsh_argv};

fn world(state: &str) -> World {
    let w = World::new()
        .env("DISPLAY", ":42")
        .env("BKT_VM_RDP_PASSWORD", "pw")
        .env("BKT_VM_NOW", "1795000000");
    w.nothing_saved();
    w.rule("virsh", "* domstate --reason windows")
        .out(&format!("{state}\n"));
    w
}

/// The agent runs the script: running once, then exited with its output.
fn agent_answers(w: &World) {
    w.rule("virsh", "* qemu-agent-command windows *guest-exec-status*")
        .out(&fixture("guest/guest-exec-status-running.json"))
        .times(1);
    w.rule("virsh", "* qemu-agent-command windows *guest-exec-status*")
        .out(&fixture("guest/guest-exec-status-exited.json"));
    w.rule("virsh", "* qemu-agent-command windows *guest-exec*")
        .out(&fixture("guest/guest-exec.json"));
}

const TABLE: &str = "\
ID          NAME                OPENS
notepad     Notepad             -
paint       Paint               -
explorer    File Explorer       -
cmd         Command Prompt      -
powershell  Windows PowerShell  -
word        Word                .doc .docx .rtf
notepad-2   Notepad++           .ini .log .md .txt
calculator  Calculator          -
";

#[test]
fn windows_is_asked_once_then_the_cache_answers() {
    let w = world("running (booted)");
    agent_answers(&w);
    let r = w.bkt(&["vm", "apps", "windows"]);
    r.success();
    let calls = w.calls();
    assert_eq!(calls.len(), 4, "{calls:?}");
    // guest-exec: PowerShell with the script, encoded; then two looks.
    let exec: serde_json::Value = serde_json::from_str(&calls[1][5]).unwrap();
    assert_eq!(
        calls[1][..5],
        ["virsh", "-c", URI, "qemu-agent-command", "windows"]
    );
    assert_eq!(calls[1][6..], ["--timeout", "10"]);
    assert_eq!(exec["execute"], "guest-exec");
    assert_eq!(exec["arguments"]["path"], "powershell.exe");
    assert_eq!(exec["arguments"]["capture-output"], true);
    let arg = exec["arguments"]["arg"].as_array().unwrap();
    assert_eq!(
        arg[..5],
        [
            "-NoProfile",
            "-NonInteractive",
            "-ExecutionPolicy",
            "Bypass",
            "-EncodedCommand"
        ]
    );
    let utf16 = base64::engine::general_purpose::STANDARD
        .decode(arg[5].as_str().unwrap())
        .unwrap();
    let units: Vec<u16> = utf16
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let script = String::from_utf16(&units).unwrap();
    assert!(script.contains("Get-StartApps"), "{script}");
    assert!(script.ends_with("ConvertTo-Json -Depth 4 -Compress\n"));
    for c in &calls[2..] {
        assert_eq!(
            c[5],
            r#"{"arguments":{"pid":141},"execute":"guest-exec-status"}"#
        );
    }
    let table = TABLE;
    assert_eq!(r.stdout(), table);
    assert_eq!(r.stderr(), "asking Windows in windows for its programs …\n");

    // The cache answers now, saying since when.
    let r = w.bkt(&["vm", "apps", "windows"]);
    r.success();
    assert_eq!(r.stdout(), table);
    assert_eq!(
        r.stderr(),
        "(as Windows listed them at 2026-11-18 11:06 UTC; `bkt vm apps windows --refresh` asks again)\n"
    );
    // Only the VM's state was looked at.
    let calls = w.calls();
    assert_eq!(calls.len(), 5);
    assert_eq!(calls[4], virsh_argv(&["domstate", "--reason", "windows"]));
    // --json has the icons.
    let r = w.bkt(&["vm", "apps", "windows", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(v["from"], "cache");
    assert_eq!(v["apps"][5]["id"], "word");
    assert_eq!(
        v["apps"][5]["program"],
        r"C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE"
    );
    assert!(
        v["apps"][5]["icon"]
            .as_str()
            .unwrap()
            .starts_with("iVBORw0KGgo")
    );
    assert_eq!(
        v["apps"][7]["args"],
        r"shell:AppsFolder\Microsoft.WindowsCalculator_8wekyb3d8bbwe!App"
    );
    // --refresh asks again.
    agent_answers(&w);
    w.bkt(&["vm", "apps", "windows", "--refresh"]).success();
    let calls = w.calls();
    assert_eq!(
        calls[7][..5],
        ["virsh", "-c", URI, "qemu-agent-command", "windows"]
    );
    let exec: serde_json::Value = serde_json::from_str(&calls[7][5]).unwrap();
    assert_eq!(exec["execute"], "guest-exec");
}

#[test]
fn no_agent_lists_the_builtins_and_says_what_to_install() {
    let w = world("running (booted)");
    w.rule("virsh", "* qemu-agent-command windows *")
        .err(&fixture("virsh/domtime-sync-no-agent.txt"))
        .code(1);
    let r = w.bkt(&["vm", "apps", "windows"]);
    r.success();
    assert_eq!(
        r.stdout(),
        TABLE.lines().take(6).collect::<Vec<_>>().join("\n") + "\n"
    );
    assert_eq!(
        r.stderr(),
        "⚠ the guest agent in windows does not answer, so Windows cannot be asked what is \
         installed: these are the programs every Windows 11 has\n  install the guest tools in \
         Windows (virtio-win-guest-tools.exe on the virtio-win ISO; `bkt vm download` fetches \
         them), then: bkt vm apps windows --refresh\n"
    );
    // Nothing was kept: the next call asks again.
    w.bkt(&["vm", "apps", "windows"]).success();
    assert_eq!(
        w.calls()
            .iter()
            .filter(|c| c.starts_with(&virsh_argv(&["qemu-agent-command", "windows"])))
            .count(),
        2
    );
}

#[test]
fn a_vm_that_is_off_is_not_started_for_this() {
    let w = world("shut off (shutdown)");
    let r = w.bkt(&["vm", "apps", "windows", "--json"]);
    r.success();
    let v: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(v["from"], "builtin");
    assert_eq!(v["apps"].as_array().unwrap().len(), 5);
    assert_eq!(
        r.stderr(),
        "⚠ windows is shut off, so Windows cannot be asked what is installed: these are the \
         programs every Windows 11 has\n  start it, then: bkt vm apps windows --refresh\n"
    );
    assert_eq!(
        w.calls(),
        [virsh_argv(&["domstate", "--reason", "windows"])]
    );
}

#[test]
fn a_failing_script_is_an_error_with_its_stderr() {
    let w = world("running (booted)");
    let err = base64::engine::general_purpose::STANDARD.encode("Add-Type : denied\r\n");
    w.rule("virsh", "* qemu-agent-command windows *guest-exec-status*")
        .out(&format!(
            "{{\"return\":{{\"exitcode\":1,\"err-data\":\"{err}\",\"exited\":true}}}}\n"
        ));
    w.rule("virsh", "* qemu-agent-command windows *guest-exec*")
        .out(&fixture("guest/guest-exec.json"));
    let r = w.bkt(&["vm", "apps", "windows"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "asking Windows in windows for its programs …\n\
         error: the PowerShell script that lists windows's programs failed (exit code 1)\nAdd-Type : denied\n"
    );
}

#[test]
fn run_knows_the_ids_apps_found() {
    let (_rdp, port) = rdp_listener("127.0.3.9");
    let w = world("running (booted)").rdp_port(port);
    agent_answers(&w);
    w.bkt(&["vm", "apps", "windows"]).success();
    w.rule("virsh", "* domifaddr windows --source lease")
        .out(&fixture("virsh/domifaddr-lease.txt").replace("192.168.122.4", "127.0.3.9"));
    freerdp(&w, "xfreerdp3", "3.10.3", 0);
    w.bkt(&["vm", "run", "windows", "word", "--user", "anna"])
        .success();
    let last = w.last_call();
    assert!(
        has_args(
            &last,
            &[
                r"/app:program:C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE,name:Word",
                "/wm-class:bkt-windows-word"
            ]
        ),
        "{last:?}"
    );
    // A Store app: explorer.exe with its AppsFolder id first.
    w.bkt(&["vm", "run", "windows", "calculator", "--user", "anna"])
        .success();
    let last = w.last_call();
    assert!(
        has_args(
            &last,
            &[
                r"/app:program:explorer.exe,cmd:shell:AppsFolder\Microsoft.WindowsCalculator_8wekyb3d8bbwe!App,name:Calculator",
                "/wm-class:bkt-windows-calculator"
            ]
        ),
        "{last:?}"
    );
}

/// A world whose shared-mime-info database is the recorded one, with a
/// fake update-desktop-database.
fn desktop_world() -> World {
    let w = world("running (booted)");
    let share = w.path("share/mime");
    std::fs::create_dir_all(&share).unwrap();
    std::fs::write(share.join("globs2"), fixture("mime/globs2")).unwrap();
    let share = w.p("share");
    let w = w.env("XDG_DATA_DIRS", &share);
    w.install_fake("update-desktop-database");
    w.rule("update-desktop-database", "*");
    agent_answers(&w);
    w
}

/// desktop-file-validate (desktop-file-utils, which
/// scripts/provision-virt-stack.sh installs) has nothing to say.
fn valid(path: &std::path::Path) {
    let out = std::process::Command::new("desktop-file-validate")
        .arg(path)
        .output()
        .expect("desktop-file-validate (apt install desktop-file-utils)");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "{}: {}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn applications(w: &World) -> std::path::PathBuf {
    w.path("home/.local/share/applications")
}

#[test]
fn menu_entries_with_icons_and_mime_types_that_validate() {
    let w = desktop_world();
    let r = w.bkt(&["vm", "apps", "windows", "--install", "word", "notepad"]);
    r.success();
    let apps = applications(&w);
    let icon = w.path("home/.local/share/icons/hicolor/32x32/apps/bkt-windows-word.png");
    assert_eq!(
        r.stdout(),
        format!(
            "Added 3 menu entries for windows (your default applications are unchanged):\n  {}\n  {}\n  {}\n  {}\n",
            icon.display(),
            apps.join("bkt-windows-word.desktop").display(),
            apps.join("bkt-windows-notepad.desktop").display(),
            apps.join("bkt-windows.desktop").display(),
        )
    );
    let bkt = env!("CARGO_BIN_EXE_bkt");
    // Exec pins no --share: the entry follows the VM's `config --share`
    // (tests/it/run.rs: the_vms_share_and_clipboard_reach_run_and_connect).
    assert_eq!(
        std::fs::read_to_string(apps.join("bkt-windows-word.desktop")).unwrap(),
        format!(
            "[Desktop Entry]\nType=Application\nVersion=1.4\nName=Word (windows)\n\
             Comment=Word in the Windows VM windows\n\
             Exec={bkt} vm --connect qemu:///system run windows word %F\nTryExec={bkt}\n\
             Icon=bkt-windows-word\nTerminal=false\nCategories=Utility;\n\
             StartupWMClass=bkt-windows-word\n\
             MimeType=application/msword;application/rtf;application/vnd.openxmlformats-officedocument.wordprocessingml.document;\n\
             X-Bkt-VM=windows\nX-Bkt-URI=qemu:///system\nX-Bkt-App=word\n"
        )
    );
    // The icon is the PNG the guest sent.
    let png = std::fs::read(&icon).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // Notepad brought no icon here: a theme icon; the desktop: connect.
    let notepad = std::fs::read_to_string(apps.join("bkt-windows-notepad.desktop")).unwrap();
    assert!(
        notepad.contains("\nIcon=accessories-text-editor\n"),
        "{notepad}"
    );
    let desktop = std::fs::read_to_string(apps.join("bkt-windows.desktop")).unwrap();
    assert!(desktop.contains(&format!(
        "\nExec={bkt} vm --connect qemu:///system connect windows\n"
    )));
    for f in ["bkt-windows-word", "bkt-windows-notepad", "bkt-windows"] {
        valid(&apps.join(format!("{f}.desktop")));
    }
    assert_eq!(
        w.last_call(),
        argv!["update-desktop-database", "-q", apps.display()]
    );
    // Default applications are the user's: never written.
    assert!(!w.path("home/.config/mimeapps.list").exists());
    assert!(!apps.join("mimeapps.list").exists());
}

#[test]
fn install_all_then_uninstall_one_then_all_and_never_another_vms() {
    let w = desktop_world();
    let apps = applications(&w);
    // Another VM's entry, at a name this VM's could take.
    std::fs::create_dir_all(&apps).unwrap();
    std::fs::write(
        apps.join("bkt-other-word.desktop"),
        "[Desktop Entry]\nX-Bkt-VM=other\nX-Bkt-URI=qemu:///system\nX-Bkt-App=word\nIcon=bkt-other-word\n",
    )
    .unwrap();
    w.bkt(&["vm", "apps", "windows", "--install", "--all"])
        .success();
    let mut files: Vec<String> = std::fs::read_dir(&apps)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "bkt-other-word.desktop",
            "bkt-windows-calculator.desktop",
            "bkt-windows-cmd.desktop",
            "bkt-windows-explorer.desktop",
            "bkt-windows-notepad-2.desktop",
            "bkt-windows-notepad.desktop",
            "bkt-windows-paint.desktop",
            "bkt-windows-powershell.desktop",
            "bkt-windows-word.desktop",
            "bkt-windows.desktop",
        ]
    );
    for f in &files[1..] {
        valid(&apps.join(f));
    }
    let icons = w.path("home/.local/share/icons/hicolor/32x32/apps");
    let r = w.bkt(&["vm", "apps", "windows", "--uninstall", "word"]);
    r.success();
    assert_eq!(
        r.stdout(),
        format!(
            "Removed:\n  {}\n  {}\n",
            icons.join("bkt-windows-word.png").display(),
            apps.join("bkt-windows-word.desktop").display()
        )
    );
    assert!(icons.join("bkt-windows-notepad-2.png").exists());
    let r = w.bkt(&["vm", "apps", "windows", "--uninstall", "--all"]);
    r.success();
    assert_eq!(r.stdout().lines().count(), 1 + 8 + 1, "{}", r.stdout());
    let left: Vec<String> = std::fs::read_dir(&apps)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["bkt-other-word.desktop"]);
    assert_eq!(std::fs::read_dir(&icons).unwrap().count(), 0);
    let r = w.bkt(&["vm", "apps", "windows", "--uninstall", "--all"]);
    assert_eq!(r.stdout(), "No menu entries of windows to remove\n");
}

#[test]
fn install_says_what_it_needs() {
    let w = desktop_world();
    let r = w.bkt(&["vm", "apps", "windows", "--install"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: --install needs the programs' ids, or --all\n\
         hint: the ids are in the first column of `bkt vm apps windows`\n"
    );
    let r = w.bkt(&["vm", "apps", "windows", "--install", "excel"]);
    r.failure();
    assert!(
        r.stderr().ends_with(
            "error: no program \"excel\" known in windows\n\
             hint: the ids are in the first column of `bkt vm apps windows`\n"
        ),
        "{}",
        r.stderr()
    );
    let r = w.bkt(&["vm", "apps", "windows", "--all"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: --all goes with --install or --uninstall\n"
    );
    assert!(!applications(&w).exists());
}

/// The agent runs the script, which prints `stdout` and `stderr` and exits
/// with `code` (guest-exec, then guest-exec-status once exited).
fn agent_prints(w: &World, stdout: &str, stderr: &str, code: i32) {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    w.rule("virsh", "* qemu-agent-command windows *guest-exec-status*")
        .out(&format!(
            "{{\"return\":{{\"exitcode\":{code},\"out-data\":\"{}\",\"err-data\":\"{}\",\"exited\":true}}}}\n",
            b64(stdout),
            b64(stderr)
        ));
    w.rule("virsh", "* qemu-agent-command windows *guest-exec*")
        .out(&fixture("guest/guest-exec.json"));
}

/// The discovery script's output from a guest that means harm
/// (fixtures/guest/apps-script-output-hostile.json, hand-typed).
fn hostile(w: &World) {
    agent_prints(w, &fixture("guest/apps-script-output-hostile.json"), "", 0);
}

/// The name of 20 × "Very long name" the hostile guest sends.
fn long_name() -> String {
    vec!["Very long name"; 20].join(" ")
}

#[test]
fn what_a_hostile_guest_names_is_shown_escaped() {
    let w = world("running (booted)");
    hostile(&w);
    let long_id = "very-long-name-".repeat(5)[..64]
        .trim_end_matches('-')
        .to_string();
    assert_eq!(long_id.len(), 59 + 5);
    let name = long_name();
    let n = name.len();
    let table = format!(
        "\
{:64}  {:n$}  OPENS
{:64}  {:n$}  -
{:64}  {:n$}  -
{:64}  {:n$}  -
{:64}  {:n$}  -
{:64}  {:n$}  -
{:64}  {:n$}  .doc\\x1b[31m .rtf
{:64}  {:n$}  -
{:64}  {:n$}  -
{long_id}  {name}  -
{:64}  {:n$}  -
",
        "ID",
        "NAME",
        "notepad",
        "Notepad",
        "paint",
        "Paint",
        "explorer",
        "File Explorer",
        "cmd",
        "Command Prompt",
        "powershell",
        "Windows PowerShell",
        "word-0-owned-2j",
        r"Word\x1b]0;owned\x07\x1b[2J",
        "invoice-cod-exe",
        r"Invoice\u{202e}cod.exe",
        "back-space-31m",
        r"Back\x0dSpace\x9b31m",
        "bad-icon",
        "Bad Icon",
    );
    let r = w.bkt(&["vm", "apps", "windows"]);
    r.success();
    assert_eq!(r.stdout(), table);
    // Nothing the guest sent reaches the terminal unescaped.
    for c in ['\x1b', '\x07', '\r', '\u{202e}', '\u{9b}'] {
        assert!(!r.stdout().contains(c), "{c:?}");
    }
    // From the cache, the same.
    let r = w.bkt(&["vm", "apps", "windows"]);
    assert_eq!(r.stdout(), table);
    // A program's menu entry has none of it either (the Desktop Entry
    // string escape drops control characters).
    let w = desktop_world_with(hostile);
    w.bkt(&["vm", "apps", "windows", "--install", "word-0-owned-2j"])
        .success();
    let entry =
        std::fs::read_to_string(applications(&w).join("bkt-windows-word-0-owned-2j.desktop"))
            .unwrap();
    assert!(
        entry.contains("\nName=Word]0;owned[2J (windows)\n"),
        "{entry}"
    );
}

#[test]
fn the_scripts_errors_are_shown_escaped() {
    let w = world("running (booted)");
    agent_prints(
        &w,
        "",
        "Add-Type : \x1b]0;owned\x07denied\r\nat line 1\u{202e}\r\n",
        1,
    );
    let r = w.bkt(&["vm", "apps", "windows"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "asking Windows in windows for its programs …\n\
         error: the PowerShell script that lists windows's programs failed (exit code 1)\n\
         Add-Type : \\x1b]0;owned\\x07denied\nat line 1\\u{202e}\n"
    );
}

/// [`desktop_world`] whose agent answers with `answers`.
fn desktop_world_with(answers: fn(&World)) -> World {
    let w = world("running (booted)");
    let share = w.path("share/mime");
    std::fs::create_dir_all(&share).unwrap();
    std::fs::write(share.join("globs2"), fixture("mime/globs2")).unwrap();
    let share = w.p("share");
    let w = w.env("XDG_DATA_DIRS", &share);
    w.install_fake("update-desktop-database");
    w.rule("update-desktop-database", "*");
    answers(&w);
    w
}

fn updates(w: &World) -> usize {
    w.calls()
        .iter()
        .filter(|c| c[0] == "update-desktop-database")
        .count()
}

#[test]
fn a_bad_icon_refuses_the_whole_install_and_nothing_is_written() {
    let w = desktop_world_with(hostile);
    let r = w.bkt(&["vm", "apps", "windows", "--install", "--all"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "asking Windows in windows for its programs …\n\
         error: the icon Windows in windows gave for bad-icon is not one bkt can use: \
         not a PNG image; nothing was written\n\
         hint: leave it out (bkt vm apps windows --install with the other ids), or ask \
         Windows again: bkt vm apps windows --refresh\n"
    );
    assert!(!w.path("home/.local/share").exists());
    assert_eq!(updates(&w), 0);
    // The others, by id: written, and the database updated once.
    let r = w.bkt(&["vm", "apps", "windows", "--install", "invoice-cod-exe"]);
    r.success();
    assert_eq!(r.stdout().lines().count(), 3, "{}", r.stdout());
    assert_eq!(updates(&w), 1);
    assert_eq!(
        w.last_call(),
        argv!["update-desktop-database", "-q", applications(&w).display()]
    );
}

#[test]
fn an_id_longer_than_bkt_makes_is_refused() {
    let w = desktop_world();
    w.bkt(&["vm", "apps", "windows"]).success();
    // A cache an older bkt (or a hand) wrote, with an id of 65 letters.
    let cache = w.path("home/.cache/bkt/vm");
    let file = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".apps.json"))
        .unwrap();
    let long = "w".repeat(65);
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("\"id\": \"word\"", &format!("\"id\": \"{long}\""));
    assert!(text.contains(&long));
    std::fs::write(&file, text).unwrap();
    let refused = format!(
        "error: the program id \"{long}\" is not one bkt makes (1 to 64 lower-case letters, \
         digits and -; this one has 65 characters); nothing was written\n\
         hint: ask Windows again for new ids: bkt vm apps windows --refresh\n"
    );
    for args in [
        &["vm", "apps", "windows", "--install", "--all"][..],
        &["vm", "apps", "windows", "--install", &long],
    ] {
        let r = w.bkt(args);
        r.failure();
        assert_eq!(r.stderr(), refused);
    }
    assert!(!w.path("home/.local/share").exists());
    assert_eq!(updates(&w), 0);
    // Nor does `run` start it.
    let r = w.bkt(&["vm", "run", "windows", &long]);
    r.failure();
    assert_eq!(
        r.stderr(),
        format!(
            "error: the program id \"{long}\" is not one bkt makes (1 to 64 lower-case \
             letters, digits and -; this one has 65 characters)\n"
        )
    );
}

#[test]
fn a_write_that_fails_removes_what_this_install_wrote() {
    let w = desktop_world();
    // The desktop's entry, written last, cannot be: a directory has its
    // name.
    let apps = applications(&w);
    // Notepad's entry from an earlier install: put back as it was, not
    // removed, when this one fails.
    w.bkt(&["vm", "apps", "windows", "--install", "notepad"])
        .success();
    let earlier = apps.join("bkt-windows-notepad.desktop");
    let before = std::fs::read_to_string(&earlier).unwrap();
    let icons = w.path("home/.local/share/icons/hicolor/32x32/apps");
    let icons_before = std::fs::read_dir(&icons).map_or(0, |d| d.count());
    std::fs::remove_file(apps.join("bkt-windows.desktop")).unwrap();
    std::fs::create_dir_all(apps.join("bkt-windows.desktop")).unwrap();
    let r = w.bkt(&["vm", "apps", "windows", "--install", "word", "notepad"]);
    r.failure();
    let stderr = r.stderr();
    assert!(
        stderr.starts_with(&format!(
            "error: cannot write {} (undid the 3 files written before it)\ncaused by: ",
            apps.join("bkt-windows.desktop").display()
        )),
        "{stderr}"
    );
    // The directory and the earlier entry, as it was; the icon's
    // directory is empty.
    let mut left: Vec<String> = std::fs::read_dir(&apps)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["bkt-windows-notepad.desktop", "bkt-windows.desktop"]);
    assert_eq!(std::fs::read_to_string(&earlier).unwrap(), before);
    // Word's icon gone again, the earlier ones as they were.
    assert_eq!(
        std::fs::read_dir(&icons).map_or(0, |d| d.count()),
        icons_before
    );
    // Files were written (then undone): the database is told, once for
    // the earlier install and once for this one.
    assert_eq!(updates(&w), 2);
}

#[test]
fn asking_windows_keeps_the_vm_in_use() {
    let w = world("running (booted)");
    w.write_manifest(
        serde_json::json!({"vms": [{"name": "windows", "type": "windows11",
        "disk": w.p("images/windows.qcow2"), "created": "2026-01-25", "uri": URI}]}),
    );
    crate::save::auto_save_on(&w);
    // The guest starts the script, and the test holds it there.
    w.rule_first("virsh", "* qemu-agent-command windows *guest-exec*")
        .out(&fixture("guest/guest-exec.json"))
        .sh(&w.hold())
        .times(1);
    agent_answers(&w);
    crate::save::in_use_while_held(&w, &["vm", "apps", "windows"], "the guest was never asked");
    crate::save::unused(&w);
    assert_eq!(
        crate::save::look(&w, 5060),
        "windows: unused for 1m; saved in 14m unless used\n"
    );
    assert!(
        !w.calls()
            .iter()
            .any(|c| crate::harness::mentions(c, "managedsave"))
    );
}

/// `run` of a program the guest named with terminal control in it: the
/// line that shows the client's argv shows it escaped too.
#[test]
fn run_shows_what_the_guest_named_escaped() {
    let (_rdp, port) = rdp_listener("127.0.3.13");
    let w = world("running (booted)").rdp_port(port);
    hostile(&w);
    w.bkt(&["vm", "apps", "windows"]).success();
    w.rule("virsh", "* domifaddr windows --source lease")
        .out(&fixture("virsh/domifaddr-lease.txt").replace("192.168.122.4", "127.0.3.13"));
    freerdp(&w, "xfreerdp3", "3.10.3", 0);
    let r = w.bkt(&["vm", "run", "windows", "word-0-owned-2j", "--user", "anna"]);
    r.success();
    for c in ['\x1b', '\x07'] {
        assert!(!r.stdout().contains(c), "{:?}", r.stdout());
    }
    assert!(
        r.stdout().contains(r"name:Word\x1b]0;owned\x07\x1b[2J"),
        "{}",
        r.stdout()
    );
    // The client itself gets the name as the guest gave it: it is data
    // for FreeRDP, not for the terminal.
    assert!(
        w.last_call()
            .iter()
            .any(|a| a.contains("name:Word\x1b]0;owned\x07\x1b[2J")),
        "{:?}",
        w.last_call()
    );
}
