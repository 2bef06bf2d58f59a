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
pub mod iso_info;
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
pub mod iso_contents;
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
pub mod windows_iso;

use anyhow::Result;

use crate::cli::{Global, SnapshotCommand, VmCommand};
use crate::settings::Settings;

use ctx::Ctx;

/// Run one `bkt vm` command.
pub fn run(global: &Global, settings: Settings, command: VmCommand) -> Result<()> {
    crate::exec::set_verbose(global.verbose);
    let ctx = Ctx::new(global.uri.clone(), settings)?;
    // Every command but these talks to libvirt: log in to its host first,
    // once. doctor reports a host it cannot reach as a check; download
    // needs no host.
    if !matches!(
        command,
        VmCommand::Download { .. }
            | VmCommand::Doctor { .. }
            | VmCommand::IsoInfo { remote: false, .. }
    ) {
        ctx.open()?;
    }
    match command {
        VmCommand::Create(args) => create::run(&ctx, *args),
        VmCommand::Start { name } => start::run(&ctx, &name),
        VmCommand::Stop {
            name,
            timeout,
            force,
            save,
        } => stop::run(&ctx, &name, timeout, force, save),
        VmCommand::Status { name, json } => status::run(&ctx, name.as_ref(), json),
        VmCommand::Connect {
            name,
            rdp,
            spice,
            user,
            timeout,
            fullscreen,
            share,
        } => connect::run(
            &ctx,
            &name,
            &connect::Options {
                mode: if rdp {
                    connect::Mode::RdpOnly
                } else if spice {
                    connect::Mode::Spice
                } else {
                    connect::Mode::Auto
                },
                user,
                timeout: std::time::Duration::from_secs(timeout),
                fullscreen,
                share,
            },
        ),
        VmCommand::Run {
            name,
            app,
            files,
            user,
            timeout,
            detach,
            share,
        } => run::run(
            &ctx,
            &name,
            &app,
            &run::Options {
                user,
                timeout: std::time::Duration::from_secs(timeout),
                detach,
                files,
                share,
            },
        ),
        VmCommand::Apps {
            name,
            json,
            refresh,
            install,
            uninstall,
            all,
        } => apps::run(
            &ctx,
            &name,
            &apps::Options {
                json,
                refresh,
                install,
                uninstall,
                all,
            },
        ),
        VmCommand::Ip { name, timeout } => connect::ip(&ctx, &name, timeout),
        VmCommand::Doctor { name, json } => doctor::run(&ctx, name.as_ref(), json),
        VmCommand::Download { source, windows } => download::run(&ctx, &source, &windows),
        VmCommand::IsoInfo { iso, remote, json } => iso_info::run(&ctx, &iso, remote, json),
        VmCommand::EnableRdp { name, timeout } => enable_rdp::run(&ctx, &name, timeout),
        VmCommand::Snapshot { command } => match command {
            SnapshotCommand::Create {
                name,
                snap,
                description,
                yes,
            } => snapshot::create(&ctx, &name, &snap, &description, yes),
            SnapshotCommand::List { name, json } => snapshot::list(&ctx, &name, json),
            SnapshotCommand::Revert { name, snap, yes } => {
                snapshot::revert(&ctx, &name, &snap, yes)
            }
            SnapshotCommand::Delete { name, snap } => snapshot::delete(&ctx, &name, &snap),
        },
        VmCommand::Config {
            name,
            auto_save,
            share,
            clipboard,
            json,
        } => config::run(
            &ctx,
            &name,
            &config::Changes {
                auto_save,
                share,
                clipboard: clipboard.map(|c| c == crate::cli::Switch::On),
            },
            json,
        ),
        VmCommand::Watch { name, once } => watch::run(&ctx, &name, once),
        VmCommand::Destroy {
            name,
            yes,
            keep_disk,
        } => destroy::run(&ctx, &name, yes, keep_disk),
    }
}
