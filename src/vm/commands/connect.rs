//! `bkt vm connect NAME`: from "VM off" to a Windows desktop. RDP when the
//! guest answers on 3389 and a client is installed; SPICE otherwise, saying
//! why. And `bkt vm ip NAME`, which shares the address discovery.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, ValueHint};
use console::style;

use crate::exec::Sink;
use crate::names::VmName;
use crate::tools::rdp::{self, Flavor, Session};
use crate::tools::viewer;
use crate::tools::virsh::DomState;
use crate::ui::HintExt;
use crate::vm::ctx::Ctx;
use crate::vm::net;
use crate::vm::power::{self, idle};
use crate::vm::rdp::client::{self as rdp_client, Launch, NoRdp};
use crate::vm::rdp::clients;

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

/// `--share`, checked: an existing directory FreeRDP can name, never `/`
/// (nothing wider than asked: without `--share`, no drive at all).
fn share_dir(ctx: &Ctx, p: &Path) -> Result<String> {
    let given = p;
    let p = ctx
        .local
        .canonicalize(p)
        .with_context(|| format!("--share {}", p.display()))?;
    if !ctx.local.is_dir(&p) {
        bail!("--share {} is not a directory", p.display());
    }
    if p == Path::new("/") {
        return Err(anyhow!(
            "--share {}: bkt never shares / (the whole file system) with Windows",
            given.display()
        ))
        .hint("share the directory Windows needs, e.g. --share ~/Shared; nothing was started");
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
            more: Vec::new(),
        }));
    };
    let user = match client.flavor {
        Flavor::Remmina => opts.user.clone(),
        _ => Some(rdp_client::user_name(
            ctx,
            name,
            &opts.user,
            &format!("bkt vm connect {name}"),
        )?),
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
        clipboard: rdp_client::clipboard_setting(ctx, name)?,
        pin: crate::vm::rdp::pins::current(ctx, name)?,
    };
    let cmd = rdp::argv(&client, &session)
        .map_err(|why| anyhow!("{why}, and {name}'s clipboard is off"))
        .hint(format!(
            "install FreeRDP (apt install freerdp3-x11 / dnf install freerdp), or share the \
             clipboard: bkt vm config {name} --clipboard on"
        ))?;
    let stdin = match client.flavor {
        Flavor::Remmina => None,
        _ => Some(rdp_client::password_line(
            user.as_deref().unwrap_or_default(),
            name,
        )?),
    };
    if let Some(u) = &user {
        rdp_client::remember_user(ctx, name, u)?;
    }
    let launch = Launch {
        after: None,
        client: &client,
        pin: session.pin.clone(),
        cmd,
        stdin,
        user,
        again: format!("bkt vm connect {name}"),
    };
    rdp_client::run(ctx, name, launch, None)
}

