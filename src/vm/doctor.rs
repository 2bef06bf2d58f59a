//! `bkt vm doctor [NAME] [--json]`: staged checks of the host and of each
//! VM, each pass / warning / failure with the exact fix. Non-zero exit when
//! anything fails.

use std::path::PathBuf;

use anyhow::{Result, bail};
use serde::Serialize;

use crate::manifest;
use crate::tools::virsh::{self, DomState, DomStats};
use crate::tools::{self, rdp, version};
use crate::ui::{self, Check, Level};
use crate::units::human;
use crate::vm::net::{self, PortState, RDP_PORT};
use crate::vm::{Ctx, preflight, validate_name};

fn version_of(program: &str) -> Option<String> {
    let out = version::cmd(program).run_unchecked().ok()?;
    version::parse(&format!("{}{}", out.stdout, out.stderr))
}

/// Whether we may use qemu:///system: root, or in the libvirt group (and
/// kvm, for /dev/kvm).
fn groups(uri: &str) -> Check {
    if !uri.starts_with("qemu:///system") {
        return Check::pass("groups", format!("not needed for {uri}"));
    }
    // SAFETY: geteuid, getgroups and getgrnam only read process and
    // system data; the buffers are sized by the first getgroups call.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 {
        return Check::pass("groups", "running as root");
    }
    let mine: Vec<libc::gid_t> = unsafe {
        let n = libc::getgroups(0, std::ptr::null_mut());
        let mut v = vec![0; n.max(0) as usize];
        let got = libc::getgroups(n, v.as_mut_ptr());
        v.truncate(got.max(0) as usize);
        v.push(libc::getegid());
        v
    };
    let missing: Vec<&str> = ["libvirt", "kvm"]
        .into_iter()
        .filter(|g| {
            let c = std::ffi::CString::new(*g).expect("no NUL");
            let gr = unsafe { libc::getgrnam(c.as_ptr()) };
            !gr.is_null() && !mine.contains(&unsafe { (*gr).gr_gid })
        })
        .collect();
    if missing.is_empty() {
        Check::pass("groups", "in the libvirt and kvm groups")
    } else {
        Check::fail(
            "groups",
            format!("not in the group(s): {}", missing.join(", ")),
        )
        .fix(format!(
            "sudo usermod -aG {} $USER, then log out and in again",
            missing.join(",")
        ))
    }
}

fn network(ctx: &Ctx) -> Check {
    match ctx.virsh.net_info("default").run() {
        Ok(out) => {
            let active = virsh::parse_net_active(&out.stdout) == Some(true);
            let autostart = out
                .stdout
                .lines()
                .any(|l| l.starts_with("Autostart:") && l.trim_end().ends_with("yes"));
            match (active, autostart) {
                (true, true) => Check::pass("network", "\"default\" is active and starts on boot"),
                (true, false) => Check::warn(
                    "network",
                    "\"default\" is active but does not start on boot",
                )
                .fix(format!("virsh -c {} net-autostart default", ctx.uri)),
                (false, _) => Check::fail("network", "\"default\" is not active").fix(format!(
                    "virsh -c {uri} net-start default && virsh -c {uri} net-autostart default",
                    uri = ctx.uri
                )),
            }
        }
        Err(_) => preflight::network(ctx),
    }
}

fn programs() -> Check {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for p in ["virsh", "virt-install", "qemu-img"] {
        if which::which(p).is_ok() {
            match version_of(p) {
                Some(v) => found.push(format!("{p} {v}")),
                None => found.push(p.to_string()),
            }
        } else {
            missing.push(p);
        }
    }
    if missing.is_empty() {
        Check::pass("tools", found.join(", "))
    } else {
        let fixes: Vec<String> = missing
            .iter()
            .map(|p| format!("{p}: {}", tools::package_hint(p).unwrap_or("install it")))
            .collect();
        Check::fail("tools", format!("not found: {}", missing.join(", "))).fix(fixes.join("; "))
    }
}

fn swtpm() -> Check {
    if which::which("swtpm").is_err() {
        return Check::fail("swtpm", "not found: Windows 11 needs its TPM 2.0 emulator")
            .fix(tools::package_hint("swtpm").unwrap_or_default());
    }
    match version_of("swtpm") {
        Some(v) => Check::pass("swtpm", format!("swtpm {v}")),
        None => Check::pass("swtpm", "swtpm"),
    }
}

