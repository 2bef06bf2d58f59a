//! Secrets handed to `bkt` in its environment (`BKT_VM_RDP_PASSWORD`), taken
//! out of it before anything else runs, so that no child inherits them: the
//! RDP client alone gets the password, on its stdin.

use std::ffi::OsString;
use std::sync::OnceLock;

/// The Windows password for `connect`, instead of the prompt.
pub const RDP_PASSWORD_ENV: &str = "BKT_VM_RDP_PASSWORD";

static RDP_PASSWORD: OnceLock<Option<OsString>> = OnceLock::new();

/// Move the secrets out of the process environment into this module.
///
/// # Safety
/// It changes the process environment: no other thread may exist yet.
pub unsafe fn take_from_env() {
    // SAFETY: the caller guarantees that this is the only thread.
    let pw = unsafe { crate::settings::take_var(RDP_PASSWORD_ENV) };
    let _ = RDP_PASSWORD.set(pw);
}

/// `BKT_VM_RDP_PASSWORD` as it was when `bkt` started, if it was set.
pub fn rdp_password() -> Option<&'static OsString> {
    RDP_PASSWORD.get().and_then(Option::as_ref)
}
