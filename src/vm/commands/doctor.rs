//! `bkt vm doctor [NAME] [--json]`: staged checks of the host and of each
//! VM, each pass / warning / failure with the exact fix. Non-zero exit when
//! anything fails.

use anyhow::{Result, bail};
use clap::Args;
use serde::Serialize;

use crate::manifest;
use crate::names::{SshTarget, VmName};
use crate::tools::virsh::{DomState, DomStats, DomainXml};
use crate::tools::virt_install::VirtType;
use crate::ui::{Check, Level, Ui};
use crate::units::{AutoSave, human};
use crate::vm::checks;
use crate::vm::ctx::Ctx;
use crate::vm::ctx::PortState;
use crate::vm::net;
use crate::vm::power::{idle, save};

/// The libvirt check (when virsh is here to ask), and whether it answered.
fn libvirt_answers(ctx: &Ctx, c: &mut Vec<Check>) -> bool {
    let (check, up) = checks::libvirt_if_virsh(ctx);
    c.extend(check);
    up
}

fn host_checks(ctx: &Ctx) -> Vec<Check> {
    let mut c = vec![checks::kvm(ctx, VirtType::Kvm), checks::groups(ctx)];
    let up = libvirt_answers(ctx, &mut c);
    if up {
        c.push(checks::network(ctx));
        c.push(checks::secure_boot(ctx, "kvm"));
    }
    c.push(checks::swtpm(ctx));
    c.push(checks::tools(ctx));
    c.push(checks::rdp_client(ctx));
    c.push(checks::viewer(ctx));
    if up {
        c.push(checks::disk_space(ctx));
    }
    c
}

/// A host reached over ssh: its side (the login, libvirt and what it
/// needs there), and this machine's (ssh, the clients), each apart.
fn remote_checks(ctx: &Ctx, t: &SshTarget) -> (Vec<Check>, Vec<Check>) {
    let (mut c, logged_in) = checks::ssh_login(ctx, t);
    let up = libvirt_answers(ctx, &mut c);
    if logged_in {
        c.push(checks::kvm(ctx, VirtType::Kvm));
    }
    if up {
        c.push(checks::network(ctx));
        c.push(checks::secure_boot(ctx, "kvm"));
    }
    if logged_in {
        c.push(checks::remote_swtpm(ctx, t));
    }
    if up && logged_in {
        c.push(checks::disk_space(ctx));
    }
    let here = vec![
        checks::ssh_client(ctx, t),
        checks::tools(ctx),
        checks::rdp_client(ctx),
        checks::viewer(ctx),
    ];
    (c, here)
}

fn vm_checks(
    ctx: &Ctx,
    name: &str,
    stats: Option<&DomStats>,
    entry: Option<&manifest::VmEntry>,
) -> Vec<Check> {
    let Some(st) = stats else {
        return vec![
            Check::fail(
                "defined",
                "libvirt has no such VM (only the manifest remembers it)",
            )
            .fix(format!("forget it: bkt vm destroy {name}")),
        ];
    };
    let mut c = vec![Check::pass("defined", st.state.label())];
    c.extend(definition_checks(ctx.domain_xml(name).ok().as_ref()));
    c.extend(disk_checks(ctx, st));
    c.push(manifest_check(st, entry));
    c.extend(save_checks(ctx, name, st, entry));
    c.extend(checks::rdp_log(ctx, name));
    if st.state == DomState::Running {
        c.extend(running_checks(ctx, name));
    }
    c
}

/// What Windows 11 needs of the definition: UEFI with Secure Boot and a
/// TPM 2.0.
fn definition_checks(xml: Option<&DomainXml>) -> Vec<Check> {
    let Some(d) = xml else {
        return vec![Check::warn("firmware", "cannot read the VM's definition")];
    };
    let firmware = if d.uefi_secure_boot {
        Check::pass("firmware", "UEFI with Secure Boot")
    } else {
        Check::fail(
            "firmware",
            "not UEFI with Secure Boot: Windows 11 will not install",
        )
        .fix("recreate it with `bkt vm create windows`")
    };
    let tpm = if d.tpm_emulator && d.tpm_version == "2.0" {
        Check::pass("TPM", format!("TPM 2.0 emulator ({})", d.tpm_model))
    } else {
        Check::fail("TPM", "no TPM 2.0: Windows 11 requires one")
            .fix("recreate it with `bkt vm create windows`")
    };
    vec![firmware, tpm]
}

