//! Turning on Remote Desktop in a Windows that is already installed
//! (RFC-0031, option 2), for `bkt vm enable-rdp` and the end of a guided
//! `create`. BitLocker rules out editing the
//! registry from outside, so a small script ISO goes into the VM's CD-ROM
//! drive, the user runs it with one double-click, and we wait until port
//! 3389 answers. The drive gets its old medium back and the ISO is deleted
//! whatever happens, Ctrl-C included.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};

use crate::tools::virsh::{DiskDevice, DomDisk, DomState};
use crate::ui::HintExt;
use crate::vm::ctx::Ctx;
use crate::vm::ctx::PortState;
use crate::vm::media;
use crate::vm::net;
use crate::vm::wait::poll_until;

/// Turns Remote Desktop on: connections allowed, Network Level
/// Authentication kept on, the firewall rules enabled by the group's
/// resource id, which is the same in every Windows language (the display
/// name "Remote Desktop" is translated), and RemoteApp allowed for any
/// program ([`crate::tools::unattend::REMOTEAPP_KEYS`]). Every step sets a
/// state, so running it again is harmless.
pub const ENABLE_RDP_PS1: &str = "\
# enable-rdp.ps1, written by bkt: turns on Remote Desktop in this Windows.\r
$ErrorActionPreference = 'Stop'\r
$ts = 'HKLM:\\System\\CurrentControlSet\\Control\\Terminal Server'\r
Set-ItemProperty -Path $ts -Name 'fDenyTSConnections' -Value 0\r
# Keep Network Level Authentication on.\r
Set-ItemProperty -Path \"$ts\\WinStations\\RDP-Tcp\" -Name 'UserAuthentication' -Value 1\r
# The Remote Desktop firewall group, by its language-independent id.\r
Enable-NetFirewallRule -Group '@FirewallAPI.dll,-28752'\r
# RemoteApp (bkt vm run): any program, not only those on the allow list.\r
# A key is created only when missing (New-Item -Force would empty one).\r
function Set-One($path, $name) {\r
  if (-not (Test-Path $path)) { New-Item -Path $path -Force | Out-Null }\r
  New-ItemProperty -Path $path -Name $name -PropertyType DWord -Value 1 -Force | Out-Null\r
}\r
Set-One 'HKLM:\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Terminal Server\\TSAppAllowList' 'fDisabledAllowList'\r
Set-One 'HKLM:\\SOFTWARE\\Policies\\Microsoft\\Windows NT\\Terminal Services' 'fAllowUnlistedRemotePrograms'\r
Write-Host 'Remote Desktop is on. You can close this window.'\r
Start-Sleep -Seconds 5\r
";

/// One double-click: asks Windows for elevation (UAC), then runs the script
/// from the same CD.
pub const ENABLE_RDP_CMD: &str = "\
@echo off\r
rem Written by bkt: runs enable-rdp.ps1 from this CD as administrator.\r
powershell -NoProfile -ExecutionPolicy Bypass -Command \"Start-Process powershell -Verb RunAs -ArgumentList '-NoProfile -ExecutionPolicy Bypass -File \"\"%~dp0enable-rdp.ps1\"\"'\"\r
";

pub const VOLUME: &str = "BKT_RDP";

/// Undo on every way out: the old medium back, the ISO gone.
struct Attached<'a> {
    ctx: &'a Ctx,
    name: &'a str,
    target: String,
    previous: Option<String>,
    iso: PathBuf,
    /// How the ISO got there (and so how it goes).
    route: media::Route,
    active: bool,
}

impl Attached<'_> {
    fn detach(&mut self) -> Result<()> {
        if !self.active {
            return Ok(());
        }
        self.active = false;
        // --live only while QEMU runs (a start may have failed).
        let live = matches!(self.ctx.domstate(self.name), Ok(Some((s, _))) if s.is_active());
        let res = self
            .ctx
            .libvirt(&self.ctx.virsh.change_media(
                self.name,
                &self.target,
                self.previous.as_deref(),
                live,
            ))
            .context("putting the drive's medium back");
        let _ = media::unplace(self.ctx, &self.iso, &self.route);
        res.map(|_| ())
    }
}

impl Drop for Attached<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.detach() {
            self.ctx.ui.note(format_args!("warning: {e:#}"));
        }
    }
}

