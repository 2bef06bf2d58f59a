//! `bkt vm`: the dispatcher. Each command is a module of its own that
//! orchestrates and imports no other command; what they share lives in the
//! helper modules below and, for every effect on the world, in [`ctx`].

// Commands.
pub mod apps;
pub mod config;
pub mod connect;
pub mod create;
pub mod destroy;
pub mod doctor;
pub mod download;
pub mod enable_rdp;
pub mod run;
pub mod snapshot;
pub mod start;
pub mod status;
pub mod stop;
pub mod watch;

// What commands share.
pub mod access;
pub mod catalog;
pub mod checks;
pub mod clients;
pub mod ctx;
pub mod idle;
pub mod launchers;
pub mod media;
pub mod net;
pub mod pins;
pub mod power;
pub mod rdp_client;
pub mod rdp_setup;
pub mod resources;
pub mod save;
pub mod unattended;
pub mod wait;

use anyhow::Result;

use crate::cli::{Global, VmCommand};
use crate::settings::Settings;

use ctx::Ctx;

/// Run one `bkt vm` command.
pub fn run(global: &Global, settings: Settings, command: VmCommand) -> Result<()> {
    crate::exec::set_verbose(global.verbose);
    let ctx = Ctx::new(global.uri.clone(), settings)?;
    // Every command but these talks to libvirt: log in to its host first,
    // once. doctor reports a host it cannot reach as a check; download
    // needs no host.
    if !matches!(command, VmCommand::Download(_) | VmCommand::Doctor(_)) {
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
        VmCommand::EnableRdp(args) => enable_rdp::run(&ctx, args),
        VmCommand::Ip(args) => connect::ip(&ctx, args),
        VmCommand::Destroy(args) => destroy::run(&ctx, args),
    }
}
