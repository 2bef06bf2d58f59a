//! Ctrl-C while `bkt` is changing something: note it instead of dying, so
//! the command can undo what it started, and end with one [`Interrupted`]
//! error that `main` turns into exit status 130.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// From now on SIGINT and SIGTERM set a flag. Children still get the
/// terminal's SIGINT and fail, which the command notices and cleans up.
pub fn catch() {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

pub fn happened() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// The user interrupted the command (Ctrl-C, or SIGTERM). Callers add what
/// was undone or left as context; `main` exits 130 for any error whose
/// chain holds this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupted;

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// An [`Interrupted`] error if an interruption happened.
pub fn check() -> anyhow::Result<()> {
    if happened() {
        return Err(Interrupted.into());
    }
    Ok(())
}

/// Whether an error is (or was caused by) an interruption.
pub fn is_interrupted(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|c| c.downcast_ref::<Interrupted>().is_some())
}

/// The exit status for an error: 130 (128 + SIGINT) for an interruption,
/// as shells report it, else 1.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if is_interrupted(err) { 130 } else { 1 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn interruptions_exit_130_through_any_context() {
        let e =
            anyhow::Error::new(Interrupted).context("creating w failed; nothing was left behind");
        assert_eq!(exit_code(&e), 130);
        assert_eq!(
            format!("{e:#}"),
            "creating w failed; nothing was left behind: interrupted"
        );
        let other: anyhow::Result<()> = Err(anyhow::anyhow!("boom"));
        assert_eq!(exit_code(&other.context("x").unwrap_err()), 1);
    }
}