/// Put the script CD in, say what to click, wait up to `timeout` for port
/// 3389, and put the drive's old medium back whatever happens. The steps:
/// the ISO made on the host (undone: deleted), put into the drive (undone:
/// the old medium back, by [`Attached`]), the VM started if it was off,
/// the wait; then the undo, and the manifest notes Remote Desktop is on.
pub fn enable(ctx: &Ctx, name: &str, timeout: Duration) -> Result<()> {
    let (state, _) = ctx.domstate(name)?.ok_or_else(|| ctx.unknown_vm(name))?;
    // In use while the user runs the script: not saved from under them.
    let _busy = crate::vm::power::idle::busy(ctx, name);
    let (drive, iso) = script_drive(ctx, name)?;
    let route = script_iso(ctx, &iso)?;

    crate::interrupt::catch();
    let started = match state {
        DomState::ShutOff | DomState::Crashed | DomState::NoState => {
            ctx.ui
                .line(format_args!("{name} is {}; starting it", state.label()));
            // Attach first so the drive has the script when Windows boots.
            true
        }
        _ => false,
    };
    let live = !started;
    ctx.libvirt(&ctx.virsh.change_media(
        name,
        &drive.target,
        Some(&iso.display().to_string()),
        live,
    ))
    .with_context(|| {
        let _ = media::unplace(ctx, &iso, &route);
        format!("putting the script into {name}'s CD-ROM drive")
    })?;
    let mut attached = Attached {
        ctx,
        name,
        target: drive.target.clone(),
        previous: (!drive.path.is_empty()).then(|| drive.path.clone()),
        iso: iso.clone(),
        route: route.clone(),
        active: true,
    };
    if started {
        ctx.libvirt(&ctx.virsh.start(name))
            .with_context(|| format!("cannot start {name}"))?;
    }

    ctx.ui.heading(&format!("In Windows on {name}:"));
    ctx.ui.line(format_args!(
        "  1. Open File Explorer → This PC → the CD drive \"{VOLUME}\""
    ));
    ctx.ui
        .line("  2. Double-click enable-rdp.cmd and answer Yes when Windows asks for permission");
    ctx.ui.line(format_args!(
        "  (the console: bkt vm connect {name} --spice)"
    ));
    let outcome = wait_for_rdp(ctx, name, timeout);
    attached.detach()?;
    enabled(ctx, name, outcome)
}

/// The VM's CD-ROM drive, and the path of the script ISO on the host:
/// beside the VM's disk.
fn script_drive(ctx: &Ctx, name: &str) -> Result<(DomDisk, PathBuf)> {
    let dom = ctx.domain_xml(name)?;
    let drive = dom
        .disks
        .iter()
        .find(|d| d.device == DiskDevice::Cdrom)
        .ok_or_else(|| anyhow!("{name} has no CD-ROM drive to put the script in"))
        .hint("add one in virt-manager (Add Hardware → Storage → CDROM device), then retry")?
        .clone();
    let dir = dom
        .disks
        .iter()
        .find(|d| d.device == DiskDevice::Disk && !d.path.is_empty())
        .and_then(|d| Path::new(&d.path).parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("/var/lib/libvirt/images"));
    Ok((drive, dir.join(format!("{name}-enable-rdp.iso"))))
}

/// The script ISO at `iso` on the host, and how it got there (and so how
/// it goes).
fn script_iso(ctx: &Ctx, iso: &Path) -> Result<media::Route> {
    let dir = iso.parent().unwrap_or(Path::new("/"));
    // The ISO, from files in a private staging directory (0700, a name
    // nobody can guess): the scripts the user runs as Administrator cannot
    // be swapped, and no planted symlink is followed.
    let stage = ctx.local.staging("bkt-enable-rdp-")?;
    let files = stage.mkdir("cd")?;
    for (file, text) in [
        ("cd/enable-rdp.ps1", ENABLE_RDP_PS1),
        ("cd/enable-rdp.cmd", ENABLE_RDP_CMD),
    ] {
        stage.write(file, text.as_bytes(), 0o644)?;
    }
    let built = stage.path().join("enable-rdp.iso");
    // Over ssh as a user who cannot write there, libvirt puts it there.
    let route = media::route_to(ctx, dir)?;
    ctx.local
        .build_iso(VOLUME, &files, &built, 0o644)
        .and_then(|()| media::place(ctx, &built, iso, 0o644, &route))
        .context("building the script ISO")
        .hint(format!(
            "if {} is left from an earlier run that was killed, delete it and retry",
            iso.display()
        ))?;
    Ok(route)
}

