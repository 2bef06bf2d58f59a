//! `bkt vm download`: the virtio-win ISO and the guest tools, into the
//! cache, ahead of time.

use anyhow::{Context, Result};
use clap::Args;

use crate::download;
use crate::ui::Check;
use crate::units::human;
use crate::vm::ctx::Ctx;
use crate::vm::media::windows_iso;
use crate::vm::options::{DownloadSources, WindowsIsoArgs};

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
    deleted.\n\n\
    With --windows it downloads the latest Windows 11 x64 ISO from Microsoft instead (the \
    steps of Microsoft's download page, as public clients take them), verified against the \
    SHA-256 the page publishes for the language; an expired link is replaced by a fresh one \
    and the download resumed. When Microsoft refuses this address, download it in a browser \
    from https://www.microsoft.com/software-download/windows11 and pass it to create --iso. \
    --iso-url takes it from a mirror (--iso-sha256 to verify it).",
    after_help = "Examples:\n  \
    bkt vm download --windows\n  \
    bkt vm download --windows --lang German\n  \
    bkt vm download --windows --lang list\n  \
    bkt vm download --iso-url https://nas.example/Win11_25H2_English_x64.iso --iso-sha256 HEX\n\n\
    Environment:\n  \
    BKT_VM_VIRTIO_URL        mirror for virtio-win.iso\n  \
    BKT_VM_GUEST_TOOLS_URL   mirror for virtio-win-guest-tools.exe\n  \
    BKT_VM_CA_FILE           PEM certificates trusted instead of the built-in roots\n  \
    BKT_VM_MS_WWW_URL, BKT_VM_MS_VLSCPPE_URL, BKT_VM_MS_OVDF_URL\n                           \
    base URLs in place of www.microsoft.com, vlscppe.microsoft.com, ov-df.microsoft.com"
)]
pub struct DownloadArgs {
    #[command(flatten)]
    pub source: DownloadSources,
    #[command(flatten)]
    pub windows: WindowsIsoArgs,
}

pub fn run(ctx: &Ctx, args: DownloadArgs) -> Result<()> {
    let source = &args.source;
    // Ctrl-C ends the download where it is, says what is kept, exit 130.
    crate::interrupt::catch();
    if args.windows.windows || args.windows.iso_url.is_some() {
        return windows_iso::run(ctx, &args.windows);
    }
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
