//! `bkt vm connect NAME`: from "VM off" to a Windows desktop. RDP when the
//! guest answers on 3389 and a client is installed; SPICE otherwise, saying
//! why. And `bkt vm ip NAME`, which shares the address discovery.

use std::io::IsTerminal;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use console::style;

use crate::exec::{Cmd, Sink};
use crate::manifest;
use crate::names::VmName;
use crate::secrets;
use crate::tools::rdp::{self, Client, Flavor, Outcome, Session};
use crate::tools::viewer;
use crate::tools::virsh::DomState;
use crate::ui::{HintExt, Spinner, secs};
use crate::vm::ctx::PortState;
use crate::vm::ctx::{Ctx, libvirt_error};
use crate::vm::net::{self, RDP_PORT};
use crate::vm::{clients, idle, power};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// RDP, falling back to SPICE.
    Auto,
    /// RDP or fail.
    RdpOnly,
    /// SPICE only.
    Spice,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub mode: Mode,
    pub user: Option<String>,
    pub timeout: Duration,
    pub fullscreen: bool,
    pub share: Option<PathBuf>,
}

/// Why RDP was not used; shown before the fallback (or as the error).
struct NoRdp {
    why: String,
    hint: Option<String>,
}

fn graphical_session(ctx: &Ctx) -> Result<()> {
    let s = &ctx.local.settings;
    if s.display || s.wayland {
        return Ok(());
    }
    Err(anyhow!(
        "no graphical session: neither DISPLAY nor WAYLAND_DISPLAY is set"
    ))
    .hint("run `bkt vm connect` from your desktop session (or over ssh -X)")
}

fn valid_user(u: &str) -> Result<()> {
    if u.is_empty() || u.chars().any(|c| c.is_control()) || u.starts_with(['-', '/', '+']) {
        bail!("invalid user name {u:?}");
    }
    Ok(())
}

/// `--user`, else the manifest's, else ask.
fn user_name(ctx: &Ctx, name: &str, given: &Option<String>) -> Result<String> {
    if let Some(u) = given {
        valid_user(u)?;
        return Ok(u.clone());
    }
    let m = manifest::load(&ctx.manifest)?;
    if let Some(u) = m.get(name).and_then(|e| e.rdp_user.clone()) {
        return Ok(u);
    }
    if std::io::stdin().is_terminal() {
        let u: String = dialoguer::Input::new()
            .with_prompt(format!("Windows user name for {name}"))
            .validate_with(|s: &String| valid_user(s).map_err(|e| e.to_string()))
            .interact_text()?;
        return Ok(u);
    }
    Err(anyhow!("no Windows user name for {name}")).hint(format!(
        "pass it once with --user: bkt vm connect {name} --user NAME"
    ))
}

/// From `BKT_VM_RDP_PASSWORD` as bkt found it at start (its bytes as they
/// are), else a prompt without echo. Never argv, never disk.
fn password(user: &str, name: &str) -> Result<Vec<u8>> {
    if let Some(p) = secrets::rdp_password() {
        return Ok(p.as_bytes().to_vec());
    }
    if std::io::stdin().is_terminal() {
        return Ok(dialoguer::Password::new()
            .with_prompt(format!("Password for {user} on {name}"))
            .allow_empty_password(true)
            .interact()?
            .into_bytes());
    }
    Err(anyhow!("no password for {user} on {name}")).hint(format!(
        "run it on a terminal to be asked, or set {}",
        secrets::RDP_PASSWORD_ENV
    ))
}

fn remember_user(ctx: &Ctx, name: &str, user: &str) -> Result<()> {
    let known = manifest::load(&ctx.manifest)?;
    match known.get(name) {
        Some(e) if e.rdp_user.as_deref() != Some(user) => manifest::update(&ctx.manifest, |m| {
            if let Some(e) = m.get_mut(name) {
                e.rdp_user = Some(user.to_string());
            }
            Ok(())
        }),
        _ => Ok(()),
    }
}

fn log_tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

fn arrow(cmd: &Cmd, label: &str) {
    println!("{} {label}{}", style("→").cyan(), cmd.display());
}

