//! `bkt vm run NAME APP [FILE...]`: one Windows program as a window of its
//! own (RDP RemoteApp). The VM is started (or restored, resumed) and reached
//! exactly as `connect` does; files are Linux paths, handed to Windows
//! through drive redirection: by default only the directory of each (the
//! VM's `config --share`, or `--share` for one run, widen or close that).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use clap::Args;

use crate::names::VmName;
use crate::tools::rdp::{self, Client, Opened, RemoteApp, Share};
use crate::tools::virsh::DomState;
use crate::ui::HintExt;
use crate::vm::ctx::{Ctx, OwnTunnel};
use crate::vm::power::{self, idle};
use crate::vm::programs::catalog::{self, App, wm_class};
use crate::vm::rdp::client::{self as rdp_client, Launch};

#[derive(Debug, Clone)]
pub struct Options {
    pub user: Option<String>,
    pub timeout: Duration,
    pub detach: bool,
    pub files: Vec<PathBuf>,
    /// `--share`: for this run, instead of the VM's setting.
    pub share: Option<Share>,
}

/// The files as absolute paths without symlinks (so a symlinked directory
/// is shared as the directory it points to): a missing one is an error
/// here, before anything starts.
fn files(ctx: &Ctx, given: &[PathBuf]) -> Result<Vec<Opened>> {
    given
        .iter()
        .map(|f| {
            let p = ctx.local.absolute(f)?;
            let p = match ctx.local.canonicalize(&p) {
                Ok(p) => p,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(anyhow!("no such file: {}", f.display()))
                        .hint("check the path; nothing was started");
                }
                Err(e) => return Err(e).with_context(|| format!("cannot open {}", f.display())),
            };
            let dir = ctx.local.is_dir(&p);
            p.to_str()
                .map(|path| Opened {
                    path: path.to_string(),
                    dir,
                })
                .ok_or_else(|| anyhow!("{} is not valid UTF-8", p.display()))
        })
        .collect()
}

/// What this run shares: `--share`, else the VM's setting. With none, a
/// file is an error that says where the `none` came from.
fn share(ctx: &Ctx, name: &VmName, opts: &Options, files: &[Opened]) -> Result<Share> {
    let (share, given) = match opts.share {
        Some(s) => (s, true),
        None => (rdp_client::share_setting(ctx, name)?, false),
    };
    if let (Share::None, Some(f)) = (share, files.first()) {
        let (why, hint) = if given {
            (
                "--share none gives Windows no drive".to_string(),
                "drop --share none to share the file's directory (or leave the file out)"
                    .to_string(),
            )
        } else {
            (
                format!("{name} shares nothing with Windows (bkt vm config {name} --share none)"),
                format!(
                    "share the file's directory for this run: --share files, or for every run: \
                     bkt vm config {name} --share files"
                ),
            )
        };
        return Err(anyhow!("{why}, so it cannot open {}", f.path))
            .hint(format!("{hint}; nothing was started"));
    }
    Ok(share)
}

/// What the client gets, but for the address and the user (checked before
/// the VM starts, so a file FreeRDP cannot carry stops nothing half-way).
fn remote_app(
    ctx: &Ctx,
    name: &VmName,
    app: &App,
    files: &[Opened],
    share: Share,
) -> Result<RemoteApp> {
    let home = ctx
        .local
        .settings
        .home
        .as_ref()
        .and_then(|h| ctx.local.canonicalize(h).ok())
        .and_then(|h| h.to_str().map(str::to_string));
    let t = rdp::translate_files(home.as_deref(), files, share).map_err(|e| anyhow!(e))?;
    Ok(RemoteApp {
        host: String::new(),
        user: String::new(),
        program: app.program.clone(),
        name: app.name.clone(),
        wm_class: wm_class(name, &app.id),
        fixed_args: app.args.clone(),
        args: t.paths,
        drives: t.drives,
        scale: ctx.local.settings.scale,
        clipboard: rdp_client::clipboard_setting(ctx, name)?,
        pin: None,
    })
}

