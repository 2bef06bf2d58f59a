//! `bkt completions`: what it prints, and its errors.

use std::fs;
use std::process::Stdio;

use crate::harness::{Run, World};

/// `bkt ARGS` with its standard output going to /dev/full.
fn to_full_disk(w: &World, args: &[&str]) -> Run {
    let full = fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    Run {
        out: w.command(args).stdout(Stdio::from(full)).output().unwrap(),
    }
}

#[test]
fn completions_print_the_script_and_nothing_else() {
    let w = World::new();
    for (shell, first) in [
        ("bash", "_bkt() {"),
        ("zsh", "#compdef bkt"),
        (
            "fish",
            "# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.",
        ),
    ] {
        let r = w.bkt(&["completions", shell]);
        r.success();
        assert_eq!(r.stdout().lines().next(), Some(first), "{shell}");
        assert!(r.stdout().contains("revert"), "{shell}");
        assert!(r.stdout().contains("virt-type"), "{shell}");
        assert_eq!(r.stderr(), "", "{shell}");
    }
    assert!(w.call_lines().is_empty());
}

#[test]
fn completions_for_another_shell_is_a_usage_error() {
    let w = World::new();
    let r = w.bkt(&["completions", "tcsh"]);
    assert_eq!(r.code(), 2);
    assert_eq!(r.stdout(), "");
    assert_eq!(
        r.stderr(),
        "error: invalid value 'tcsh' for '<SHELL>'\n  [possible values: bash, zsh, fish]\n\n  \
         tip: a similar value exists: 'zsh'\n\nFor more information, try '--help'.\n"
    );
}

#[test]
fn a_full_standard_output_is_an_error_not_a_panic() {
    let w = World::new();
    let r = to_full_disk(&w, &["completions", "zsh"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: cannot print the completion script\n\
         caused by: No space left on device (os error 28)\n\
         hint: redirect it into the file your shell reads (`bkt completions --help` says which)\n"
    );
}
