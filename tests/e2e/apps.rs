//! `bkt vm apps` with a real guest-exec round trip: a tiny guest booted with
//! `bkt.qga=on` runs Debian's real qemu-guest-agent, and the stand-in
//! `powershell.exe` on its path prints what bkt's discovery script prints
//! (scripts/build-test-guest.sh). Then menu entries from what it found,
//! checked with desktop-file-validate, and `destroy` taking them away.
//!
use std::fs;
use std::time::Duration;

use crate::guests::define_tiny;
use crate::harness::*;

const NAME: &str = "e2e-apps";

#[test]
#[ignore = "needs the real virt stack: run scripts/test-all.sh"]
fn apps_lists_what_the_guest_agent_reports_and_makes_menu_entries() {
    let env = Env::new("apps", &[NAME]);
    real_round_trip(&env);
}

fn real_round_trip(env: &Env) {
    eprintln!("== apps: a real guest-exec round trip");
    define_tiny(env, NAME, 1, " bkt.qga=on");
    // virt-install adds the agent's channel for most OS variants; when it
    // did not, plug one in (the guest waits for it).
    let xml = ok(&virsh(&["dumpxml", NAME]));
    if !xml.contains("org.qemu.guest_agent.0") {
        let chan = env.work.path().join("qga-channel.xml");
        fs::write(
            &chan,
            "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>\n",
        )
        .unwrap();
        ok(&virsh(&[
            "attach-device",
            NAME,
            chan.to_str().unwrap(),
            "--live",
            "--config",
        ]));
    }
    wait_for("the guest agent", Duration::from_secs(180), || {
        virsh(&["qemu-agent-command", NAME, r#"{"execute":"guest-ping"}"#])
            .status
            .success()
            .then_some(())
    });

    // The agent's own answers, as virsh prints them (fixtures/guest/ keeps
    // a copy: guest-exec.json, guest-exec-status-exited.json).
    let started = ok(&virsh(&[
        "qemu-agent-command",
        NAME,
        r#"{"execute":"guest-exec","arguments":{"path":"powershell.exe","arg":["-NoProfile"],"capture-output":true}}"#,
    ]));
    eprintln!("  guest-exec: {}", started.trim());
    let pid: serde_json::Value = serde_json::from_str(&started).unwrap();
    let pid = pid["return"]["pid"].as_i64().unwrap();
    let status = wait_for("the stand-in's exit", Duration::from_secs(30), || {
        let out = ok(&virsh(&[
            "qemu-agent-command",
            NAME,
            &format!(r#"{{"execute":"guest-exec-status","arguments":{{"pid":{pid}}}}}"#),
        ]));
        out.contains(r#""exited":true"#).then_some(out)
    });
    eprintln!("  guest-exec-status: {}", status.trim());

    let data = env.work.path().join("share");
    let with = [("XDG_DATA_HOME", data.to_str().unwrap())];
    let out = env.bkt_env(&env.manifest(), &["vm", "apps", NAME, "--json"], &with);
    let (stdout, stderr) = text(&out);
    ok(&out);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["from"], "guest", "{stdout}{stderr}");
    let ids: Vec<&str> = v["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    // The five built-ins, then what the stand-in reported.
    assert_eq!(ids.len(), 8, "{ids:?}");
    assert_eq!(ids[5..], ["word", "notepad-2", "calculator"]);
    assert_eq!(
        v["apps"][5]["types"],
        serde_json::json!([".doc", ".docx", ".rtf"])
    );
    // The cache answers now; the guest is not asked again.
    let out = env.bkt_env(&env.manifest(), &["vm", "apps", NAME], &with);
    let (table, stderr) = text(&out);
    ok(&out);
    assert!(table.contains("\nword        Word"), "{table}");
    assert!(
        stderr.starts_with("(as Windows listed them at "),
        "{stderr}"
    );

    // Menu entries from what the guest reported, valid by the real tool.
    ok(&env.bkt_env(
        &env.manifest(),
        &["vm", "apps", NAME, "--install", "--all"],
        &with,
    ));
    let apps = data.join("applications");
    let entries = desktop_files(&apps);
    assert_eq!(entries.len(), 9, "{entries:?}");
    // The real update-desktop-database ran: its cache is there.
    assert!(apps.join("mimeinfo.cache").exists());
    for e in &entries {
        let out = std::process::Command::new("desktop-file-validate")
            .arg(e)
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stdout.is_empty(),
            "{}: {}",
            e.display(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let word = fs::read_to_string(apps.join(format!("bkt-{NAME}-word.desktop"))).unwrap();
    assert!(
        word.contains(&format!("\nStartupWMClass=bkt-{NAME}-word\n")),
        "{word}"
    );
    assert!(word.contains("\nMimeType=application/msword;"), "{word}");
    assert!(
        data.join(format!("icons/hicolor/32x32/apps/bkt-{NAME}-word.png"))
            .exists()
    );

    // destroy takes the entries and icons with the VM.
    let out = env.bkt_env(&env.manifest(), &["vm", "destroy", NAME, "--yes"], &with);
    let (stdout, _) = text(&out);
    ok(&out);
    assert!(
        stdout.contains(&format!(
            "menu file {}",
            apps.join(format!("bkt-{NAME}-word.desktop")).display()
        )),
        "{stdout}"
    );
    assert_eq!(desktop_files(&apps), Vec::<std::path::PathBuf>::new());
    // ... and the program list apps kept, so that a new VM of that name
    // starts without it.
    let list = stdout
        .lines()
        .find_map(|l| l.split_once("program list ").map(|(_, p)| p.to_string()))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        list.contains(&format!("/{NAME}@")) && list.ends_with(".apps.json"),
        "{list}"
    );
    assert!(!std::path::Path::new(&list).exists(), "{list}");
}

fn desktop_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "desktop"))
        .collect();
    v.sort();
    v
}
