//! Ctrl-C while `bkt` is changing something: note it instead of dying, so
//! the command can undo what it started and then exit 130.

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

/// An error if an interruption happened.
pub fn check() -> anyhow::Result<()> {
    if happened() {
        anyhow::bail!("interrupted");
    }
    Ok(())
}
