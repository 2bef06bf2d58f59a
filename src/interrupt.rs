//! Ctrl-C while `bkt` is changing something: note it instead of dying, so
//! the command can undo what it started, and end with one [`Interrupted`]
//! error that `main` turns into exit status 130.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};

static INTERRUPTED: LazyLock<Arc<AtomicBool>> = LazyLock::new(|| Arc::new(AtomicBool::new(false)));

/// Whether SIGINT and SIGTERM still end bkt at once (until [`catch`]).
fn ends_us() -> &'static Arc<AtomicBool> {
    static ON: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    ON.get_or_init(|| Arc::new(AtomicBool::new(true)))
}

/// Ctrl-C and SIGTERM stop bkt, whatever it inherited: a shell starts a
/// background job (`bkt ... &` in a script, a CI runner) with SIGINT
/// ignored, and bkt then rode out a Ctrl-C and went on. Until a command
/// [`catch`]es them, they end bkt as their default action does (the shell
/// reports 130 or 143); children started meanwhile get the default too.
pub fn stop_by_default() {
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register_conditional_default(sig, Arc::clone(ends_us()));
    }
}

/// From now on SIGINT and SIGTERM set a flag, which the command notices:
/// it stops, undoes or says what it leaves, and ends with [`Interrupted`]
/// (exit 130). Children still get the terminal's SIGINT and fail, which
/// the command notices and cleans up.
pub fn catch() {
    ends_us().store(false, Ordering::SeqCst);
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registering fails only for signals that cannot be caught.
        let _ = signal_hook::flag::register(sig, Arc::clone(&INTERRUPTED));
    }
}

/// What `rx` gives, or None as soon as an interruption is noted: for a
/// command that waits on work done by a thread of its own (a download
/// blocked in a read, a retry's pause), which a signal does not wake.
pub fn recv<T>(rx: &std::sync::mpsc::Receiver<T>) -> Option<T> {
    use std::sync::mpsc::RecvTimeoutError;
    loop {
        // The flag is polled: a signal handler may only set it.
        match rx.recv_timeout(std::time::Duration::from_millis(50)) {
            Ok(v) => return Some(v),
            Err(RecvTimeoutError::Timeout) if happened() => return None,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return None,
        }
    }
}

/// A detached process (the idle watcher) lives on when the terminal that
/// started it closes: SIGHUP is caught and means nothing.
pub fn ignore_hangup() {
    static HANGUP: LazyLock<Arc<AtomicBool>> = LazyLock::new(|| Arc::new(AtomicBool::new(false)));
    let _ = signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&HANGUP));
}

pub fn happened() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Like any Unix filter, `bkt vm status | head` ends quietly when the
/// reader goes away: SIGPIPE keeps its default effect (Rust ignores it, and
/// printing to a closed pipe would panic).
pub fn default_sigpipe() {
    let _ = signal_hook::flag::register_conditional_default(
        signal_hook::consts::SIGPIPE,
        Arc::clone(sigpipe_ends_us()),
    );
}

fn sigpipe_ends_us() -> &'static Arc<AtomicBool> {
    static ON: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    ON.get_or_init(|| Arc::new(AtomicBool::new(true)))
}

/// While one lives, a closed pipe is an error of the write, not the end of
/// bkt: for feeding a child (an upload over ssh, bytes on its stdin) that
/// may end before reading everything, whose end must be reported and
/// cleaned up after. They nest.
pub struct PipeErrors(());

static PIPE_FEEDERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl PipeErrors {
    pub fn new() -> PipeErrors {
        if PIPE_FEEDERS.fetch_add(1, Ordering::SeqCst) == 0 {
            sigpipe_ends_us().store(false, Ordering::SeqCst);
        }
        PipeErrors(())
    }
}

impl Drop for PipeErrors {
    fn drop(&mut self) {
        if PIPE_FEEDERS.fetch_sub(1, Ordering::SeqCst) == 1 {
            sigpipe_ends_us().store(true, Ordering::SeqCst);
        }
    }
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
    err.downcast_ref::<Interrupted>().is_some()
        || err
            .chain()
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