/// FreeRDP refused the guest's certificate: it is not the one pinned at an
/// earlier connection. A recreated VM at a reused address does that, and so
/// does someone in between: the user decides, with the exact way to accept
/// the new one for this client.
fn certificate_changed(
    ctx: &Ctx,
    name: &str,
    client: &Client,
    c: &rdp::ChangedCertificate,
) -> Result<()> {
    let config = ctx.local.config_home();
    let version = match client.flavor {
        Flavor::FreeRdp2 => "FreeRDP 2",
        _ => "FreeRDP 3",
    };
    Err(anyhow!(
        "the RDP certificate of {}:{} changed since the last connection, and {} refused it: \
         {name} was recreated, or someone is in between",
        c.host,
        c.port,
        client.program
    ))
    .hint(format!(
        "if you recreated {name}, drop the certificate {version} pinned and connect again: {}",
        rdp::forget_certificate_cmd(client.flavor, &config, c)
    ))
}

/// Reach the guest's Remote Desktop: its address, then its port 3389 (a VM
/// just started is still booting: wait for it; one that was running
/// answers now or has RDP off). The address, or why RDP cannot be had.
fn reach(
    ctx: &Ctx,
    name: &str,
    opts: &Options,
    started: bool,
    deadline: Instant,
) -> Result<std::result::Result<String, NoRdp>> {
    let spinner = Spinner::quiet();
    let found = net::wait_ip(ctx, name, deadline, &spinner);
    let Some((ip, source)) = found? else {
        spinner.clear();
        return Ok(Err(NoRdp {
            why: format!(
                "no IPv4 address for {name} after {} (no DHCP lease, guest agent or ARP entry)",
                secs(opts.timeout)
            ),
            hint: Some(
                "the guest may still be booting, or its network driver (VirtIO) is missing".into(),
            ),
        }));
    };
    let reached = if started {
        net::wait_port(ctx, name, &ip, RDP_PORT, deadline, &spinner)
    } else {
        Ok((
            ip.clone(),
            ctx.host.probe(&ip, RDP_PORT, net::PROBE_TIMEOUT),
        ))
    };
    spinner.clear();
    let (ip, state) = reached?;
    Ok(match state {
        PortState::Open => Ok(ip),
        PortState::Refused => Err(NoRdp {
            why: format!(
                "{ip}:{RDP_PORT} refused the connection: Remote Desktop is off in Windows"
            ),
            hint: Some(
                "turn it on in Windows: Settings → System → Remote Desktop (Windows Pro)".into(),
            ),
        }),
        PortState::NoAnswer => Err(NoRdp {
            why: format!(
                "no answer from {ip}:{RDP_PORT}: Windows is still booting, or its firewall drops Remote Desktop"
            ),
            hint: Some(format!(
                "wait a little and retry, or allow the \"Remote Desktop\" rule in Windows Defender Firewall (found {ip} by {})",
                source.as_str()
            )),
        }),
    })
}

/// `--share`, checked: an existing directory FreeRDP can name.
fn share_dir(ctx: &Ctx, p: &Path) -> Result<String> {
    let p = ctx
        .local
        .canonicalize(p)
        .with_context(|| format!("--share {}", p.display()))?;
    if !ctx.local.is_dir(&p) {
        bail!("--share {} is not a directory", p.display());
    }
    let s = p
        .to_str()
        .ok_or_else(|| anyhow!("--share {} is not valid UTF-8", p.display()))?
        .to_string();
    if s.contains(',') {
        bail!("--share {s}: FreeRDP cannot share a path that contains a comma");
    }
    Ok(s)
}

