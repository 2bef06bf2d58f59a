//! `create --unattended`: the answers (account, password), the answer ISO
//! (autounattend.xml and the VirtIO drivers in `$WinPEDriver$`), and the
//! watch over an install no human clicks through.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::tools::unattend::{self, Answers};
use crate::tools::virsh;
use crate::tools::xorriso;
use crate::ui::{HintExt, secs};
use crate::vm::ctx::Ctx;
use crate::vm::ctx::PortState;
use crate::vm::media;
use crate::vm::net;
use crate::vm::wait::poll_until;

/// Windows refuses these in account names.
fn valid_username(u: &str) -> Result<()> {
    if u.is_empty()
        || u.chars().count() > 20
        || u.chars()
            .any(|c| c.is_control() || "\"/\\[]:;|=,+*?<>@".contains(c))
        || u.trim() != u
    {
        bail!(
            "invalid Windows user name {u:?}: 1-20 characters, none of \" / \\ [ ] : ; | = , + * ? < > @"
        );
    }
    Ok(())
}

/// What `create --unattended` was given on its command line.
pub struct Given<'a> {
    pub username: Option<&'a String>,
    pub password_file: Option<&'a PathBuf>,
    pub no_bitlocker: bool,
}

/// The account and password, from options, a file, or prompts. The
/// password never comes from the command line.
pub fn answers(ctx: &Ctx, args: Given, vm: &str, interactive: bool) -> Result<Answers> {
    let username = match (args.username, interactive) {
        (Some(u), _) => u.clone(),
        (None, true) => dialoguer::Input::new()
            .with_prompt("Windows account to create")
            .validate_with(|s: &String| valid_username(s).map_err(|e| e.to_string()))
            .interact_text()?,
        (None, false) => {
            return Err(anyhow!("--unattended needs the Windows account's name"))
                .hint("pass --username NAME (and --password-file PATH)");
        }
    };
    valid_username(&username)?;
    let password = match args.password_file {
        Some(p) => ctx.local.read_secret(p, "--password-file")?,
        None if interactive || std::io::stdin().is_terminal() => dialoguer::Password::new()
            .with_prompt(format!("Password for {username}"))
            .with_confirmation("Again", "the passwords differ")
            .interact()?,
        None => {
            return Err(anyhow!("--unattended needs a password for {username}"))
                .hint("put it in a file only you can read and pass --password-file PATH");
        }
    };
    if password.is_empty() {
        bail!("the password for {username} is empty; Remote Desktop refuses accounts without one");
    }
    Ok(Answers {
        computer_name: unattend::computer_name(vm),
        username,
        password,
        no_bitlocker: args.no_bitlocker,
        // Set by create once its preflight has read the ISO's images.
        image_index: 0,
    })
}

/// Build the answer ISO at `out` on the host: 0600 from its first byte (it
/// holds the password), from files staged in a private directory.
pub fn build_answer_iso(ctx: &Ctx, virtio_iso: &Path, a: &Answers, out: &Path) -> Result<()> {
    if a.image_index == 0 {
        bail!("no edition was picked from the install ISO for the answer file");
    }
    let stage = ctx.local.staging("bkt-answer-")?;
    let cd = stage.mkdir("cd")?;
    stage.write(
        "cd/autounattend.xml",
        unattend::autounattend(a).as_bytes(),
        0o600,
    )?;
    let drivers = stage.mkdir("cd/$WinPEDriver$")?;
    for d in unattend::DRIVERS {
        ctx.local
            .exec(&xorriso::extract(
                virtio_iso,
                &unattend::driver_dir(d),
                &drivers.join(d),
            ))
            .map_err(crate::tools::program_error)
            .with_context(|| {
                format!(
                    "taking the {d} driver from {} (is it a virtio-win ISO?)",
                    virtio_iso.display()
                )
            })?;
    }
    // The guest tools, so the first logon finds them even without the
    // virtio-win ISO attached. Best effort: that ISO has them too.
    let _ = ctx.local.exec(&xorriso::extract(
        virtio_iso,
        "/virtio-win-guest-tools.exe",
        &cd.join("virtio-win-guest-tools.exe"),
    ));
    let built = stage.path().join("answers.iso");
    ctx.local
        .build_iso("BKT_ANSWERS", &cd, &built, 0o600)
        .and_then(|()| ctx.host.install_new(&built, out, 0o600))
        .context("building the answer ISO")
}

