//! `bkt vm download`: the virtio-win ISO and the guest tools, into the
//! cache, ahead of time.

use anyhow::{Context, Result};

use crate::cli::{DownloadArgs, WindowsIsoArgs};
use crate::download;
use crate::ui::Check;
use crate::units::human;
use crate::vm::ctx::Ctx;

pub fn run(ctx: &Ctx, source: &DownloadArgs, windows: &WindowsIsoArgs) -> Result<()> {
    // Ctrl-C ends the download where it is, says what is kept, exit 130.
    crate::interrupt::catch();
    if windows.windows || windows.iso_url.is_some() {
        return super::windows_iso::run(ctx, windows);
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
        let f = download::fetch(&item, &opts, s)
            .with_context(|| format!("getting the {}", item.what))?;
        let label = match item.kind {
            download::Kind::Iso => "virtio ISO",
            download::Kind::Exe => "guest tools",
        };
        Check::pass(
            label,
            format!(
                "{} ({}, sha256 {}…{})",
                f.path.display(),
                human(f.size),
                &f.sha256[..16],
                if f.cached { ", cached" } else { "" }
            ),
        )
        .print();
    }
    Ok(())
}