/// Each disk (not the media) is there.
fn disk_checks(ctx: &Ctx, st: &DomStats) -> Vec<Check> {
    let disks: Vec<_> = st.blocks.iter().filter(|b| !b.is_media()).collect();
    if disks.is_empty() {
        return vec![Check::warn("disk", "no disk")];
    }
    disks
        .into_iter()
        .map(|b| {
            if b.path.is_empty() || ctx.host.exists(std::path::Path::new(&b.path)) {
                Check::pass(
                    "disk",
                    format!(
                        "{} ({} of {} allocated)",
                        b.path,
                        human(b.used()),
                        human(b.capacity)
                    ),
                )
            } else {
                Check::fail("disk", format!("{} is missing", b.path))
                    .fix("restore it from a backup; the VM cannot start without it")
            }
        })
        .collect()
}

/// bkt's manifest agrees with libvirt about the disk.
fn manifest_check(st: &DomStats, entry: Option<&manifest::VmEntry>) -> Check {
    match entry {
        None => Check::warn("manifest", "not in bkt's manifest (bkt did not create it)"),
        Some(e) if !e.disk.is_empty() && !st.blocks.iter().any(|b| b.path == e.disk) => {
            Check::warn(
                "manifest",
                format!(
                    "the manifest says its disk is {}, libvirt disagrees",
                    e.disk
                ),
            )
        }
        Some(_) => Check::pass("manifest", "agrees with libvirt"),
    }
}

/// A running VM: its address, Remote Desktop there, and the guest agent.
fn running_checks(ctx: &Ctx, name: &str) -> Vec<Check> {
    let mut c = Vec::new();
    match net::find_ip(ctx, name) {
        Err(e) => c.push(
            Check::fail("IP", format!("{e:#}"))
                .fix("the guest agent says what programs in Windows make it say: look at what is installed there"),
        ),
        Ok(Some((ip, source))) => {
            c.push(Check::pass("IP", format!("{ip} ({})", source.as_str())));
            let port = ctx.local.settings.rdp_port;
            c.push(match ctx.host.probe(&ip.to_string(), port, net::PROBE_TIMEOUT) {
                PortState::Open => Check::pass("RDP", format!("{ip}:{port} answers")),
                PortState::Refused => Check::warn("RDP", format!("{ip}:{port} refused: Remote Desktop is off"))
                    .fix("turn it on in Windows: Settings → System → Remote Desktop"),
                PortState::NoAnswer => Check::warn("RDP", format!("no answer from {ip}:{port}"))
                    .fix("allow \"Remote Desktop\" in Windows Defender Firewall, or wait for Windows to boot"),
            });
        }
        Ok(None) => c.push(
            Check::warn("IP", "no address (no DHCP lease, guest agent or ARP entry)")
                .fix("wait for Windows to boot; check the VirtIO network driver is installed"),
        ),
    }
    c.push(match ctx.try_libvirt(&ctx.virsh.agent_ping(name)) {
        Ok(_) => Check::pass("guest agent", "answers"),
        Err(_) => Check::warn("guest agent", "not answering")
            .fix("install the guest tools in Windows (virtio-win-guest-tools.exe from the virtio-win ISO)"),
    });
    c
}