/// The RDP client `connect` would use; when the session rules every one out
/// (no DISPLAY over ssh), the one installed, named all the same.
fn rdp_client() -> Check {
    let found = crate::vm::connect::find_client().or_else(crate::vm::connect::installed_client);
    match found {
        Some(c) => {
            let what = match (c.flavor, &c.version) {
                (rdp::Flavor::Remmina, _) => "Remmina".to_string(),
                (_, Some(v)) => format!("FreeRDP {v}"),
                // FreeRDP 2 needs an X display even to print its version.
                (_, None) if std::env::var_os("DISPLAY").is_none_or(|d| d.is_empty()) => {
                    "version unknown without a display".to_string()
                }
                (rdp::Flavor::FreeRdp3, None) => "FreeRDP 3".to_string(),
                (rdp::Flavor::FreeRdp2, None) => "FreeRDP 2".to_string(),
            };
            Check::pass("RDP client", format!("{} ({what})", c.program))
        }
        None => Check::warn("RDP client", "none found: `connect` will use SPICE only")
            .fix("apt install freerdp3-x11 (or freerdp2-x11) / dnf install freerdp"),
    }
}

fn viewer() -> Check {
    for v in ["virt-viewer", "remote-viewer"] {
        if which::which(v).is_ok() {
            return Check::pass("SPICE viewer", v);
        }
    }
    Check::warn("SPICE viewer", "none found: Windows Setup needs one")
        .fix("apt install virt-viewer / dnf install virt-viewer")
}

fn host_checks(ctx: &Ctx) -> Vec<Check> {
    let mut c = Vec::new();
    let dev = std::env::var_os("BKT_VM_KVM_DEVICE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/dev/kvm"));
    c.push(preflight::kvm(&dev));
    c.push(groups(&ctx.uri));
    let have_virsh = which::which("virsh").is_ok();
    let up = if have_virsh {
        let (check, up) = preflight::libvirt(ctx);
        c.push(check);
        up
    } else {
        false
    };
    if up {
        c.push(network(ctx));
        c.push(preflight::secure_boot(ctx, "kvm"));
    }
    c.push(swtpm());
    c.push(programs());
    c.push(rdp_client());
    c.push(viewer());
    if up {
        let images = preflight::images_dir(ctx);
        c.push(match preflight::free_space(&images) {
            Some(f) if f < crate::units::gib_bytes(20) => Check::warn(
                "disk space",
                format!(
                    "{} free in {}: little room for Windows to grow",
                    human(f),
                    images.display()
                ),
            ),
            Some(f) => Check::pass(
                "disk space",
                format!("{} free in {}", human(f), images.display()),
            ),
            None => Check::warn(
                "disk space",
                format!("cannot tell the free space in {}", images.display()),
            ),
        });
    }
    c
}