/// How far an install has come, as far as the host can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Firmware and "Press any key to boot from CD".
    Booting,
    /// Windows Setup copying and rebooting.
    Setup,
    /// The network is up: first logon, the guest tools.
    FirstLogon,
}

impl Phase {
    fn label(self) -> &'static str {
        match self {
            Phase::Booting => "booting the installer",
            Phase::Setup => "Windows Setup running (it reboots on its own)",
            Phase::FirstLogon => "first logon: installing the guest tools",
        }
    }
}

/// "Press any key to boot from CD or DVD" waits a few seconds on the first
/// boot only; keys are sent for this long after the start.
const KEYS_FOR: Duration = Duration::from_secs(40);

/// Where the answer ISO is and why it matters, for every way the watch
/// ends early.
fn answers_left(name: &str, answer_iso: &Path) -> String {
    format!(
        "the answer ISO {} holds the Windows password in clear text and stays attached \
         until the install ends; `bkt vm destroy {name}` removes it with the VM",
        answer_iso.display()
    )
}

/// Watch the install until Remote Desktop answers, then take the answer
/// ISO out and delete it, and eject the install ISO: the answer file wipes
/// the disk, and the install ISO boots first, so a key pressed at "Press any
/// key to boot from CD" on a later reboot would start it again. A phase
/// that lasts longer than `stall` is reported with a screenshot.
pub fn watch(
    ctx: &Ctx,
    name: &str,
    install_iso: &Path,
    answer_iso: &Path,
    stall: Duration,
) -> Result<()> {
    // In use while Windows installs: a save would stop the install.
    let _busy = crate::vm::power::idle::busy(ctx, name);
    let started = Instant::now();
    let done_ip = until_rdp_answers(ctx, name, answer_iso, stall, started)?;
    eject_answers(ctx, name, answer_iso)?;
    eject_install_iso(ctx, name, install_iso)?;
    ctx.manifest.update(|m| {
        if let Some(e) = m.get_mut(name, &ctx.uri) {
            e.rdp_enabled = true;
            e.answer_iso = None;
        }
        m.forget(name, &ctx.uri, &answer_iso.display().to_string());
        Ok(())
    })?;
    ctx.ui.line(format_args!(
        "Windows is installed ({}): Remote Desktop answers on {done_ip}:{}",
        secs(started.elapsed()),
        ctx.local.settings.rdp_port
    ));
    ctx.ui
        .line(format_args!("Connect with: bkt vm connect {name}"));
    Ok(())
}

/// Press Enter at the install ISO's prompt, follow the install's phase on
/// a spinner, and wait until Remote Desktop answers: its address. A stall
/// or Ctrl-C ends the wait with where the answer ISO was left.
fn until_rdp_answers(
    ctx: &Ctx,
    name: &str,
    answer_iso: &Path,
    stall: Duration,
    started: Instant,
) -> Result<String> {
    let spinner = ctx.ui.quiet_spinner();
    let mut phase = Phase::Booting;
    let mut since = Instant::now();
    spinner.set_message(&format!("installing Windows: {}", phase.label()));
    let mut last_key = None::<Instant>;
    let done = poll_until(None, Duration::from_secs(1), &spinner, "", || {
        if started.elapsed() < KEYS_FOR {
            if last_key.is_none_or(|t| t.elapsed() >= Duration::from_secs(2)) {
                let _ = ctx.try_libvirt(&ctx.virsh.send_key(name, "KEY_ENTER"));
                last_key = Some(Instant::now());
            }
        } else if phase == Phase::Booting {
            phase = Phase::Setup;
            since = Instant::now();
            spinner.set_message(&format!("installing Windows: {}", phase.label()));
        }
        if let Some((ip, _)) = net::find_ip(ctx, name)? {
            let ip = ip.to_string();
            if phase != Phase::FirstLogon {
                phase = Phase::FirstLogon;
                since = Instant::now();
                spinner.set_message(&format!("installing Windows: {}", phase.label()));
            }
            if ctx
                .host
                .probe(&ip, ctx.local.settings.rdp_port, net::PROBE_TIMEOUT)
                == PortState::Open
            {
                return Ok(Some(ip));
            }
        }
        if since.elapsed() >= stall {
            return stalled(ctx, name, phase, stall, started);
        }
        Ok(None)
    });
    spinner.clear();
    match done {
        Ok(ip) => Ok(ip.expect("a wait without a deadline ends with an address")),
        Err(e) if crate::interrupt::is_interrupted(&e) => Err(e)
            .context(format!(
                "stopped watching the install of {name}; the VM is left as it is"
            ))
            .hint(answers_left(name, answer_iso)),
        Err(e) => Err(e).hint(answers_left(name, answer_iso)),
    }
}

