//! `bkt completions` and `bkt man`: what they print and write, and their
//! errors.

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
    assert!(w.calls().is_empty());
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
fn man_writes_a_page_per_command_into_a_new_directory() {
    let w = World::new();
    let dir = w.path("home/.cargo/share/man/man1");
    let r = w.bkt(&["man", &dir.display().to_string()]);
    r.success();
    assert_eq!(r.stderr(), "");
    // One page per command (tier 1 pins the list), bkt.1 first, each
    // printed as written.
    let printed: Vec<String> = r.stdout().lines().map(String::from).collect();
    assert_eq!(printed.len(), 23, "{printed:?}");
    assert_eq!(printed[0], dir.join("bkt.1").display().to_string());
    let mut files: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    files.sort();
    let mut printed = printed;
    printed.sort();
    assert_eq!(files, printed);
    let revert = fs::read_to_string(dir.join("bkt-vm-snapshot-revert.1")).unwrap();
    assert!(
        revert.contains("\n.TH BKT-VM-SNAPSHOT-REVERT 1  \"bkt "),
        "{revert}"
    );
    // Again over the pages already there.
    w.bkt(&["man", &dir.display().to_string()]).success();
    assert!(w.calls().is_empty());
}

#[test]
fn man_without_a_directory_prints_bkt_1() {
    let w = World::new();
    let r = w.bkt(&["man"]);
    r.success();
    assert_eq!(r.stderr(), "");
    let page = r.stdout();
    assert!(
        page.starts_with(".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n.TH BKT 1  \"bkt "),
        "{page}"
    );
    assert!(
        page.contains("\n.SH NAME\nbkt \\- tools for a bootc desktop\n"),
        "{page}"
    );
    assert!(page.contains("\nbkt\\-vm(1)\n"), "{page}");
    // Nothing written, not even in the directory it ran in.
    assert!(!w.path("bkt.1").exists());
}

#[test]
fn man_says_which_directory_it_cannot_make() {
    let w = World::new();
    fs::write(w.path("notadir"), "").unwrap();
    let r = w.bkt(&["man", &w.p("notadir/man1")]);
    r.failure();
    assert_eq!(r.stdout(), "");
    assert_eq!(
        crate::normalize(&w, &r.stderr()),
        "error: cannot make the man page directory $TMP/notadir/man1\n\
         caused by: Not a directory (os error 20)\n\
         hint: give a directory you may write to, e.g. `bkt man ~/.cargo/share/man/man1` (man \
         finds pages there for programs in ~/.cargo/bin)\n"
    );
}

#[test]
fn man_says_which_page_it_cannot_write() {
    let w = World::new();
    fs::create_dir_all(w.path("man1/bkt-vm.1")).unwrap();
    let r = w.bkt(&["man", &w.p("man1")]);
    r.failure();
    assert_eq!(r.stdout(), "");
    assert_eq!(
        crate::normalize(&w, &r.stderr()),
        "error: cannot write the man page $TMP/man1/bkt-vm.1\n\
         caused by: Is a directory (os error 21)\n\
         hint: make sure $TMP/man1/bkt-vm.1 can be written (nothing else of that name in the \
         way), or give another directory\n"
    );
}

#[test]
fn a_full_standard_output_is_an_error_not_a_panic() {
    let w = World::new();
    let r = to_full_disk(&w, &["man"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: cannot print the man page\n\
         caused by: No space left on device (os error 28)\n\
         hint: write the pages into a directory instead: `bkt man ~/.cargo/share/man/man1`\n"
    );
    let r = to_full_disk(&w, &["completions", "zsh"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: cannot print the completion script\n\
         caused by: No space left on device (os error 28)\n\
         hint: redirect it into the file your shell reads (`bkt completions --help` says which)\n"
    );
    let r = to_full_disk(&w, &["man", &w.p("man1")]);
    r.failure();
    assert_eq!(
        crate::normalize(&w, &r.stderr()),
        "error: cannot print the paths of the man pages\n\
         caused by: No space left on device (os error 28)\n\
         hint: all 23 pages are written in $TMP/man1\n"
    );
    assert_eq!(fs::read_dir(w.path("man1")).unwrap().count(), 23);
}
