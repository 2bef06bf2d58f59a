//! `bkt`: parse the command line, run it, print any error once.

mod cli;
mod download;
mod exec;
mod interrupt;
mod manifest;
mod tools;
mod ui;
mod units;
mod vm;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Like any Unix filter: `bkt vm status | head` ends quietly.
    // SAFETY: restoring the default disposition of a signal.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    ui::init_colors();
    let cli = cli::Cli::parse();
    let res = match cli.command {
        cli::Command::Vm(args) => vm::run(&args.global, args.command),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            ui::print_error(&err);
            ExitCode::from(interrupt::exit_code(&err))
        }
    }
}