/// Run the SPICE viewer; `label` says why, before the command line.
/// virt-viewer attaches through libvirt; over ssh it would reach the
/// display with `nc` on the host, which hosts often lack, so there
/// remote-viewer (of the same package) gets a tunnel bkt opens instead.
fn spice(ctx: &Ctx, name: &str, label: &str) -> Result<()> {
    let over_ssh = ctx.uri.ssh().is_some();
    let virt_viewer = ctx.local.has_program("virt-viewer");
    let cmd = if virt_viewer && !over_ssh {
        viewer::virt_viewer(ctx.uri.as_str(), name)
    } else if ctx.local.has_program("remote-viewer") {
        let out = ctx
            .libvirt_out(&ctx.virsh.domdisplay(name))
            .map_err(|e| e.context(format!("cannot find {name}'s SPICE display")))?;
        let uri =
            viewer::parse_domdisplay(&out).ok_or_else(|| anyhow!("{name} has no SPICE display"))?;
        // The display listens on the host: over ssh, through a tunnel to
        // its port there (on every address, or by name: its loopback).
        let uri = match (over_ssh, viewer::spice_addr(&uri)) {
            (false, _) => uri,
            (true, Some((host, port))) => {
                let host = match host.parse::<std::net::IpAddr>() {
                    Ok(ip) if !ip.is_unspecified() => host,
                    _ => "127.0.0.1".to_string(),
                };
                let (host, port) = ctx.host.reach_from_here(&host, port)?;
                format!("spice://{host}:{port}")
            }
            (true, None) => {
                return Err(anyhow!(
                    "{name}'s SPICE display ({uri}) is not on a TCP port of {}: bkt can tunnel \
                     only a port over ssh",
                    ctx.uri.ssh().map_or("the host", |t| t.host.as_str())
                ))
                .hint("give the VM a SPICE display on a TCP port (virt-manager: Display Spice, Address: localhost), or install virt-viewer with nc on the host");
            }
        };
        viewer::remote_viewer(&uri, name)
    } else if virt_viewer {
        // Its libvirt connection and its display's tunnel ride bkt's one
        // ssh login (the display needs `nc` on the host).
        ctx.virsh
            .client(viewer::virt_viewer(ctx.uri.as_str(), name))
    } else {
        return Err(anyhow!(
            "no SPICE viewer found (virt-viewer or remote-viewer)"
        ))
        .hint("install it: apt install virt-viewer / dnf install virt-viewer");
    };
    rdp_client::arrow(&ctx.ui, &cmd, label);
    let status = ctx
        .local
        .exec_attached(&cmd, None, &Sink::Inherit)
        .map_err(crate::tools::program_error)?;
    if status.success() {
        Ok(())
    } else {
        bail!("`{}` failed ({status})", cmd.display())
    }
}

/// Open the VM's desktop: Remote Desktop (RDP), or SPICE when RDP can't.
#[derive(Debug, Args)]
#[command(
    long_about = "Open the VM's desktop: Remote Desktop (RDP), or SPICE when RDP can't.\n\n\
    Starts the VM if it is off (resumes it if paused), waits for its IP address (DHCP \
    lease, then guest agent, then ARP) and for port 3389, then runs the first RDP client \
    found: FreeRDP 3 (sdl-freerdp3, xfreerdp3, wlfreerdp3), FreeRDP 2 (xfreerdp), Remmina. \
    If RDP is not available or the client cannot connect, it falls back to the SPICE viewer \
    (virt-viewer, or remote-viewer), saying why.\n\n\
    The password is never put on a command line: it is asked for without echo (or read \
    from BKT_VM_RDP_PASSWORD) and handed to FreeRDP on its standard input. It is never \
    written to disk. The user name is remembered in the manifest.",
    after_help = "Examples:\n  \
    bkt vm connect windows\n  \
    bkt vm connect windows --user anna --fullscreen --share ~/Shared\n  \
    bkt vm connect windows --spice            # Windows Setup, or troubleshooting\n\n\
    Environment:\n  \
    BKT_VM_RDP_PASSWORD   the Windows password (instead of the prompt)\n  \
    BKT_VM_RDP_CLIENT     the RDP client to use (name or path)"
)]
pub struct ConnectArgs {
    /// The VM's name.
    pub name: VmName,
    /// Use RDP only: fail instead of falling back to SPICE.
    #[arg(long, conflicts_with = "spice")]
    pub rdp: bool,
    /// Go straight to the SPICE viewer.
    #[arg(long)]
    pub spice: bool,
    /// The Windows user to log in as (remembered for next time).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Seconds to wait for the VM's address and Remote Desktop.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub timeout: u64,
    /// Full screen.
    #[arg(long)]
    pub fullscreen: bool,
    /// Share a host directory into Windows (RDP drive redirection).
    ///
    /// That directory alone, read-write; never /. Without it, no drive.
    #[arg(long, value_name = "PATH", value_hint = ValueHint::DirPath)]
    pub share: Option<PathBuf>,
}