/// The install made no progress for `stall`: how long, in which phase,
/// and a screenshot to look at.
fn stalled<T>(ctx: &Ctx, name: &str, phase: Phase, stall: Duration, started: Instant) -> Result<T> {
    let shot = screenshot(ctx, name);
    Err(anyhow!(
        "the install made no progress for {} ({}; {} in all)",
        secs(stall),
        phase.label(),
        secs(started.elapsed())
    ))
    .hint(match shot {
        Some(p) => format!(
            "look at the screen: {} (or bkt vm connect {name} --spice)",
            p.display()
        ),
        None => format!("look at the screen: bkt vm connect {name} --spice"),
    })
}

/// Take the answer ISO out of the VM and delete it.
pub fn eject_answers(ctx: &Ctx, name: &str, answer_iso: &Path) -> Result<()> {
    let dom = ctx.domain_xml(name)?;
    if media::eject(ctx, name, &dom, answer_iso)? {
        // SATA CD-ROMs cannot be unplugged from a running VM: the drive is
        // empty now, and gone from the definition at the next boot.
        let target = media::drive_of(&dom, answer_iso)?;
        ctx.libvirt(&ctx.virsh.detach_disk_config(name, &target))
            .context("removing the answer ISO's drive")?;
    }
    match ctx.host.remove_file(answer_iso) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("deleting {}", answer_iso.display())),
    }
}

/// Once Windows is installed, its install ISO comes out of the drive (the
/// file itself is the user's and stays), so that it can never boot Setup
/// again; the drive stays for later media.
pub fn eject_install_iso(ctx: &Ctx, name: &str, install_iso: &Path) -> Result<()> {
    let dom = ctx.domain_xml(name)?;
    if media::eject(ctx, name, &dom, install_iso)? {
        ctx.ui.line(format_args!(
            "Ejected the Windows ISO from {name}, so that Setup cannot start again ({} is kept)",
            install_iso.display()
        ));
    }
    Ok(())
}

/// `virsh screenshot` into the cache, for a stalled install.
/// The file is named for the format QEMU chose (PNG, or PPM on old QEMU).
fn screenshot(ctx: &Ctx, name: &str) -> Option<std::path::PathBuf> {
    let shot = ctx
        .local
        .cache_subdir()
        .ok()?
        .join(format!("{name}-install-stalled"));
    let out = ctx
        .try_libvirt_out(&ctx.virsh.screenshot(name, &shot.display().to_string()))
        .ok()?;
    if !ctx.local.exists(&shot) {
        return None;
    }
    let Some(ext) = virsh::screenshot_extension(&out) else {
        return Some(shot);
    };
    let named = shot.with_extension(ext);
    ctx.local.rename(&shot, &named).ok()?;
    Some(named)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(valid_username("anna").is_ok());
        assert!(valid_username("Anna Smith").is_ok());
        for bad in ["", "a/b", "x@y", "toolongtoolongtoolong1", " lead"] {
            assert!(valid_username(bad).is_err(), "{bad}");
        }
    }
}