/// Run the RDP client against `ip` until the session ends. Ok(Ok(())) when
/// a session ran; Ok(Err(NoRdp)) when the client could not connect and
/// SPICE may stand in; Err for failures SPICE cannot fix.
fn launch(
    ctx: &Ctx,
    name: &str,
    opts: &Options,
    ip: &str,
) -> Result<std::result::Result<(), NoRdp>> {
    let Some(client) = clients::find(ctx) else {
        return Ok(Err(NoRdp {
            why: "no RDP client found".into(),
            hint: Some(
                "install FreeRDP: apt install freerdp3-x11 (or freerdp2-x11) / dnf install freerdp"
                    .into(),
            ),
        }));
    };
    let user = match client.flavor {
        Flavor::Remmina => opts.user.clone(),
        _ => Some(user_name(ctx, name, &opts.user)?),
    };
    let share = opts
        .share
        .as_deref()
        .map(|p| share_dir(ctx, p))
        .transpose()?;
    let session = Session {
        host: ip.to_string(),
        user: user.clone(),
        title: name.to_string(),
        fullscreen: opts.fullscreen,
        share,
    };
    let cmd = rdp::argv(&client, &session);
    let stdin = match client.flavor {
        Flavor::Remmina => None,
        _ => {
            let u = user.as_deref().unwrap_or_default();
            let mut pw = password(u, name)?;
            if pw.contains(&b'\n') || pw.contains(&b'\r') {
                bail!("the password contains a line break, which FreeRDP cannot read from stdin");
            }
            pw.push(b'\n');
            Some(pw)
        }
    };
    if let Some(u) = &user {
        remember_user(ctx, name, u)?;
    }
    let label = match (&client.flavor, &client.version) {
        (Flavor::Remmina, _) => String::new(),
        (_, Some(v)) => format!("FreeRDP {v}: "),
        (_, None) => String::new(),
    };
    arrow(&cmd, &label);
    let log = match client.flavor {
        Flavor::Remmina => None,
        _ => ctx.local.fresh_log(&format!("{name}-rdp.log")),
    };
    let sink = log.clone().map(Sink::File).unwrap_or(Sink::Inherit);
    let status = cmd
        .run_attached(stdin.as_deref(), &sink)
        .map_err(crate::tools::program_error)?;
    if client.flavor == Flavor::Remmina {
        return Ok(Ok(()));
    }
    let text = log
        .as_ref()
        .map(|p| ctx.local.read_log(p))
        .unwrap_or_default();
    // Not a reason to fall back to SPICE, even in auto mode: the user has to
    // decide whether to trust the new certificate.
    if let Some(changed) = rdp::changed_certificate(&text) {
        return certificate_changed(ctx, name, &client, &changed).map(Ok);
    }
    let code = match status.code() {
        Some(c) => c,
        None => bail!("{} was killed ({status})", client.program),
    };
    let (outcome, words) = rdp::explain_exit(code);
    let tail = log_tail(&text);
    let detail = if tail.is_empty() {
        String::new()
    } else {
        format!(
            "\n--- {} (last lines of {})\n{tail}",
            client.program,
            log.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        )
    };
    match outcome {
        Outcome::Ended => Ok(Ok(())),
        Outcome::ConnectFailed => Ok(Err(NoRdp {
            why: format!("{} exited with code {code}: {words}", client.program),
            hint: log.map(|p| format!("the client's log: {}", p.display())),
        })),
        Outcome::AuthFailed => Err(anyhow!(
            "{} exited with code {code}: {words} for {}{detail}",
            client.program,
            user.unwrap_or_default()
        ))
        .hint(format!(
            "check the user name and password (bkt vm connect {name} --user NAME); \
             a Microsoft account logs in with its email address"
        )),
        Outcome::Failed => Err(anyhow!(
            "{} exited with code {code}: {words}{detail}",
            client.program
        ))
        .hint(format!(
            "or use the SPICE console: bkt vm connect {name} --spice"
        )),
    }
}