pub fn run(ctx: &Ctx, args: ConnectArgs) -> Result<()> {
    let mode = if args.rdp {
        Mode::RdpOnly
    } else if args.spice {
        Mode::Spice
    } else {
        Mode::Auto
    };
    let opts = Options {
        mode,
        user: args.user,
        timeout: Duration::from_secs(args.timeout),
        fullscreen: args.fullscreen,
        share: args.share,
    };
    connect(ctx, &args.name, &opts)
}

fn connect(ctx: &Ctx, name: &VmName, opts: &Options) -> Result<()> {
    // A --share that cannot be (`/`, no directory) stops nothing half-way.
    if let Some(p) = &opts.share {
        share_dir(ctx, p)?;
    }
    let (state, _) = ctx.require(name)?;
    rdp_client::graphical_session(ctx, "connect")?;
    // In use until the client exits; then the idle watcher takes over.
    idle::in_use_while(ctx, name, || session(ctx, name, opts, state))
}

fn session(ctx: &Ctx, name: &VmName, opts: &Options, state: DomState) -> Result<()> {
    let started = power::ensure_running(ctx, name, state)?;
    if opts.mode == Mode::Spice {
        return spice(ctx, name, "");
    }
    let deadline = Instant::now() + opts.timeout;
    let rdp = match rdp_client::reach(ctx, name, opts.timeout, started, deadline)? {
        Ok(ip) => {
            // On a host reached over ssh the guest's network is the host's:
            // the client goes through a tunnel bkt opens there.
            let port = ctx.local.settings.rdp_port;
            let (host, local) = ctx.host.reach_from_here(&ip, port)?;
            if (host.as_str(), local) != (ip.as_str(), port) {
                ctx.ui.note(format_args!(
                    "RDP to {ip}:{port} through an ssh tunnel at {host}:{local}"
                ));
            }
            launch(ctx, name, opts, &rdp::server(&host, local))?
        }
        Err(no) => Err(no),
    };
    match rdp {
        Ok(()) => Ok(()),
        Err(no) if opts.mode == Mode::RdpOnly => Err(no.into_error()),
        Err(no) => {
            ctx.ui
                .note(format_args!("{} RDP: {}", style("✗").red(), no.why));
            for h in no.hint.iter().chain(&no.more) {
                ctx.ui.note(format_args!("  {h}"));
            }
            spice(ctx, name, "falling back to SPICE: ")
        }
    }
}

/// Print the VM's IPv4 address (for scripts).
#[derive(Debug, Args)]
pub struct IpArgs {
    /// The VM's name.
    pub name: VmName,
    /// Seconds to wait for an address to appear.
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    pub timeout: u64,
}

/// `bkt vm ip NAME`: the guest's IPv4 address, nothing else on stdout.
pub fn ip(ctx: &Ctx, args: IpArgs) -> Result<()> {
    let (name, timeout) = (&args.name, args.timeout);
    let (state, _) = ctx.require(name)?;
    if !state.is_active() {
        return Err(anyhow!("{name} is {}; it has no address", state.label()))
            .hint(format!("start it first: bkt vm start {name}"));
    }
    let found = if timeout == 0 {
        net::find_ip(ctx, name)?
    } else {
        let spinner = ctx.ui.quiet_spinner();
        let deadline = Instant::now() + Duration::from_secs(timeout);
        let f = net::wait_ip(ctx, name, deadline, &spinner);
        spinner.clear();
        f?
    };
    match found {
        Some((ip, _)) => {
            ctx.ui.line(format_args!("{ip}"));
            // On stderr: scripts read the address alone.
            if let Some(t) = ctx.uri.ssh() {
                ctx.ui.note(format_args!(
                    "{ip} is on {}'s network: reachable from {} only, not from here \
                     (`bkt vm connect {name}` tunnels Remote Desktop through ssh)",
                    t.host, t.host
                ));
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