/// Open one Windows program as a window of its own (RDP RemoteApp).
#[derive(Debug, Args)]
#[command(
    long_about = "Open one Windows program as a window of its own (RDP RemoteApp).\n\n\
    APP is an id (`bkt vm apps NAME` lists them; notepad, paint, explorer, cmd and \
    powershell always work), a full Windows path ('C:\\Program Files\\...\\x.exe'), or a \
    program Windows finds on its own path (notepad.exe). The VM is started (restored, \
    resumed) and reached as `connect` does, and the client gets the password on its \
    standard input, never on its command line.\n\n\
    FILEs are Linux paths. Windows sees only what you open: the directory of each FILE \
    is shared (read-write) as a drive of its own, \\\\tsclient\\bkt1, ... (your home, \
    \\\\tsclient\\home, only for a file directly in it), and without a FILE nothing is; \
    / never is. --share home shares your whole home instead, --share none nothing at all; \
    `bkt vm config NAME --share` sets the VM's default. A missing file is an error before \
    anything starts. Needs FreeRDP (xfreerdp3 or xfreerdp, 2 or 3) with an X display \
    (XWayland on Wayland); Remmina cannot open a single program.",
    after_help = "Examples:\n  \
    bkt vm run windows notepad ~/notes.txt\n  \
    bkt vm run windows 'C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE' ~/Q3.docx\n  \
    bkt vm run windows paint --detach\n\n\
    Environment:\n  \
    BKT_VM_RDP_PASSWORD   the Windows password (instead of the prompt)\n  \
    BKT_VM_RDP_CLIENT     the RDP client to use (name or path)\n  \
    BKT_VM_SCALE          the window scale in percent (else GDK_SCALE, QT_SCALE_FACTOR)"
)]
pub struct RunArgs {
    /// The VM's name.
    pub name: VmName,
    /// The program: an id, a Windows path, or a program name.
    pub app: String,
    /// Files to open with it (Linux paths).
    pub files: Vec<PathBuf>,
    /// The Windows user to log in as (remembered for next time).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Seconds to wait for the VM's address and Remote Desktop.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub timeout: u64,
    /// Return once the client is connected, leaving it running.
    #[arg(long)]
    pub detach: bool,
    /// What Windows may see of this machine, for this run [default: the
    /// VM's, see `bkt vm config`, else files].
    #[arg(long, value_enum, value_name = "WHAT")]
    pub share: Option<Share>,
}

pub fn run(ctx: &Ctx, args: RunArgs) -> Result<()> {
    let opts = Options {
        user: args.user,
        timeout: Duration::from_secs(args.timeout),
        detach: args.detach,
        files: args.files,
        share: args.share,
    };
    open(ctx, &args.name, &args.app, &opts)
}

fn open(ctx: &Ctx, name: &VmName, app: &str, opts: &Options) -> Result<()> {
    let files = files(ctx, &opts.files)?;
    let share = share(ctx, name, opts, &files)?;
    let app = catalog::resolve(app, &catalog::known(ctx, name), name)?;
    let remote = remote_app(ctx, name, &app, &files, share)?;
    let (state, _) = ctx.require(name)?;
    rdp_client::graphical_session(ctx, "run")?;
    let client = rdp_client::remoteapp_client(ctx)?;
    rdp::remoteapp_argv(&client, &remote).map_err(|e| anyhow!(e))?;
    // In use until the client exits; then the idle watcher takes over.
    idle::in_use_while(ctx, name, || {
        session(ctx, name, &app, opts, state, &client, remote)
    })
}

fn session(
    ctx: &Ctx,
    name: &VmName,
    app: &App,
    opts: &Options,
    state: DomState,
    client: &Client,
    remote: RemoteApp,
) -> Result<()> {
    let started = power::ensure_running(ctx, name, state)?;
    let deadline = Instant::now() + opts.timeout;
    let guest = match rdp_client::reach(ctx, name, opts.timeout, started, deadline)? {
        Ok(ip) => ip,
        Err(no) => return Err(no.into_error()),
    };
    // Who and the password first: a prompt that is interrupted leaves no
    // tunnel behind (it would outlive bkt).
    let again = format!("bkt vm run {name} {}", app.id);
    let user = rdp_client::user_name(ctx, name, &opts.user, &again)?;
    let stdin = rdp_client::password_line(&user, name)?;
    // Over ssh the guest's network is the host's: through a tunnel. The
    // command's own (a forward of its master) ends with bkt; a detached
    // client gets one of its own, one more ssh login, that ends with it.
    // Its control socket is in bkt's private runtime directory, which
    // outlives this command (the master's directory does not).
    let rdp_port = ctx.local.settings.rdp_port;
    let own = match ctx.uri.ssh() {
        Some(_) if opts.detach => {
            let tag: [u8; 6] = ctx.local.random_bytes()?;
            let tag: String = tag.iter().map(|b| format!("{b:02x}")).collect();
            let socket = ctx.local.runtime_dir()?.join(format!("ssh-{tag}"));
            ctx.host.own_tunnel(&guest, rdp_port, &socket)?
        }
        _ => None,
    };
    let (host, port) = match &own {
        Some(t) => (t.host.clone(), t.port),
        None => ctx.host.reach_from_here(&guest, rdp_port)?,
    };
    let remote = RemoteApp {
        host: rdp::server(&host, port),
        user: user.clone(),
        pin: crate::vm::rdp::pins::current(ctx, name)?,
        ..remote
    };
    let cmd = rdp::remoteapp_argv(client, &remote).map_err(|e| anyhow!(e))?;
    rdp_client::remember_user(ctx, name, &user)?;
    let launch = Launch {
        client,
        pin: remote.pin.clone(),
        cmd,
        stdin: Some(stdin),
        user: Some(user),
        again,
        after: own.map(OwnTunnel::hand_over),
    };
    rdp_client::run(ctx, name, launch, opts.detach.then_some(guest.as_str()))?
        .map_err(|no| no.into_error())
}
