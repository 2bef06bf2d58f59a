//! `bkt`: parse the command line, run it, print any error once.
//!
//! The house, top to bottom; a layer imports only the layers below it:
//!
//! ```text
//! main.rs, cli.rs            the command tree, shared options; docs.rs:
//!                            completions, man pages
//!   vm/mod.rs                the dispatcher: one match, nothing else
//!     vm/commands/           one file per command: create, start, stop,
//!                            status, connect, run, apps, destroy, doctor,
//!                            download, enable_rdp, iso_info, snapshot, config,
//!                            watch: each its `XxxArgs` (options and --help) and
//!                            `run(ctx, args)`, plain orchestration; no
//!                            command imports another
//!     vm/checks/             what commands share, each room above the ones
//!                            it uses: checks (access, resources)
//!     vm/rdp/                Remote Desktop: client, clients, pins, setup
//!     vm/programs/           the guest's programs: catalog, launchers
//!     vm/media/              install media on the host, unattended, what an
//!                            ISO holds (iso_contents), the Windows ISO
//!                            download (windows_iso)
//!     vm/power/              on and off, save (memory), idle (in use)
//!     vm/net.rs, vm/wait.rs  the guest's address; polling until a deadline
//!       vm/ctx/              Ctx, the one door to the outside world:
//!                              ctx.virsh     libvirt, through tools::virsh
//!                              ctx.host      the machine that runs libvirt
//!                                            (files, space, memory, probes)
//!                              ctx.local     this machine (cache, programs,
//!                                            secrets, staging, ISO builds)
//!                              ctx.manifest, ctx.uri
//!                              ctx.ui        what the command says
//!                                            (stdout, stderr; tests record it)
//!         tools/             every argv builder and output parser; the only
//!                            place a command line is made
//!         download.rs        fetch, resume, verify; winiso.rs: Microsoft's
//!                            Windows 11 download flow and its parsers
//!           exec.rs          the one runner (duct); manifest.rs, settings.rs
//!                            (the environment, read once), names.rs (VmName,
//!                            SnapName, Uri), ui.rs, units.rs, interrupt.rs,
//!                            secrets.rs
//! ```
//!
//! Nothing under `vm/` outside `vm/ctx/` touches the filesystem, the
//! environment, a socket or a child process; a second host (ssh) is one more
//! implementation of `ctx::Host`.

mod cli;
mod docs;
mod download;
mod exec;
mod interrupt;
mod manifest;
mod names;
mod secrets;
mod settings;
mod tools;
mod ui;
mod units;
mod vm;
mod winiso;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // SAFETY: the first thing main does, so this is the only thread: Rust
    // starts none before main, no dependency of ours starts one from a
    // constructor, and nothing here has spawned one yet. No other code can
    // be reading the environment while it changes.
    unsafe { secrets::take_from_env() };
    interrupt::default_sigpipe();
    interrupt::stop_by_default();
    let settings = settings::Settings::from_env();
    ui::init_colors(settings.no_color);
    let cli = cli::Cli::parse();
    let res = match cli.command {
        cli::Command::Vm(args) => vm::run(&args.global, settings, args.command),
        cli::Command::Completions { shell } => docs::completions(shell),
        cli::Command::Man { dir } => docs::man(dir.as_deref(), &vm::ctx::Local::new(settings)),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            ui::print_error(&err);
            ExitCode::from(interrupt::exit_code(&err))
        }
    }
}
