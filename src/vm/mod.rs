//! `bkt vm`: the dispatcher. Each user-facing command is a module of its
//! own under [`commands`] that orchestrates and imports no other command;
//! what they share lives in the rooms beside it, and every effect on the
//! world goes through [`ctx`]:
//!
//! - [`commands`]: one file per `bkt vm` command
//! - [`checks`]: what `create` and `doctor` check (QEMU's access, resources)
//! - [`media`]: install media on the host, the unattended answer ISO
//! - [`power`]: on and off, saved memory, when a VM is in use (idle)
//! - [`rdp`]: Remote Desktop: the client, turning it on, pins
//! - [`programs`]: the guest's programs (`apps`, `run`): catalog, launchers
//! - [`net`]: finding the guest's address; [`wait`]: polling until a deadline
//! - [`ctx`]: the one door to the outside world

pub mod checks;
pub mod commands;
pub mod ctx;
pub mod media;
pub mod net;
pub mod power;
pub mod programs;
pub mod rdp;
pub mod wait;

use anyhow::Result;

use crate::cli::{Global, VmCommand};
use crate::settings::Settings;

use commands::{
    apps, config, connect, create, destroy, doctor, download, enable_rdp, run, snapshot, start,
    status, stop, watch,
};
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
