//! `bkt vm run` with the real clients against the tiny guest's port 3389
//! (which accepts and closes): FreeRDP 2.11 (`xfreerdp`) and FreeRDP 3.10
//! (`xfreerdp3`) each get bkt's RemoteApp argv (a file in the home with a
//! comma and non-ASCII in its name) and must fail at the connection, not at
//! their argument parser; the same argv with one unknown option must fail
//! at the parser, which shows the two apart. Each also gets the argv of a VM
//! whose clipboard is off (`-clipboard`), which must fail at the connection
//! too.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use crate::guests::{Xvfb, define_tiny, wait_until_up};
use crate::harness::*;

#[test]
#[ignore = "needs the real virt stack: run scripts/test-all.sh"]
fn run_gives_both_freerdp_generations_an_argv_they_take() {
    let name = "e2e-rapp";
    let env = Env::new("remoteapp", &[name]);
    define_tiny(&env, name, 1, "");
    wait_until_up(&env, name);
    real_clients(&env, name);
    ok(&env.bkt(&["vm", "destroy", name, "--yes"]));
    assert!(!defined(name));
}

/// One `bkt vm run NAME notepad FILE` with `client`; its exit code, stdout,
/// stderr and the client's log.
fn run_with(
    env: &Env,
    x: &Xvfb,
    name: &str,
    client: &str,
    file: &str,
) -> (i32, String, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bkt"))
        .args([
            "vm",
            "run",
            name,
            "notepad",
            file,
            "--user",
            "anna",
            "--timeout",
            "60",
        ])
        .env("BKT_VM_MANIFEST", env.manifest())
        // bkt's certificate pins in the test's home, never root's.
        .env("XDG_CONFIG_HOME", env.home.path().join(".config"))
        .env("NO_COLOR", "1")
        .env("DISPLAY", &x.display)
        .env("HOME", env.home.path())
        .env("XDG_CACHE_HOME", env.work.path())
        .env("BKT_VM_RDP_PASSWORD", "not-a-real-password")
        .env("BKT_VM_RDP_CLIENT", client)
        .env_remove("LIBVIRT_DEFAULT_URI")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("$ BKT_VM_RDP_CLIENT={client} bkt vm run {name} notepad {file}\n{stdout}{stderr}");
    let log = fs::read_to_string(last_rdp_log(env.work.path(), name)).unwrap_or_default();
    (out.status.code().unwrap_or(-1), stdout, stderr, log)
}

fn real_clients(env: &Env, name: &str) {
    eprintln!("== run (RemoteApp) with the real FreeRDP 2 and 3");
    let x = Xvfb::start();
    let docs = env.home.path().join("Docs");
    fs::create_dir_all(&docs).unwrap();
    let file = docs.join("Q3, final «é».docx");
    fs::write(&file, "x").unwrap();
    let file = file.to_str().unwrap();
    let docs = fs::canonicalize(&docs).unwrap();
    let ip = ok(&env.bkt(&["vm", "ip", name])).trim().to_string();

    for client in ["xfreerdp", "xfreerdp3"] {
        let version = x.freerdp_version(client);
        // bkt's argv: the connection fails (the stand-in hangs up), 147.
        let (code, stdout, stderr, log) = run_with(env, &x, name, client, file);
        assert_eq!(code, 1, "{stderr}");
        assert!(
            stdout.starts_with(&format!("→ FreeRDP {version}: {client} /v:{ip} /u:anna ")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!(" /wm-class:bkt-{name}-notepad ")),
            "{stdout}"
        );
        // Only the file's directory, not the home it is in.
        let arrow = stdout
            .lines()
            .find(|l| l.starts_with('→'))
            .unwrap_or_default();
        assert!(
            arrow.ends_with(&format!(
                " /wm-class:bkt-{name}-notepad /drive:bkt1,{}",
                docs.display()
            )),
            "{stdout}"
        );
        assert!(!stdout.contains("/drive:home"), "{stdout}");
        assert!(
            stderr.contains(&format!(
                "error: RDP: {client} exited with code 147: connection failed (transport)"
            )),
            "{stderr}"
        );
        assert!(log.contains("ERRCONNECT_CONNECT_TRANSPORT_FAILED"), "{log}");
        assert!(!log.contains("Failed at index"), "{log}");
        assert!(!log.contains("does not exist, skipping"), "{log}");
        assert!(!format!("{stdout}{stderr}{log}").contains("not-a-real-password"));

        // The same argv and one unknown option: the parser refuses it (23).
        let wrapper = env.work.path().join(format!("bad-{client}")).join(client);
        fs::create_dir_all(wrapper.parent().unwrap()).unwrap();
        fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\n[ \"$1\" = /version ] && exec {client} \"$@\"\nexec {client} \"$@\" /no-such-option\n"
            ),
        )
        .unwrap();
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
        let (code, _, stderr, log) = run_with(env, &x, name, wrapper.to_str().unwrap(), file);
        assert_eq!(code, 1, "{stderr}");
        assert!(
            stderr.contains("exited with code 23: the client rejected its command line"),
            "{stderr}"
        );
        assert!(
            log.contains("[/no-such-option]: Unexpected keyword"),
            "{log}"
        );
        assert!(!log.contains("ERRCONNECT"), "{log}");

        // The VM's clipboard off (`config --clipboard off`, written here as
        // the manifest entry config keeps it in, for a VM bkt did not make):
        // `-clipboard`, which the parser takes; the connection fails (147).
        let before = fs::read(env.manifest()).ok();
        let entry = serde_json::json!({"vms": [{
            "name": name, "type": "windows11", "disk": "", "created": "2026-12-07",
            "uri": URI, "clipboard": false,
        }], "files": []});
        fs::write(env.manifest(), entry.to_string()).unwrap();
        let (code, stdout, stderr, log) = run_with(env, &x, name, client, file);
        match before {
            Some(b) => fs::write(env.manifest(), b).unwrap(),
            None => fs::remove_file(env.manifest()).unwrap(),
        }
        assert_eq!(code, 1, "{stderr}");
        assert!(stdout.contains(" /cert:tofu -clipboard "), "{stdout}");
        assert!(
            stderr.contains(&format!(
                "error: RDP: {client} exited with code 147: connection failed (transport)"
            )),
            "{stderr}"
        );
        assert!(!log.contains("Failed at index"), "{log}");
    }
}
