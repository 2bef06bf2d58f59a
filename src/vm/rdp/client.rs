//! Reaching a guest's Remote Desktop and running an RDP client against it,
//! shared by `connect` (the whole desktop) and `run` (one program, RDP
//! RemoteApp): the user name and password (never on argv), waiting for the
//! guest's Remote Desktop port with the same words, the client's log, and what its exit means.

use std::io::IsTerminal;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use console::style;

use crate::exec::{Cmd, Sink};
use crate::secrets;
use crate::tools::rdp::{self, Client, Flavor, Outcome};
use crate::ui::{HintExt, Ui, secs};
use crate::vm::ctx::{Ctx, PortState};
use crate::vm::net;
use crate::vm::rdp::clients;
use crate::vm::rdp::pins;

/// Why RDP was not used; shown before the fallback (or as the error).
pub struct NoRdp {
    pub why: String,
    pub hint: Option<String>,
    /// More advice, after the hint (FreeRDP's missing MD4).
    pub more: Vec<String>,
}

impl NoRdp {
    /// As the error of a command that has no fallback.
    pub fn into_error(self) -> anyhow::Error {
        let mut err: Result<()> = Err(anyhow!("RDP: {}", self.why));
        for h in self.hint.into_iter().chain(self.more) {
            err = err.hint(h);
        }
        err.unwrap_err()
    }
}

/// A client window needs a desktop session.
pub fn graphical_session(ctx: &Ctx, command: &str) -> Result<()> {
    let s = &ctx.local.settings;
    if s.display || s.wayland {
        return Ok(());
    }
    Err(anyhow!(
        "no graphical session: neither DISPLAY nor WAYLAND_DISPLAY is set"
    ))
    .hint(format!(
        "run `bkt vm {command}` from your desktop session (or over ssh -X)"
    ))
}

fn valid_user(u: &str) -> Result<()> {
    if u.is_empty() || u.chars().any(|c| c.is_control()) || u.starts_with(['-', '/', '+']) {
        bail!("invalid user name {u:?}");
    }
    Ok(())
}

/// `--user`, else the manifest's, else ask. `again` is the command to
/// repeat with `--user` (`bkt vm connect windows`).
pub fn user_name(ctx: &Ctx, name: &str, given: &Option<String>, again: &str) -> Result<String> {
    if let Some(u) = given {
        valid_user(u)?;
        return Ok(u.clone());
    }
    let m = ctx.manifest.load()?;
    if let Some(u) = m.get(name, &ctx.uri).and_then(|e| e.rdp_user.clone()) {
        return Ok(u);
    }
    if std::io::stdin().is_terminal() {
        let u: String = dialoguer::Input::new()
            .with_prompt(format!("Windows user name for {name}"))
            .validate_with(|s: &String| valid_user(s).map_err(|e| e.to_string()))
            .interact_text()?;
        return Ok(u);
    }
    Err(anyhow!("no Windows user name for {name}"))
        .hint(format!("pass it once with --user: {again} --user NAME"))
}

/// From `BKT_VM_RDP_PASSWORD` as bkt found it at start (its bytes as they
/// are), else a prompt without echo. Never argv, never disk. Ends with the
/// line break FreeRDP's `/from-stdin` reads up to.
pub fn password_line(user: &str, name: &str) -> Result<Vec<u8>> {
    let mut pw = if let Some(p) = secrets::rdp_password() {
        p.as_bytes().to_vec()
    } else if std::io::stdin().is_terminal() {
        dialoguer::Password::new()
            .with_prompt(format!("Password for {user} on {name}"))
            .allow_empty_password(true)
            .interact()?
            .into_bytes()
    } else {
        return Err(anyhow!("no password for {user} on {name}")).hint(format!(
            "run it on a terminal to be asked, or set {}",
            secrets::RDP_PASSWORD_ENV
        ));
    };
    if pw.contains(&b'\n') || pw.contains(&b'\r') {
        bail!("the password contains a line break, which FreeRDP cannot read from stdin");
    }
    pw.push(b'\n');
    Ok(pw)
}

/// What `run` shares with Windows unless told: the manifest's `share`
/// (set by `bkt vm config NAME --share`), else `files`. A word this bkt
/// does not know (a newer one wrote it) is an error, never a guess.
pub fn share_setting(ctx: &Ctx, name: &str) -> Result<rdp::Share> {
    let m = ctx.manifest.load()?;
    let Some(word) = m.get(name, &ctx.uri).and_then(|e| e.share.clone()) else {
        return Ok(rdp::Share::default());
    };
    match rdp::Share::parse(&word) {
        Some(share) => Ok(share),
        None => Err(anyhow!(
            "the manifest says {name} shares {word:?} with Windows, which this bkt does not know"
        ))
        .hint(format!(
            "set it again: bkt vm config {name} --share files (or home, none)"
        )),
    }
}

