//! `bkt vm download`: the virtio-win ISO and the guest tools, into the
//! cache, ahead of time.

use anyhow::{Context, Result};
use clap::Args;

use crate::download;
use crate::ui::Check;
use crate::units::human;
use crate::vm::ctx::Ctx;
use crate::vm::options::DownloadSources;

/// Download the VirtIO drivers ISO and the guest tools ahead of time.
#[derive(Debug, Args)]
#[command(
    long_about = "Download the VirtIO drivers ISO (virtio-win.iso) and the Windows guest \
    tools (virtio-win-guest-tools.exe, with the SPICE agent and qemu-ga) into \
    $XDG_CACHE_HOME/bkt/vm, so that `create` needs no network.\n\n\
    Downloads retry with backoff and resume where they stopped, but only when the server \
    proves it still has the same file (its ETag or Last-Modified); otherwise they start \
    over. They are checked before they are kept: HTTP status, not a web page, the file's \
    signature, its size (at most 2 GiB for the ISO, 256 MiB for the guest tools), and the \
    SHA-256 when --virtio-sha256 is given. With --virtio-sha256 the file itself is hashed, \
    cached or fresh; a file that does not match is moved aside to NAME.mismatch-TIME, never \
    deleted.",
    after_help = "Environment:\n  \
    BKT_VM_VIRTIO_URL        mirror for virtio-win.iso\n  \
    BKT_VM_GUEST_TOOLS_URL   mirror for virtio-win-guest-tools.exe"
)]
pub struct DownloadArgs {
    #[command(flatten)]
    pub source: DownloadSources,
}

pub fn run(ctx: &Ctx, args: DownloadArgs) -> Result<()> {
    let source = &args.source;
    // Ctrl-C ends the download where it is, says what is kept, exit 130.
    crate::interrupt::catch();
    let s = &ctx.local.settings.download;
    let opts = download::Options {
        offline: source.offline,
        expected_sha256: source.virtio_sha256.clone(),
    };
    for (item, opts) in [
        (
            download::virtio(source.virtio_url.as_deref(), s),
            opts.clone(),
        ),
        (
            download::guest_tools(source.guest_tools_url.as_deref(), s),
            download::Options {
                expected_sha256: None,
                ..opts.clone()
            },
        ),
    ] {
        let f = ctx
            .local
            .fetch(&item, &opts)
            .with_context(|| format!("getting the {}", item.what))?;
        let label = match item.kind {
            download::Kind::Iso => "virtio ISO",
            download::Kind::Exe => "guest tools",
        };
        let check = Check::pass(
            label,
            format!(
                "{} ({}, sha256 {}…{})",
                f.path.display(),
                human(f.size),
                &f.sha256[..16],
                if f.cached { ", cached" } else { "" }
            ),
        );
        ctx.ui.check(&check);
    }
    Ok(())
}