/// Wait up to `timeout` for Remote Desktop to answer on the VM's address.
fn wait_for_rdp(ctx: &Ctx, name: &str, timeout: Duration) -> Result<IpAddr> {
    let spinner = ctx.ui.spinner("waiting for Remote Desktop to answer");
    let port = ctx.local.settings.rdp_port;
    let mut last = None;
    let outcome = poll_until(
        Some(Instant::now() + timeout),
        net::POLL,
        &spinner,
        "",
        || {
            if let Some((ip, _)) = net::find_ip(ctx, name)? {
                let st = ctx.host.probe(&ip.to_string(), port, net::PROBE_TIMEOUT);
                if st == PortState::Open {
                    return Ok(Some(ip));
                }
                last = Some((ip, st));
            }
            Ok(None)
        },
    )
    .and_then(|ip| {
        ip.ok_or_else(|| {
            let why = match &last {
                Some((ip, st)) => format!("{ip}:{port}: {}", st.label()),
                None => "no IP address".into(),
            };
            anyhow!(
                "Remote Desktop did not answer within {}s ({why})",
                timeout.as_secs()
            )
        })
    });
    spinner.clear();
    outcome
}

/// What the wait came to, the script CD out: noted and said.
fn enabled(ctx: &Ctx, name: &str, outcome: Result<IpAddr>) -> Result<()> {
    let port = ctx.local.settings.rdp_port;
    match outcome {
        Ok(ip) => {
            ctx.manifest.update(|m| {
                if let Some(e) = m.get_mut(name, &ctx.uri) {
                    e.rdp_enabled = true;
                }
                Ok(())
            })?;
            ctx.ui.line(format_args!("Remote Desktop is on ({ip}:{port}); the script CD was removed."));
            ctx.ui.line(format_args!("Connect with: bkt vm connect {name}"));
            Ok(())
        }
        Err(e) if crate::interrupt::is_interrupted(&e) => {
            Err(e.context("enable-rdp stopped; the script CD was removed"))
        }
        Err(e) => Err(e).hint(format!(
            "run enable-rdp.cmd in Windows as described, then retry with a longer --timeout: bkt vm enable-rdp {name} --timeout 900"
        )),
    }
}

/// Where create's guided path ends: offer the same step.
pub fn offer(ctx: &Ctx, name: &str) -> Result<()> {
    let yes = dialoguer::Confirm::new()
        .with_prompt("Turn on Remote Desktop now (a script CD is attached for you to run)?")
        .default(true)
        .interact()?;
    if yes {
        enable(ctx, name, Duration::from_secs(900))
    } else {
        ctx.ui.line(format_args!("Later: bkt vm enable-rdp {name}"));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_uses_the_group_id_and_keeps_nla() {
        assert!(ENABLE_RDP_PS1.contains("Enable-NetFirewallRule -Group '@FirewallAPI.dll,-28752'"));
        assert!(!ENABLE_RDP_PS1.contains("-DisplayGroup"));
        assert!(ENABLE_RDP_PS1.contains("'fDenyTSConnections' -Value 0"));
        assert!(ENABLE_RDP_PS1.contains("'UserAuthentication' -Value 1"));
        // RemoteApp, with the answer file's keys and values.
        for (key, name) in crate::tools::unattend::REMOTEAPP_KEYS {
            let line = format!(
                "Set-One '{}' '{name}'\r\n",
                key.replacen("HKLM\\", "HKLM:\\", 1)
            );
            assert!(ENABLE_RDP_PS1.contains(&line), "{line}");
        }
        assert!(ENABLE_RDP_PS1.contains("-PropertyType DWord -Value 1 -Force"));
        // Never New-Item -Force on a key that exists: it would empty it.
        assert!(
            ENABLE_RDP_PS1
                .contains("if (-not (Test-Path $path)) { New-Item -Path $path -Force | Out-Null }")
        );
        // Windows tools expect CRLF.
        for text in [ENABLE_RDP_PS1, ENABLE_RDP_CMD] {
            let lines: Vec<&str> = text.split('\n').collect();
            assert_eq!(lines.last(), Some(&""));
            assert!(
                lines[..lines.len() - 1].iter().all(|l| l.ends_with('\r')),
                "{text}"
            );
        }
        assert!(ENABLE_RDP_CMD.contains("-Verb RunAs"));
    }
}