/// A VM saved to disk, its auto-save setting against the room libvirt has
/// for its memory, and the watcher that does the saving.
fn save_checks(
    ctx: &Ctx,
    name: &str,
    st: &DomStats,
    entry: Option<&manifest::VmEntry>,
) -> Vec<Check> {
    let mut c = Vec::new();
    if !st.state.is_active() && save::is_saved(ctx, name).unwrap_or(false) {
        let (_, size) = save::image(ctx, name);
        c.push(Check::pass(
            "saved",
            format!(
                "its memory is saved to disk{}; start or connect restores it",
                save::size_note(size)
            ),
        ));
    }
    let Some(e) = entry else {
        return c;
    };
    let window = e.auto_save.map_or(AutoSave::Off, AutoSave::from_secs);
    if window == AutoSave::Off {
        c.push(Check::pass("auto-save", "off"));
        return c;
    }
    let need = st.memory_kib * 1024;
    let dir = ctx.save_dir();
    c.push(match ctx.host.free_space(&dir) {
        Some(free) if free < need => Check::warn(
            "auto-save",
            format!(
                "after {window} unused, but its memory ({}) does not fit in {} ({} free)",
                human(need),
                dir.display(),
                human(free)
            ),
        )
        .fix(format!(
            "free space there, or turn it off: bkt vm config {name} --auto-save off"
        )),
        _ => Check::pass("auto-save", format!("after {window} unused")),
    });
    if !st.state.is_active() {
        return c;
    }
    let k = idle::key(ctx, name);
    let last = idle::last_state(ctx, name);
    let restart = format!("start one: bkt vm config {name} --auto-save {window}");
    c.push(match (ctx.local.watcher_running(&k), last) {
        (true, Some(l)) => Check::pass("watcher", format!("running (last seen: {})", l.seen)),
        (true, None) => Check::pass("watcher", "running"),
        (false, Some(l)) => Check::warn(
            "watcher",
            format!(
                "stale: the watcher (pid {}) ended without cleaning up; nothing saves {name} \
                 when idle",
                l.pid
            ),
        )
        .fix(restart),
        (false, None) => Check::warn(
            "watcher",
            format!("none: nothing saves {name} when idle (it was not started by bkt vm connect)"),
        )
        .fix(restart),
    });
    c
}

#[derive(Serialize)]
struct VmReport {
    name: String,
    checks: Vec<Check>,
}

#[derive(Serialize)]
struct Report {
    ok: bool,
    /// The machine that runs libvirt (this one, for a local URI).
    host: Vec<Check>,
    /// This machine, when libvirt runs on another (`qemu+ssh://`).
    #[serde(skip_serializing_if = "Option::is_none")]
    local: Option<Vec<Check>>,
    vms: Vec<VmReport>,
}

/// The report as a `--json` document, or as each stage's heading and its
/// check lines; `over_ssh` names the host of a `qemu+ssh://` URI.
fn say(ui: &Ui, over_ssh: Option<&str>, report: &Report, json: bool) -> Result<()> {
    if json {
        ui.json(report)?;
        return Ok(());
    }
    match over_ssh {
        Some(host) => ui.heading(&format!("Host {host} (over ssh)")),
        None => ui.heading("Host"),
    }
    report.host.iter().for_each(|c| ui.check(c));
    if let Some(l) = &report.local {
        ui.heading("This machine");
        l.iter().for_each(|c| ui.check(c));
    }
    for v in &report.vms {
        ui.heading(&format!("VM {}", v.name));
        v.checks.iter().for_each(|c| ui.check(c));
    }
    Ok(())
}

/// Check the host and each VM, and say how to fix what is wrong.
#[derive(Debug, Args)]
#[command(
    long_about = "Check the host and each VM, and say how to fix what is wrong.\n\n\
    Host: KVM, group membership for qemu:///system, libvirt, the `default` network, \
    Secure Boot firmware, swtpm, the tools and their versions, an RDP client, a SPICE \
    viewer, free disk space. Each VM: defined and its state, UEFI Secure Boot and TPM 2.0 as \
    created, its disk, the manifest against libvirt, its address, Remote Desktop, the guest \
    agent. Exits non-zero when a check fails (warnings do not).",
    after_help = "Examples:\n  bkt vm doctor\n  bkt vm doctor windows --json"
)]
pub struct DoctorArgs {
    /// Check only this VM (and the host).
    pub name: Option<VmName>,
    /// Print JSON instead of check lines.
    #[arg(long)]
    pub json: bool,
}

