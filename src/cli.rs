//! The command line. Doc comments here are the `--help` text.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum, ValueHint};

use crate::vm::VmArgs;

/// bkt: tools for a bootc desktop.
#[derive(Debug, Parser)]
#[command(name = "bkt", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run Windows apps in a Windows 11 virtual machine on libvirt.
    #[command(
        long_about = "Run Windows apps in a Windows 11 virtual machine on libvirt.\n\n\
        One blessed path: `bkt vm create windows` makes a VM with the settings Windows 11 \
        needs (UEFI Secure Boot, TPM 2.0, VirtIO disk and network, QXL + SPICE) and walks \
        you through the steps only a human can do; start, stop, status and destroy run \
        its life afterwards.",
        after_help = "Examples:\n  \
        bkt vm create windows --iso ~/Downloads/Win11_24H2_English_x64.iso\n  \
        bkt vm start windows\n  \
        bkt vm connect windows\n  \
        bkt vm status\n  \
        bkt vm stop windows\n  \
        bkt vm destroy windows\n\n\
        Files:\n  \
        ~/.config/bootc/vms.json   what bkt knows about its VMs (BKT_VM_MANIFEST overrides)"
    )]
    Vm(Box<VmArgs>),

    /// Print a shell completion script (bash, zsh or fish) on stdout.
    #[command(
        long_about = "Print a shell completion script (bash, zsh or fish) on standard output.\n\n\
        Installed where the shell looks, it completes bkt's commands, options and their \
        values at the Tab key.",
        after_help = "Examples:\n  \
        mkdir -p ~/.local/share/bash-completion/completions && bkt completions bash > ~/.local/share/bash-completion/completions/bkt\n  \
        mkdir -p ~/.config/fish/completions && bkt completions fish > ~/.config/fish/completions/bkt.fish\n  \
        mkdir -p ~/.zfunc && bkt completions zsh > ~/.zfunc/_bkt\n\n\
        bash (with the bash-completion package) and fish find these files by themselves in the \
        next shell. zsh looks only in the directories of $fpath: add `fpath=(~/.zfunc $fpath)` \
        to ~/.zshrc, before `compinit` runs."
    )]
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: Shell,
    },

    /// Write the man pages, one per command (without DIR, print bkt.1).
    #[command(
        long_about = "Write the man pages, one per command (bkt.1, bkt-vm.1, bkt-vm-create.1, ...), \
        into DIR, made if missing, and print the path of each. Without DIR, print bkt.1 on \
        standard output.",
        after_help = "Examples:\n  \
        bkt man ~/.cargo/share/man/man1     # man looks there, next to ~/.cargo/bin\n  \
        bkt man | man -l -"
    )]
    Man {
        /// The directory to write the pages into.
        #[arg(value_name = "DIR", value_hint = ValueHint::DirPath)]
        dir: Option<PathBuf>,
    },
}

/// The shells `bkt completions` writes a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}
