//! The one libvirt runner: every virsh and virt-install call of a command
//! runs through [`Ctx`], and a failure is said with the advice for its usual
//! causes for the URI the context already knows (never parsed back out of
//! the failed command's text). Clients run through a [`Runner`]: processes
//! in production, a table of answers in unit tests (`ctx/fake.rs`).

// why: the door: the one libvirt runner.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::path::Path;

use anyhow::{Context, Result};

use super::Ctx;
use crate::exec::{Cmd, ExecError, Output};

/// What runs a libvirt client for [`Ctx`]: [`Processes`] in production; a
/// test's table of answers (`ctx/fake.rs`), so that orchestration is tested
/// without a process.
pub trait Runner {
    /// Run `cmd` to its end, whatever its exit status; an error only when
    /// it could not run.
    fn run_unchecked(&self, cmd: &Cmd) -> Result<Output, ExecError>;
}

/// Libvirt's clients as processes.
pub struct Processes;

impl Runner for Processes {
    fn run_unchecked(&self, cmd: &Cmd) -> Result<Output, ExecError> {
        cmd.run_unchecked()
    }
}

impl Ctx {
    /// Run a libvirt client (`ctx.virsh.…`) to success; a failure with the
    /// advice for its usual causes ([`Ctx::libvirt_error`]).
    pub fn libvirt(&self, cmd: &Cmd) -> Result<Output> {
        self.try_libvirt(cmd).map_err(|e| self.libvirt_error(e))
    }

    /// [`Ctx::libvirt`], its stdout.
    pub fn libvirt_out(&self, cmd: &Cmd) -> Result<String> {
        self.try_libvirt_out(cmd).map_err(|e| self.libvirt_error(e))
    }

    /// Run a libvirt client whatever its exit status (a batch whose parts
    /// may fail); only a client that cannot start is an error.
    pub fn libvirt_unchecked(&self, cmd: &Cmd) -> Result<Output> {
        self.try_libvirt_unchecked(cmd)
            .map_err(|e| self.libvirt_error(e))
    }

    /// Feed a file of this machine to a libvirt client's stdin (`virsh
    /// vol-upload`), `sent` told the bytes so far.
    pub fn libvirt_upload(&self, cmd: &Cmd, local: &Path, sent: &mut dyn FnMut(u64)) -> Result<()> {
        let mut from =
            std::fs::File::open(local).with_context(|| format!("reading {}", local.display()))?;
        cmd.run_feeding(&mut from, sent)
            .map(|_| ())
            .map_err(|e| self.libvirt_error(e))
    }

    /// Run a libvirt client, its failure as it was, for a caller that
    /// tells failures apart (no such domain, not running, ...) before
    /// turning the rest into [`Ctx::libvirt_error`].
    pub fn try_libvirt(&self, cmd: &Cmd) -> Result<Output, ExecError> {
        self.runner.run_unchecked(cmd)?.checked(cmd)
    }

    /// [`Ctx::try_libvirt`], its stdout.
    pub fn try_libvirt_out(&self, cmd: &Cmd) -> Result<String, ExecError> {
        self.try_libvirt(cmd).map(|o| o.stdout)
    }

    /// [`Ctx::libvirt_unchecked`], its failure to start as it was.
    pub fn try_libvirt_unchecked(&self, cmd: &Cmd) -> Result<Output, ExecError> {
        self.runner.run_unchecked(cmd)
    }

    /// A failed libvirt call as an error with advice for the usual causes,
    /// on this context's URI.
    pub fn libvirt_error(&self, e: ExecError) -> anyhow::Error {
        super::libvirt_error_on(e, Some(&self.uri))
    }
}
