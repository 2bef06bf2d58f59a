//! bkt's own pin of each VM's RDP certificate, by the VM and its connection
//! (`$XDG_CONFIG_HOME/bkt/vm/pins/windows@1a2b3c4d5e6f7a8b`, the name
//! [`idle::key`] gives its other files): one line, `sha256 FINGERPRINT`.
//!
//! FreeRDP pins by host and port. Over `qemu+ssh` the guest's port is
//! reached through a tunnel on a new local port each time, so FreeRDP's own
//! pins made every connection a first use, piled up one per port, and a port
//! reused later for another VM looked like someone in between. So bkt keeps
//! the pin and hands it to FreeRDP as `/cert:deny,fingerprint:sha256:...`
//! (see [`rdp::cert_arg`]): the port does not matter, another certificate is
//! refused. The first connection (no pin yet) trusts on first use with the
//! client's `XDG_CONFIG_HOME` pointed at this VM's own directory
//! ([`first_use_dir`]); bkt takes the certificate FreeRDP pinned there as
//! its pin and removes the directory, so nothing grows per connection.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::tools::rdp;
use crate::vm::ctx::Ctx;
use crate::vm::power::idle;

fn dir(ctx: &Ctx) -> PathBuf {
    ctx.local.config_home().join("bkt/vm/pins")
}

/// The pin file of `name` on this connection.
pub fn file(ctx: &Ctx, name: &str) -> PathBuf {
    dir(ctx).join(idle::key(ctx, name))
}

/// What the client's `XDG_CONFIG_HOME` is at a first use: FreeRDP's own
/// store for this VM alone, emptied once bkt has the pin.
pub fn first_use_dir(ctx: &Ctx, name: &str) -> PathBuf {
    dir(ctx).join(format!("{}.first-use", idle::key(ctx, name)))
}

/// The pin file's text for a fingerprint.
pub fn format(fp: &str) -> String {
    format!("sha256 {fp}\n")
}

/// The fingerprint a pin file holds (None: not a pin this bkt reads).
pub fn parse(text: &str) -> Option<String> {
    let rest = text.trim().strip_prefix("sha256 ")?;
    rdp::fingerprint(rest)
}

/// The VM's pin: its pin file, else what FreeRDP pinned at a first use that
/// bkt has not taken yet (a detached client, or an earlier run that ended
/// before it could), recorded now. None: no connection got as far as the
/// certificate yet.
pub fn current(ctx: &Ctx, name: &str) -> Result<Option<String>> {
    let file = file(ctx, name);
    match ctx.local.read_to_string(&file) {
        Ok(text) => {
            return parse(&text).map(Some).with_context(|| {
                format!(
                    "{} is not a certificate pin bkt wrote; remove it to pin the next certificate",
                    file.display()
                )
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    }
    take_first_use(ctx, name)
}

/// Take the certificate FreeRDP pinned in [`first_use_dir`] (FreeRDP 3: a
/// `freerdp/server/*.pem`; FreeRDP 2: `freerdp/known_hosts2`) as the VM's
/// pin, and remove that directory.
pub fn take_first_use(ctx: &Ctx, name: &str) -> Result<Option<String>> {
    let store = first_use_dir(ctx, name).join("freerdp");
    let mut found = ctx
        .local
        .read_to_string(&store.join("known_hosts2"))
        .ok()
        .and_then(|t| rdp::known_hosts2_fingerprint(&t));
    if found.is_none() {
        let pems = ctx.local.list_dir(&store.join("server"));
        found = pems
            .iter()
            .find_map(|p| rdp::pem_fingerprint(&ctx.local.read_to_string(p).ok()?));
    }
    let Some(fp) = found else {
        return Ok(None);
    };
    let file = file(ctx, name);
    ctx.local
        .create_dir_all(&dir(ctx))
        .with_context(|| format!("creating {}", dir(ctx).display()))?;
    ctx.local
        .write(&file, format(&fp).as_bytes())
        .with_context(|| format!("writing {}", file.display()))?;
    let first = first_use_dir(ctx, name);
    ctx.local
        .remove_tree(&first)
        .with_context(|| format!("removing {}", first.display()))?;
    Ok(Some(fp))
}

/// Drop the VM's pin (and a first use's leftovers), as `destroy` does: a new
/// VM of the same name on this connection has another certificate, and
/// pins it at its first connection. The pin file, when there was one.
pub fn forget(ctx: &Ctx, name: &str) -> Result<Option<PathBuf>> {
    let first = first_use_dir(ctx, name);
    match ctx.local.remove_tree(&first) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("removing {}", first.display()));
        }
        _ => {}
    }
    let file = file(ctx, name);
    match ctx.local.remove_file(&file) {
        Ok(()) => Ok(Some(file)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("removing {}", file.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pin_file_format() {
        let fp = "b9:1b:5e:f1:b3:40:b9:c6:c9:e5:e7:3a:00:49:17:00:\
                  ed:3b:f4:7b:6f:8d:70:03:87:cf:21:47:2d:e9:3d:8e";
        assert_eq!(format(fp), format!("sha256 {fp}\n"));
        assert_eq!(parse(&format(fp)).as_deref(), Some(fp));
        assert_eq!(
            parse(&format!("sha256 {}\n", fp.to_uppercase())).as_deref(),
            Some(fp)
        );
        assert_eq!(parse(fp), None);
        assert_eq!(parse(&format!("sha1 {fp}\n")), None);
        assert_eq!(parse("sha256 b9:1b\n"), None);
        assert_eq!(parse(""), None);
    }
}