fn vm_checks(
    ctx: &Ctx,
    name: &str,
    stats: Option<&DomStats>,
    entry: Option<&manifest::VmEntry>,
) -> Vec<Check> {
    let mut c = Vec::new();
    let Some(st) = stats else {
        c.push(
            Check::fail(
                "defined",
                "libvirt has no such VM (only the manifest remembers it)",
            )
            .fix(format!("forget it: bkt vm destroy {name}")),
        );
        return c;
    };
    c.push(Check::pass("defined", st.state.label()));
    let xml = ctx.domain_xml(name).ok();
    match &xml {
        Some(d) if d.uefi_secure_boot => c.push(Check::pass("firmware", "UEFI with Secure Boot")),
        Some(_) => c.push(
            Check::fail(
                "firmware",
                "not UEFI with Secure Boot: Windows 11 will not install",
            )
            .fix("recreate it with `bkt vm create windows`"),
        ),
        None => c.push(Check::warn("firmware", "cannot read the VM's definition")),
    }
    match &xml {
        Some(d) if d.tpm_emulator && d.tpm_version == "2.0" => c.push(Check::pass(
            "TPM",
            format!("TPM 2.0 emulator ({})", d.tpm_model),
        )),
        Some(_) => c.push(
            Check::fail("TPM", "no TPM 2.0: Windows 11 requires one")
                .fix("recreate it with `bkt vm create windows`"),
        ),
        None => {}
    }
    let disks: Vec<_> = st.blocks.iter().filter(|b| !b.is_media()).collect();
    if disks.is_empty() {
        c.push(Check::warn("disk", "no disk"));
    }
    for b in disks {
        if b.path.is_empty() || std::path::Path::new(&b.path).exists() {
            c.push(Check::pass(
                "disk",
                format!(
                    "{} ({} of {} allocated)",
                    b.path,
                    human(b.used()),
                    human(b.capacity)
                ),
            ));
        } else {
            c.push(
                Check::fail("disk", format!("{} is missing", b.path))
                    .fix("restore it from a backup; the VM cannot start without it"),
            );
        }
    }
    match entry {
        None => c.push(Check::warn(
            "manifest",
            "not in bkt's manifest (bkt did not create it)",
        )),
        Some(e) if !e.disk.is_empty() && !st.blocks.iter().any(|b| b.path == e.disk) => {
            c.push(Check::warn(
                "manifest",
                format!(
                    "the manifest says its disk is {}, libvirt disagrees",
                    e.disk
                ),
            ))
        }
        Some(_) => c.push(Check::pass("manifest", "agrees with libvirt")),
    }
    if st.state != DomState::Running {
        return c;
    }
    match net::find_ip(ctx, name) {
        Some((ip, source)) => {
            c.push(Check::pass("IP", format!("{ip} ({})", source.as_str())));
            c.push(match net::probe(&ip, RDP_PORT, net::PROBE_TIMEOUT) {
                PortState::Open => Check::pass("RDP", format!("{ip}:{RDP_PORT} answers")),
                PortState::Refused => Check::warn("RDP", format!("{ip}:{RDP_PORT} refused: Remote Desktop is off"))
                    .fix("turn it on in Windows: Settings → System → Remote Desktop"),
                PortState::NoAnswer => Check::warn("RDP", format!("no answer from {ip}:{RDP_PORT}"))
                    .fix("allow \"Remote Desktop\" in Windows Defender Firewall, or wait for Windows to boot"),
            });
        }
        None => c.push(
            Check::warn("IP", "no address (no DHCP lease, guest agent or ARP entry)")
                .fix("wait for Windows to boot; check the VirtIO network driver is installed"),
        ),
    }
    c.push(match ctx.virsh.agent_ping(name).run() {
        Ok(_) => Check::pass("guest agent", "answers"),
        Err(_) => Check::warn("guest agent", "not answering")
            .fix("install the guest tools in Windows (virtio-win-guest-tools.exe from the virtio-win ISO)"),
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
    host: Vec<Check>,
    vms: Vec<VmReport>,
}

pub fn run(ctx: &Ctx, name: Option<&str>, json: bool) -> Result<()> {
    if let Some(n) = name {
        validate_name(n)?;
    }
    let host = host_checks(ctx);
    let libvirt_up = host
        .iter()
        .any(|c| c.label == "libvirt" && c.level == Level::Pass);
    let mut vms = Vec::new();
    if libvirt_up {
        let stats = ctx.domstats()?;
        let entries: Vec<manifest::VmEntry> = manifest::load(&ctx.manifest)?
            .vms
            .into_iter()
            .filter(|e| e.is_on(&ctx.uri))
            .collect();
        let mut names: Vec<String> = stats.iter().map(|s| s.name.clone()).collect();
        names.extend(entries.iter().map(|e| e.name.clone()));
        names.sort();
        names.dedup();
        if let Some(n) = name {
            if !names.iter().any(|x| x == n) {
                return Err(ctx.unknown_vm(n));
            }
            names.retain(|x| x == n);
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
        .chain(vms.iter().flat_map(|v| v.checks.iter()))
        .filter(|c| c.level == Level::Fail)
        .count();
    if json {
        let report = Report {
            ok: failed == 0,
            host,
            vms,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        ui::heading("Host");
        host.iter().for_each(Check::print);
        for v in &vms {
            ui::heading(&format!("VM {}", v.name));
            v.checks.iter().for_each(Check::print);
        }
    }
    if failed > 0 {
        bail!(
            "{failed} check{} failed",
            if failed == 1 { "" } else { "s" }
        );
    }
    Ok(())
}
