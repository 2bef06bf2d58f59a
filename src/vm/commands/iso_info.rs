//! `bkt vm iso-info ISO`: what Windows an install ISO holds (release,
//! build, architecture, editions), read from inside it as `create`'s check
//! reads it, without creating anything.

use std::path::PathBuf;

use anyhow::{Result, anyhow};
use clap::{Args, ValueHint};

use crate::tools::wim::{self, Image};
use crate::ui::{HintExt, escaped};
use crate::vm::ctx::Ctx;
use crate::vm::media::iso_contents::{self, Contents};

/// The JSON of `--json`.
#[derive(serde::Serialize)]
struct Info<'a> {
    iso: String,
    file: &'a str,
    windows: String,
    windows11_x64: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    release: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    build: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arch: Option<String>,
    /// The index an unattended install uses without --edition.
    #[serde(skip_serializing_if = "Option::is_none")]
    default_edition: Option<u32>,
    editions: &'a [Image],
}

/// Show what Windows an install ISO holds: release, build, editions.
#[derive(Debug, Args)]
#[command(
    long_about = "Show what Windows an install ISO holds: its release, build and \
    architecture, and its editions (the images of sources/install.wim or install.esd, \
    with the index and edition id of each), read from inside the ISO without extracting \
    it. `create` refuses an ISO that is not Windows 11 x64, and an unattended install \
    uses the edition marked here (Pro, else the first; `create --edition` chooses).",
    after_help = "Examples:\n  bkt vm iso-info ~/Downloads/Win11_24H2_English_x64.iso\n  \
    bkt vm -c qemu+ssh://root@host/system iso-info --remote /srv/isos/Win11.iso --json"
)]
pub struct IsoInfoArgs {
    /// The ISO.
    #[arg(value_name = "ISO", value_hint = ValueHint::FilePath)]
    pub iso: PathBuf,
    /// ISO is a path on the libvirt host (--connect qemu+ssh://...).
    #[arg(long)]
    pub remote: bool,
    /// Print JSON instead.
    #[arg(long)]
    pub json: bool,
}

pub fn run(ctx: &Ctx, args: IsoInfoArgs) -> Result<()> {
    let (iso, remote, json) = (args.iso.as_path(), args.remote, args.json);
    if remote && ctx.uri.ssh().is_none() {
        return Err(anyhow!(
            "--remote reads an ISO on a libvirt host reached over ssh, and {} is this machine",
            ctx.uri
        ))
        .hint("pass the path of an ISO of this machine, without --remote");
    }
    let iso = if remote {
        iso.to_path_buf()
    } else {
        ctx.local.absolute(iso)?
    };
    let shown = escaped(&iso.display().to_string());
    let (file, images) = match iso_contents::read(ctx, &iso, remote) {
        Ok(Contents::Windows { file, images }) => (file, images),
        Ok(Contents::NotWindows { udf_only }) => {
            return Err(anyhow!(
                "{shown} is {}",
                iso_contents::not_windows(udf_only)
            ));
        }
        Err(e) => return Err(e.context(format!("cannot tell what {shown} holds"))),
    };
    let default = wim::pick(&images, None).ok();
    let first = images.first();
    let ok = default.is_some_and(Image::is_windows11_x64);
    if json {
        let info = Info {
            iso: iso.display().to_string(),
            file: &file,
            windows: wim::summary(&images),
            windows11_x64: ok,
            release: first.and_then(Image::release_name),
            build: first.and_then(Image::full_build),
            arch: first.and_then(|i| i.arch).map(|a| a.to_string()),
            default_edition: default.map(|i| i.index),
            editions: &images,
        };
        ctx.ui.json(&info)?;
        return Ok(());
    }
    ctx.ui.line(format_args!(
        "{shown}: {} ({file}, {} edition{})",
        iso_contents::headline(&images),
        images.len(),
        if images.len() == 1 { "" } else { "s" }
    ));
    let width = images
        .iter()
        .map(|i| escaped(&i.name).chars().count())
        .max()
        .unwrap_or(0);
    for i in &images {
        let mark = if Some(i.index) == default.map(|d| d.index) {
            "  (unattended default)"
        } else {
            ""
        };
        ctx.ui.line(format_args!(
            "  {:>2}  {:<width$}  {}{mark}",
            i.index,
            escaped(&i.name),
            escaped(i.edition_id.as_deref().unwrap_or("-"))
        ));
    }
    if !ok {
        ctx.ui
            .line("bkt vm create refuses it: it makes Windows 11 x64 VMs");
    }
    Ok(())
}
