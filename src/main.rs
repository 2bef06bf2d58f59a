//! `bkt`: parse the command line, run it, print any error once.

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

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // SAFETY: the first thing main does, so this is the only thread: Rust
    // starts none before main, no dependency of ours starts one from a
    // constructor, and nothing here has spawned one yet. No other code can
    // be reading the environment while it changes.
    unsafe { secrets::take_from_env() };
    interrupt::default_sigpipe();
    let settings = settings::Settings::from_env();
    ui::init_colors(settings.no_color);
    let cli = cli::Cli::parse();
    let res = match cli.command {
        cli::Command::Vm(args) => vm::run(&args.global, settings, args.command),
        cli::Command::Completions { shell } => docs::completions(shell),
        cli::Command::Man { dir } => docs::man(dir.as_deref()),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            ui::print_error(&err);
            ExitCode::from(interrupt::exit_code(&err))
        }
    }
}