/// Run the SPICE viewer; `label` says why, before the command line.
fn spice(ctx: &Ctx, name: &str, label: &str) -> Result<()> {
    let cmd = if ctx.local.has_program("virt-viewer") {
        viewer::virt_viewer(ctx.uri.as_str(), name)
    } else if ctx.local.has_program("remote-viewer") {
        let out = ctx
            .virsh
            .domdisplay(name)
            .stdout()
            .map_err(libvirt_error)
            .map_err(|e| e.context(format!("cannot find {name}'s SPICE display")))?;
        let uri =
            viewer::parse_domdisplay(&out).ok_or_else(|| anyhow!("{name} has no SPICE display"))?;
        viewer::remote_viewer(&uri, name)
    } else {
        return Err(anyhow!(
            "no SPICE viewer found (virt-viewer or remote-viewer)"
        ))
        .hint("install it: apt install virt-viewer / dnf install virt-viewer");
    };
    arrow(&cmd, label);
    let status = cmd
        .run_attached(None, &Sink::Inherit)
        .map_err(crate::tools::program_error)?;
    if status.success() {
        Ok(())
    } else {
        bail!("`{}` failed ({status})", cmd.display())
    }
}

pub fn run(ctx: &Ctx, name: &VmName, opts: &Options) -> Result<()> {
    let (state, _) = ctx.require(name)?;
    graphical_session(ctx)?;
    // In use until the client exits; then the idle watcher takes over.
    let in_use = ctx.local.hold_in_use(&idle::key(ctx, name));
    let res = session(ctx, name, opts, state);
    drop(in_use);
    if let Err(e) = idle::ensure_watcher(ctx, name) {
        eprintln!(
            "{} {name} will not be saved when idle: {e:#}",
            style("⚠").yellow()
        );
    }
    res
}

fn session(ctx: &Ctx, name: &VmName, opts: &Options, state: DomState) -> Result<()> {
    let started = power::ensure_running(ctx, name, state)?;
    if opts.mode == Mode::Spice {
        return spice(ctx, name, "");
    }
    let deadline = Instant::now() + opts.timeout;
    let rdp = match reach(ctx, name, opts, started, deadline)? {
        Ok(ip) => {
            // On a host reached over ssh the guest's network is the host's:
            // the client goes through a tunnel bkt opens there.
            let addr = ctx.host.reach_from_here(&ip, RDP_PORT)?;
            if addr != ip {
                eprintln!("RDP to {ip}:{RDP_PORT} through an ssh tunnel at {addr}");
            }
            launch(ctx, name, opts, &addr)?
        }
        Err(no) => Err(no),
    };
    match rdp {
        Ok(()) => Ok(()),
        Err(no) if opts.mode == Mode::RdpOnly => {
            let err: Result<()> = Err(anyhow!("RDP: {}", no.why));
            match no.hint {
                Some(h) => err.hint(h),
                None => err,
            }
        }
        Err(no) => {
            eprintln!("{} RDP: {}", style("✗").red(), no.why);
            if let Some(h) = &no.hint {
                eprintln!("  {h}");
            }
            spice(ctx, name, "falling back to SPICE: ")
        }
    }
}

/// `bkt vm ip NAME`: the guest's IPv4 address, nothing else on stdout.
pub fn ip(ctx: &Ctx, name: &VmName, timeout: u64) -> Result<()> {
    let (state, _) = ctx.require(name)?;
    if !state.is_active() {
        return Err(anyhow!("{name} is {}; it has no address", state.label()))
            .hint(format!("start it first: bkt vm start {name}"));
    }
    let found = if timeout == 0 {
        net::find_ip(ctx, name)
    } else {
        let spinner = Spinner::quiet();
        let deadline = Instant::now() + Duration::from_secs(timeout);
        let f = net::wait_ip(ctx, name, deadline, &spinner);
        spinner.clear();
        f?
    };
    match found {
        Some((ip, _)) => {
            println!("{ip}");
            // On stderr: scripts read the address alone.
            if let Some(t) = ctx.uri.ssh() {
                eprintln!(
                    "{ip} is on {}'s network: reachable from {} only, not from here \
                     (`bkt vm connect {name}` tunnels Remote Desktop through ssh)",
                    t.host, t.host
                );
            }
            Ok(())
        }
        None => Err(anyhow!(
            "no IPv4 address known for {name} (no DHCP lease, guest agent or ARP entry)"
        ))
        .hint(format!(
            "it may still be booting: bkt vm ip {name} --timeout 120"
        )),
    }
}
