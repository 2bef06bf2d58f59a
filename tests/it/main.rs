//! Tier 2: the built `bkt` binary against fake tools on a replaced PATH.
//! Every test asserts the argv the fakes received and what the user saw.

// why: tests set up files, run bkt and the fakes, and connect to loopback listeners.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
// Tests print what they saw when they fail; bkt's own words go through its Ui.
#![allow(clippy::disallowed_macros)]

mod harness;

mod access;
mod apps;
mod bench_lib;
mod cli;
mod connect;
mod create;
mod destroy;
mod docs;
mod doctor;
mod download;
mod download_windows;
mod enable_rdp;
mod fixtures;
mod lifecycle;
mod remote;
mod remote_create;
mod rollback;
mod run;
mod save;
mod snapshot;
mod status;
mod terminal;
mod unattended;
mod virt_install;
mod windows_iso;

/// Replace what differs between machines: the temporary directory and the
/// free-space line of the preflight.
pub fn normalize(w: &harness::World, text: &str) -> String {
    let re = regex::Regex::new(r"(?m)^  [✓⚠] disk space .*$").unwrap();
    let t = re.replace_all(text, "  ~ disk space     (depends on the machine)");
    t.replace(&w.dir.path().display().to_string(), "$TMP")
}
