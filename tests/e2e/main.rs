//! Tier 3: `bkt vm` against a real libvirt 11, QEMU 10, swtpm and OVMF, with
//! software emulation, inside the network namespace that
//! `scripts/libvirt-netns.sh` made. Run by `scripts/test-all.sh` (the
//! README's test command); `#[ignore]` keeps a plain `cargo test` from
//! running it without that environment.
//!
//! Only this tier proves that the VM we define boots with Secure Boot
//! enforced and a TPM, survives a reset, and is gone without a trace after
//! destroy.
//!
//! Each area is a test of its own, so one failure hides nothing else. They
//! share the libvirtd, its network and the namespace, and run side by side
//! (libtest's threads): each has VM names no other test uses, its own
//! directories and manifest, and removes what it made when it ends, passed
//! or failed (`harness::Env`). None stops the shared daemon.

// why: tests set up files, run bkt, libvirt and guests, and connect to them.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
// Tests print what they saw when they fail; bkt's own words go through its Ui.
#![allow(clippy::disallowed_macros)]

mod apps;
mod download_windows;
mod downloads;
mod failures;
mod guests;
mod harness;
mod ownership;
mod remote;
mod remoteapp;
mod save;
mod unattended;
mod windows;
