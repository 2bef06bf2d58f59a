//! `bkt vm`: the dispatcher. Each user-facing command is a module of its
//! own under [`commands`] that orchestrates and imports no other command;
//! what they share lives in the rooms beside it, and every effect on the
//! world goes through [`ctx`]:
//!
//! - [`commands`]: one file per `bkt vm` command
//! - [`checks`]: what `create` and `doctor` check (QEMU's access, resources)
//! - [`media`]: install media on the host, the unattended answer ISO, what
//!   Windows an ISO holds, the Windows ISO from Microsoft
//! - [`power`]: on and off, saved memory, when a VM is in use (idle)
//! - [`rdp`]: Remote Desktop: the client, turning it on, pins
//! - [`programs`]: the guest's programs (`apps`, `run`): catalog, launchers
//! - [`options`]: option groups more than one command takes
//! - [`net`]: finding the guest's address; [`wait`]: polling until a deadline
//! - [`ctx`]: the one door to the outside world

pub mod checks;
pub mod commands;
pub mod ctx;
pub mod media;
pub mod net;
pub mod options;
pub mod power;
pub mod programs;
pub mod rdp;
pub mod wait;

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::names::Uri;

use crate::settings::Settings;

use commands::{
    apps, config, connect, create, destroy, doctor, download, enable_rdp, iso_info, run, snapshot,
    start, status, stop, watch,
};
use ctx::Ctx;

// `bkt vm`: the options every command takes, and the command (cli.rs flattens it).
#[derive(Debug, Args)]
pub struct VmArgs {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: VmCommand,
}

/// Options every `bkt vm` command takes.
#[derive(Debug, Args, Clone)]
pub struct Global {
    /// libvirt connection URI.
    ///
    /// qemu+ssh://[USER@]HOST[:PORT]/system runs every command against
    /// libvirt on that machine over one ssh login (?keyfile=PATH and
    /// ?known_hosts=PATH honoured; ssh never prompts, so the key must be
    /// loaded or named).
    #[arg(
        long = "connect",
        short = 'c',
        global = true,
        value_name = "URI",
        env = "LIBVIRT_DEFAULT_URI",
        default_value = "qemu:///system",
        hide_env_values = true
    )]
    pub uri: Uri,

    /// Print every external command, shell-quoted, before it runs.
    #[arg(long, short, global = true)]
    pub verbose: bool,
}

/// The `bkt vm` commands: each one's options and help text live beside
/// it, in its module, as `XxxArgs`.
#[derive(Debug, Subcommand)]
pub enum VmCommand {
    Create(Box<create::CreateArgs>),
    Start(start::StartArgs),
    Stop(stop::StopArgs),
    Config(config::ConfigArgs),
    Watch(watch::WatchArgs),
    Status(status::StatusArgs),
    Connect(connect::ConnectArgs),
    Run(run::RunArgs),
    Apps(apps::AppsArgs),
    Snapshot(snapshot::SnapshotArgs),
    Doctor(doctor::DoctorArgs),
    Download(download::DownloadArgs),
    IsoInfo(iso_info::IsoInfoArgs),
    EnableRdp(enable_rdp::EnableRdpArgs),
    Ip(connect::IpArgs),
    Destroy(destroy::DestroyArgs),
}

/// Run one `bkt vm` command.
pub fn run(global: &Global, settings: Settings, command: VmCommand) -> Result<()> {
    crate::exec::set_verbose(global.verbose);
    let ctx = Ctx::new(global.uri.clone(), settings)?;
    // Every command but these talks to libvirt: log in to its host first,
    // once. doctor reports a host it cannot reach as a check; download
    // needs no host; iso-info only for --remote.
    // iso-info reads an ISO of this machine unless told it is the host's.
    let here_only = match &command {
        VmCommand::Download(_) | VmCommand::Doctor(_) => true,
        VmCommand::IsoInfo(a) => !a.remote,
        _ => false,
    };
    if !here_only {
        ctx.open()?;
    }
    match command {
        VmCommand::Create(args) => create::run(&ctx, *args),
        VmCommand::Start(args) => start::run(&ctx, args),
        VmCommand::Stop(args) => stop::run(&ctx, args),
        VmCommand::Config(args) => config::run(&ctx, args),
        VmCommand::Watch(args) => watch::run(&ctx, args),
        VmCommand::Status(args) => status::run(&ctx, args),
        VmCommand::Connect(args) => connect::run(&ctx, args),
        VmCommand::Run(args) => run::run(&ctx, args),
        VmCommand::Apps(args) => apps::run(&ctx, args),
        VmCommand::Snapshot(args) => snapshot::run(&ctx, args),
        VmCommand::Doctor(args) => doctor::run(&ctx, args),
        VmCommand::Download(args) => download::run(&ctx, args),
        VmCommand::IsoInfo(args) => iso_info::run(&ctx, args),
        VmCommand::EnableRdp(args) => enable_rdp::run(&ctx, args),
        VmCommand::Ip(args) => connect::ip(&ctx, args),
        VmCommand::Destroy(args) => destroy::run(&ctx, args),
    }
}