pub fn run(ctx: &Ctx, args: DoctorArgs) -> Result<()> {
    let (name, json) = (args.name.as_ref(), args.json);
    let (host, local) = match ctx.uri.ssh() {
        Some(t) => {
            let (h, l) = remote_checks(ctx, t);
            (h, Some(l))
        }
        None => (host_checks(ctx), None),
    };
    let libvirt_up = host
        .iter()
        .any(|c| c.label == "libvirt" && c.level == Level::Pass);
    let mut vms = Vec::new();
    if libvirt_up {
        let stats = ctx.domstats()?;
        let entries: Vec<manifest::VmEntry> = ctx
            .manifest
            .load()?
            .vms
            .into_iter()
            .filter(|e| e.is_on(&ctx.uri))
            .collect();
        let mut names: Vec<String> = stats.iter().map(|s| s.name.clone()).collect();
        names.extend(entries.iter().map(|e| e.name.clone()));
        names.sort();
        names.dedup();
        if let Some(n) = name {
            if !names.iter().any(|x| x == n.as_str()) {
                return Err(ctx.unknown_vm(n));
            }
            names.retain(|x| x == n.as_str());
        }
        for n in names {
            let st = stats.iter().find(|s| s.name == n);
            let e = entries.iter().find(|e| e.name == n);
            vms.push(VmReport {
                checks: vm_checks(ctx, &n, st, e),
                name: n,
            });
        }
    }
    let failed = host
        .iter()
        .chain(local.iter().flatten())
        .chain(vms.iter().flat_map(|v| v.checks.iter()))
        .filter(|c| c.level == Level::Fail)
        .count();
    let report = Report {
        ok: failed == 0,
        host,
        local,
        vms,
    };
    say(
        &ctx.ui,
        ctx.uri.ssh().map(|t| t.host.as_str()),
        &report,
        json,
    )?;
    if failed > 0 {
        bail!(
            "{failed} check{} failed",
            if failed == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            ok: false,
            host: vec![
                Check::pass("KVM", "/dev/kvm is usable"),
                Check::warn("swtpm", "not installed").fix("install swtpm"),
            ],
            local: Some(vec![
                Check::fail("rdp client", "none found").fix("install freerdp3-x11"),
            ]),
            vms: vec![VmReport {
                name: "windows".into(),
                checks: vec![Check::pass("state", "running")],
            }],
        }
    }

    #[test]
    fn says_each_stage_under_its_heading_one_line_a_check() {
        let ui = Ui::capture();
        say(&ui, Some("nuc"), &report(), false).unwrap();
        let said = ui.said();
        assert_eq!(
            said.out,
            "Host nuc (over ssh)\n\
             \x20 ✓ KVM            /dev/kvm is usable\n\
             \x20 ⚠ swtpm          not installed\n\
             \x20   fix: install swtpm\n\
             This machine\n\
             \x20 ✗ rdp client     none found\n\
             \x20   fix: install freerdp3-x11\n\
             VM windows\n\
             \x20 ✓ state          running\n"
        );
        assert_eq!(said.err, "");
    }

    #[test]
    fn a_local_host_is_just_host_and_json_is_the_whole_report() {
        let ui = Ui::capture();
        let mut r = report();
        r.local = None;
        say(&ui, None, &r, false).unwrap();
        assert!(
            ui.said().out.starts_with("Host\n  ✓ KVM"),
            "{}",
            ui.said().out
        );

        let ui = Ui::capture();
        say(&ui, None, &r, true).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&ui.said().out).unwrap();
        assert_eq!(doc["ok"], false);
        assert_eq!(doc["host"][1]["level"], "warn");
        assert_eq!(doc["host"][1]["fix"], "install swtpm");
        assert_eq!(doc["vms"][0]["name"], "windows");
        assert!(doc.get("local").is_none());
    }
}