/// Whether the RDP clients share the clipboard with `name`: the manifest's
/// `clipboard` (`bkt vm config NAME --clipboard`), else on.
pub fn clipboard_setting(ctx: &Ctx, name: &str) -> Result<bool> {
    let m = ctx.manifest.load()?;
    Ok(m.get(name, &ctx.uri)
        .and_then(|e| e.clipboard)
        .unwrap_or(true))
}

pub fn remember_user(ctx: &Ctx, name: &str, user: &str) -> Result<()> {
    let known = ctx.manifest.load()?;
    match known.get(name, &ctx.uri) {
        Some(e) if e.rdp_user.as_deref() != Some(user) => ctx.manifest.update(|m| {
            if let Some(e) = m.get_mut(name, &ctx.uri) {
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

/// Show the command line about to run.
pub fn arrow(ui: &Ui, cmd: &Cmd, label: &str) {
    ui.line(format_args!(
        "{} {}{}",
        style("→").cyan(),
        crate::ui::escaped(label),
        crate::ui::escaped(&cmd.display().to_string())
    ));
}

/// What a FreeRDP line says about itself: `FreeRDP 3.10.3: ` (empty for
/// Remmina, or when it did not tell).
pub fn label(client: &Client) -> String {
    match (&client.flavor, &client.version) {
        (Flavor::Remmina, _) => String::new(),
        (_, Some(v)) => format!("FreeRDP {v}: "),
        (_, None) => String::new(),
    }
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

/// FreeRDP refused the guest's certificate: it is not the one bkt pinned
/// for the VM. The same words as FreeRDP's own "has changed" (locally and
/// over ssh alike), and the pin to drop.
fn pin_refused(ctx: &Ctx, name: &str, l: &Launch) -> Result<()> {
    let server = l
        .cmd
        .arguments()
        .iter()
        .find_map(|a| a.strip_prefix("/v:"))
        .unwrap_or_default();
    let server = match server.rsplit_once(':') {
        Some((_, port)) if port.parse::<u16>().is_ok() => server.to_string(),
        _ => format!("{server}:{}", rdp::DEFAULT_PORT),
    };
    Err(anyhow!(
        "the RDP certificate of {server} changed since the last connection, and {} refused it: \
         {name} was recreated, or someone is in between",
        l.client.program
    ))
    .hint(format!(
        "if you recreated {name}, drop the certificate bkt pinned for it and connect again: rm {}",
        crate::exec::shell_quote(&pins::file(ctx, name).display().to_string())
    ))
}

/// Reach the guest's Remote Desktop: its address, then its port 3389 (a VM
/// just started is still booting: wait for it; one that was running
/// answers now or has RDP off). The address, or why RDP cannot be had.
pub fn reach(
    ctx: &Ctx,
    name: &str,
    timeout: Duration,
    started: bool,
    deadline: Instant,
) -> Result<std::result::Result<String, NoRdp>> {
    let spinner = ctx.ui.quiet_spinner();
    let found = net::wait_ip(ctx, name, deadline, &spinner);
    let Some((ip, source)) = found? else {
        spinner.clear();
        return Ok(Err(NoRdp {
            why: format!(
                "no IPv4 address for {name} after {} (no DHCP lease, guest agent or ARP entry)",
                secs(timeout)
            ),
            hint: Some(
                "the guest may still be booting, or its network driver (VirtIO) is missing".into(),
            ),
            more: Vec::new(),
        }));
    };
    let port = ctx.local.settings.rdp_port;
    let reached = if started {
        net::wait_port(ctx, name, ip, port, deadline, &spinner)
    } else {
        Ok((
            ip,
            ctx.host.probe(&ip.to_string(), port, net::PROBE_TIMEOUT),
        ))
    };
    spinner.clear();
    let (ip, state) = reached?;
    Ok(match state {
        PortState::Open => Ok(ip.to_string()),
        PortState::Refused => Err(NoRdp {
            why: format!("{ip}:{port} refused the connection: Remote Desktop is off in Windows"),
            hint: Some(
                "turn it on in Windows: Settings → System → Remote Desktop (Windows Pro)".into(),
            ),
            more: Vec::new(),
        }),
        PortState::NoAnswer => Err(NoRdp {
            why: format!(
                "no answer from {ip}:{port}: Windows is still booting, or its firewall drops Remote Desktop"
            ),
            hint: Some(format!(
                "wait a little and retry, or allow the \"Remote Desktop\" rule in Windows Defender Firewall (found {ip} by {})",
                source.as_str()
            )),
            more: Vec::new(),
        }),
    })
}

/// A client to run: its command line, what it reads on stdin (FreeRDP: the
/// password line), and the user it logs in as.
pub struct Launch<'a> {
    pub client: &'a Client,
    pub cmd: Cmd,
    pub stdin: Option<Vec<u8>>,
    pub user: Option<String>,
    /// The command that repeats this one with `--user`.
    pub again: String,
    /// Run once the client has ended, however (the end of a detached
    /// client's own tunnel).
    pub after: Option<Cmd>,
    /// The certificate bkt pinned for the VM, on the client's argv; None: a
    /// first use (see [`crate::vm::rdp::pins`]).
    pub pin: Option<String>,
}

/// How long `--detach` waits for the client's connection to the guest.
const DETACH_WAIT: Duration = Duration::from_secs(30);

/// Run the client. Ok(Ok(())) when a session ran (or, with `detach`, when
/// the client holds a connection to the guest's Remote Desktop at `ip` and is left
/// running); Ok(Err(NoRdp)) when it could not connect and SPICE may stand
/// in; Err for failures SPICE cannot fix.
pub fn run(
    ctx: &Ctx,
    name: &str,
    l: Launch,
    detach: Option<&str>,
) -> Result<std::result::Result<(), NoRdp>> {
    let client = l.client;
    // The argv carries the guest's words (a program's name and path from
    // the apps it listed): shown as data, never as terminal control.
    arrow(&ctx.ui, &l.cmd, &label(client));
    // A first use: FreeRDP pins the certificate in this VM's own directory,
    // where bkt takes it from (never in the user's store, keyed by a port
    // that changes with every ssh tunnel).
    let first_use = l.pin.is_none() && client.flavor != Flavor::Remmina;
    let cmd = if first_use {
        let dir = pins::first_use_dir(ctx, name);
        ctx.local
            .create_dir_all(&dir)
            .map_err(|e| anyhow!("creating {}: {e}", dir.display()))?;
        l.cmd
            .clone()
            .env("XDG_CONFIG_HOME", dir.display().to_string())
    } else {
        l.cmd.clone()
    };
    let log = match client.flavor {
        Flavor::Remmina => None,
        _ => ctx.local.session_log(&format!("{name}-rdp")),
    };
    let sink = log.clone().map(Sink::File).unwrap_or(Sink::Inherit);
    let status = match detach {
        None => ctx
            .local
            .exec_attached(&cmd, l.stdin.as_deref(), &sink)
            .map_err(crate::tools::program_error)?,
        Some(ip) => {
            let cmd = match &l.after {
                Some(after) => cmd.followed_by(after),
                None => cmd,
            };
            let child = match ctx.local.spawn_attached(&cmd, l.stdin.as_deref(), &sink) {
                Ok(child) => child,
                Err(e) => {
                    // The client never started: what was to end with it
                    // (a tunnel of its own) ends now.
                    if let Some(after) = &l.after {
                        let _ = ctx.local.exec(after);
                    }
                    return Err(crate::tools::program_error(e));
                }
            };
            match wait_connected(ctx, &child, ip)? {
                Some(st) => st,
                None => {
                    // Taken now if FreeRDP has pinned it already, else at
                    // the next connection (see `pins::current`).
                    if first_use {
                        pins::take_first_use(ctx, name)?;
                    }
                    let log = log.map(|p| p.display().to_string()).unwrap_or_default();
                    ctx.ui
                        .line(format_args!("{} is up; its log: {log}", client.program));
                    return Ok(Ok(()));
                }
            }
        }
    };
    if client.flavor == Flavor::Remmina {
        return Ok(Ok(()));
    }
    if first_use {
        pins::take_first_use(ctx, name)?;
    }
    let text = log
        .as_ref()
        .map(|p| ctx.local.read_log(p))
        .unwrap_or_default();
    explain(ctx, name, &l, status, &text, log)
}

/// Wait until the detached client holds an established connection to the
/// guest's Remote Desktop (None: leave it running), or has ended (its
/// status).
fn wait_connected(
    ctx: &Ctx,
    child: &crate::exec::Running,
    ip: &str,
) -> Result<Option<std::process::ExitStatus>> {
    let deadline = Instant::now() + DETACH_WAIT;
    let port = ctx.local.settings.rdp_port;
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(Some(st));
        }
        let up = ctx
            .host
            .tcp_established()
            .iter()
            .any(|(_, r)| r.port() == port && r.ip().to_string() == ip);
        if up || Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What the ended client's status and log mean.
fn explain(
    ctx: &Ctx,
    name: &str,
    l: &Launch,
    status: std::process::ExitStatus,
    text: &str,
    log: Option<PathBuf>,
) -> Result<std::result::Result<(), NoRdp>> {
    let client = l.client;
    // Not a reason to fall back to SPICE, even in auto mode: the user has to
    // decide whether to trust the new certificate.
    if let Some(changed) = rdp::changed_certificate(text) {
        return certificate_changed(ctx, name, client, &changed).map(Ok);
    }
    if l.pin.is_some() && rdp::pin_refused(text) {
        return pin_refused(ctx, name, l).map(Ok);
    }
    let code = match status.code() {
        Some(c) => c,
        None => bail!("{} was killed ({status})", client.program),
    };
    let (outcome, words) = rdp::explain_exit(code);
    // Only where the login may be at fault: not a session that ran, not a
    // network that failed before any login, not a refused command line.
    let md4 = match (outcome, code) {
        (Outcome::Ended, _) | (_, 23 | 24 | 128 | 131 | 137 | 139 | 140 | 141 | 147) => Vec::new(),
        _ => md4_advice(ctx, l, text),
    };
    // A refused command line: the parser's own line says which argument
    // (the usage text after it says nothing).
    let tail = match rdp::rejected_argument(text) {
        Some(line) if matches!(code, 23 | 24) => line,
        _ => log_tail(text),
    };
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
            more: md4,
        })),
        Outcome::AuthFailed => Err(anyhow!(
            "{} exited with code {code}: {words} for {}{detail}",
            client.program,
            l.user.clone().unwrap_or_default()
        ))
        .hint(format!(
            "check the user name and password ({} --user NAME); \
             a Microsoft account logs in with its email address",
            l.again
        ))
        .map_err(|e| with_hints(e, md4)),
        Outcome::Failed => Err(anyhow!(
            "{} exited with code {code}: {words}{detail}",
            client.program
        ))
        .hint(format!(
            "or use the SPICE console: bkt vm connect {name} --spice"
        ))
        .map_err(|e| with_hints(e, md4)),
    }
}

fn with_hints(e: anyhow::Error, hints: Vec<String>) -> anyhow::Error {
    let mut r: Result<()> = Err(e);
    for h in hints {
        r = r.hint(h);
    }
    r.unwrap_err()
}

/// When FreeRDP's log says its OpenSSL lacks MD4 (Debian's FreeRDP 3.10):
/// how to run it with OpenSSL's legacy provider, in a configuration file
/// bkt writes to its cache, or with FreeRDP 2. Debian's 3.10.3 computes
/// NTLM right all the same (scripts/rdp-nla-standin.py checks the login it
/// sends), so this is advice for a failed login, never an error of its own.
fn md4_advice(ctx: &Ctx, l: &Launch, text: &str) -> Vec<String> {
    if !rdp::md4_missing(text) || l.client.flavor != Flavor::FreeRdp3 {
        return Vec::new();
    }
    vec![format!(
        "{} logged `Failed to initialize digest md4`: its OpenSSL lacks MD4, which NTLM \
         (Network Level Authentication to a Windows outside a domain) needs. If the login \
         failed for that, {}",
        l.client.program,
        md4_fix(ctx, &l.again)
    )]
}

/// What to do about a FreeRDP without MD4, for `again` (the command to run
/// once more): OpenSSL's legacy provider from a configuration bkt writes to
/// its cache, or FreeRDP 2.
pub fn md4_fix(ctx: &Ctx, again: &str) -> String {
    let cnf = match ctx
        .local
        .write_cache_file("openssl-legacy.cnf", rdp::OPENSSL_LEGACY_CNF)
    {
        Ok(p) => crate::exec::shell_quote(&p.display().to_string()),
        Err(_) => "FILE".to_string(),
    };
    format!(
        "load OpenSSL's legacy provider: OPENSSL_CONF={cnf} {again}, \
         or use FreeRDP 2: BKT_VM_RDP_CLIENT=xfreerdp {again}"
    )
}

/// Where `run` starts its client: for `connect`, see [`clients::find`].
pub fn remoteapp_client(ctx: &Ctx) -> Result<Client> {
    clients::find_remoteapp(ctx).or_else(|other| {
        let why = match other {
            Some(c) if c.flavor == Flavor::Remmina => format!(
                "only {} is installed, and Remmina cannot open a single Windows program \
                 (RDP RemoteApp) from the command line",
                c.program
            ),
            Some(c) => format!(
                "{} cannot open a single Windows program here: RemoteApp needs xfreerdp3 or \
                 xfreerdp, with an X display (XWayland on Wayland)",
                c.program
            ),
            None => "no RDP client found: RemoteApp needs FreeRDP (xfreerdp3 or xfreerdp)".into(),
        };
        Err(anyhow!("{why}")).hint(
            "install FreeRDP: apt install freerdp3-x11 (or freerdp2-x11) / dnf install freerdp; \
             `bkt vm connect` keeps working with what you have",
        )
    })
}
