//! What Windows an install ISO holds, read from inside it without
//! extracting anything: `sources/install.wim` (or `install.esd`) found in
//! the ISO's UDF tree (where Windows' own ISOs keep it) or else its ISO
//! 9660 tree, then its header and XML read by positioned
//! reads (a few KiB of a 5 GiB file). `xorriso -osirrox on -extract_cut`
//! could cut the same byte ranges out into temporary files; reading them
//! natively needs no temporary file (a plain `-extract` writes the whole
//! 4-6 GiB install.wim to read its XML), no extra program here (the
//! tests' replaced PATH has no xorriso to cut with), and works the same
//! for an ISO here and one on a libvirt host reached over ssh (`dd`
//! there). `create`'s check refuses what is not Windows 11 x64 and picks
//! the edition an unattended install uses; `iso-info` shows it all.

use std::io;
use std::path::Path;

use anyhow::{Result, anyhow};

use crate::tools::iso9660::{self, Extent, ReadAt};
use crate::tools::udf;
use crate::tools::wim::{self, Image, PickError};
use crate::ui::{Check, escaped};
use crate::vm::ctx::Ctx;

/// The label of the check line.
pub const LABEL: &str = "Windows";

/// Where Windows Setup looks for its images, in order.
const IMAGE_FILES: [&str; 2] = ["install.wim", "install.esd"];

/// What the ISO holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contents {
    /// A Windows image file (`sources/install.wim`) and its images.
    Windows { file: String, images: Vec<Image> },
    /// No image file in either tree; `udf_only`: the ISO has a UDF tree
    /// too (where Windows' own ISOs keep their files), searched first.
    NotWindows { udf_only: bool },
}

/// A closure as a positioned reader.
struct ReadFn<F>(F);

impl<F: FnMut(u64, usize) -> io::Result<Vec<u8>>> ReadAt for ReadFn<F> {
    fn read_at(&mut self, off: u64, len: usize) -> io::Result<Vec<u8>> {
        (self.0)(off, len)
    }
}

/// The extents of `sources/NAME` in the ISO.
fn locate(r: &mut dyn ReadAt, name: &str) -> io::Result<Option<Vec<Extent>>> {
    // Windows' own ISOs keep their files only in UDF (their ISO 9660
    // bridge holds README.TXT), so UDF first; then the ISO 9660 tree
    // (what xorriso and mkisofs make without -udf).
    if let Some(found) = udf::find_file(r, &["sources", name])? {
        return Ok(Some(found));
    }
    iso9660::find_file(r, &["sources", name])
}

/// What the image `r` holds.
pub fn contents(r: &mut dyn ReadAt) -> Result<Contents> {
    for name in IMAGE_FILES {
        let Some(extents) = locate(r, name)? else {
            continue;
        };
        let file = format!("sources/{name}");
        let images = wim::read_images(r, &extents).map_err(|e| anyhow!("reading {file}: {e}"))?;
        return Ok(Contents::Windows { file, images });
    }
    Ok(Contents::NotWindows {
        udf_only: iso9660::has_udf(r)?,
    })
}

/// What the ISO at `iso` holds: a file here, or on the libvirt host when
/// `on_host` (`--remote-iso`).
pub fn read(ctx: &Ctx, iso: &Path, on_host: bool) -> Result<Contents> {
    if on_host {
        contents(&mut ReadFn(|off, len| ctx.host.read_at(iso, off, len)))
    } else {
        contents(&mut ReadFn(|off, len| ctx.local.read_at(iso, off, len)))
    }
}

/// Why an ISO without an image file is not one to install from.
pub fn not_windows(udf_only: bool) -> String {
    let mut s = "not a Windows installation ISO: no sources/install.wim or install.esd".to_string();
    if udf_only {
        s.push_str(" in its UDF or ISO 9660 tree");
    }
    s
}

/// The names of the images, for a line: "Windows 11 Home, Windows 11 Pro".
pub fn names(images: &[Image]) -> String {
    images
        .iter()
        .map(|i| escaped(&i.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// "Windows 11 24H2 x64, build 26100.1742".
pub fn headline(images: &[Image]) -> String {
    let what = escaped(&wim::summary(images));
    match images.first().and_then(Image::full_build) {
        Some(b) => format!("{what}, build {b}"),
        None => what,
    }
}

const GET_ONE: &str = "pass a Windows 11 x64 ISO with --iso, or download one: bkt vm download --windows (microsoft.com/software-download/windows11)";

/// The ISO as a check line names it: its file name here, HOST:PATH there.
fn shown_name(ctx: &Ctx, iso: &Path, on_host: bool) -> String {
    if on_host {
        let host = ctx.uri.ssh().map_or("the host", |t| t.host.as_str());
        format!("{host}:{}", iso.display())
    } else {
        iso.file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    }
}

/// The image `edition` names (else Pro, else the first), or the failed
/// check saying why there is none.
fn picked(
    images: &[Image],
    edition: Option<&str>,
    shown: &str,
    file: &str,
) -> Result<Image, Check> {
    match wim::pick(images, edition) {
        Ok(i) => Ok(i.clone()),
        Err(PickError::Empty) => {
            Err(Check::fail(LABEL, format!("{shown}: {file} lists no image")).fix(GET_ONE))
        }
        Err(PickError::Unknown(w)) => Err(Check::fail(
            LABEL,
            format!(
                "--edition {:?} is not on {shown}; it has: {}",
                escaped(&w),
                names(images)
            ),
        )
        .fix("pass one of them with --edition, or leave it out (Pro, else the first)")),
    }
}

/// The preflight check of the install ISO's contents: Windows 11 x64,
/// with its release, build and editions, and (`edition`, else Pro, else
/// the first) the image an unattended install uses, returned with it.
pub fn check(
    ctx: &Ctx,
    iso: &Path,
    on_host: bool,
    edition: Option<&str>,
    unattended: bool,
) -> (Check, Option<Image>) {
    let shown = shown_name(ctx, iso, on_host);
    let (file, images) = match read(ctx, iso, on_host) {
        Ok(Contents::Windows { file, images }) => (file, images),
        Ok(Contents::NotWindows { udf_only }) => {
            return (
                Check::fail(LABEL, format!("{shown} is {}", not_windows(udf_only))).fix(GET_ONE),
                None,
            );
        }
        Err(e) => {
            return (
                Check::fail(LABEL, format!("cannot tell what {shown} holds: {e:#}")),
                None,
            );
        }
    };
    let picked = match picked(&images, edition, &shown, &file) {
        Ok(i) => i,
        Err(c) => return (c, None),
    };
    if !picked.is_windows11_x64() {
        let fix = if picked.product() == Some("Windows 11") {
            "bkt makes x64 VMs: pass the x64 ISO of Windows 11 with --iso (microsoft.com/software-download/windows11)"
        } else {
            GET_ONE
        };
        return (
            Check::fail(
                LABEL,
                format!(
                    "{shown} holds {}, not Windows 11 x64",
                    headline(std::slice::from_ref(&picked))
                ),
            )
            .fix(fix),
            None,
        );
    }
    let mut detail = format!("{}: {}", headline(&images), names(&images));
    if unattended {
        detail.push_str(&format!(
            "; installing {} (image {})",
            escaped(&picked.name),
            picked.index
        ));
    }
    (Check::pass(LABEL, detail), Some(picked))
}

#[cfg(test)]
mod tests {
    // why: tests read fixtures and set up the files and processes they look at.
    #![allow(clippy::disallowed_methods, clippy::disallowed_types)]

    use super::*;

    /// Windows' own ISOs hold install.wim only in their UDF tree: an ISO
    /// made so still shows its editions.
    #[test]
    fn the_editions_are_read_from_the_udf_tree() {
        let wim = format!(
            "{}/fixtures/wim/win11-24h2-x64.wim",
            env!("CARGO_MANIFEST_DIR")
        );
        let bytes = crate::tools::udf::testing::udf_only_iso(Path::new(&wim));
        let mut r = ReadFn(|off: u64, len: usize| {
            let from = (off as usize).min(bytes.len());
            Ok(bytes[from..(from + len).min(bytes.len())].to_vec())
        });
        assert_eq!(
            iso9660::find_file(&mut r, &["sources", "install.wim"]).unwrap(),
            None,
            "the ISO 9660 tree must not hold it, or this test reads that"
        );
        let Contents::Windows { file, images } = contents(&mut r).unwrap() else {
            panic!("no Windows found in the UDF tree");
        };
        assert_eq!(file, "sources/install.wim");
        assert_eq!(headline(&images), "Windows 11 24H2 x64, build 26100.1742");
        assert_eq!(
            names(&images),
            "Windows 11 Home, Windows 11 Pro, Windows 11 Education"
        );
    }

    #[test]
    fn an_iso_made_by_xorriso_holds_windows_11() {
        let p = format!(
            "{}/fixtures/iso/win11-24h2-x64.iso",
            env!("CARGO_MANIFEST_DIR")
        );
        let ctx = Ctx::for_tests();
        let Contents::Windows { file, images } = read(&ctx, Path::new(&p), false).unwrap() else {
            panic!("no Windows found");
        };
        assert_eq!(file, "sources/install.wim");
        assert_eq!(headline(&images), "Windows 11 24H2 x64, build 26100.1742");
        assert_eq!(
            names(&images),
            "Windows 11 Home, Windows 11 Pro, Windows 11 Education"
        );
        let (c, picked) = check(&ctx, Path::new(&p), false, None, true);
        assert_eq!(
            c.detail,
            "Windows 11 24H2 x64, build 26100.1742: Windows 11 Home, Windows 11 Pro, \
             Windows 11 Education; installing Windows 11 Pro (image 2)"
        );
        assert_eq!(picked.unwrap().index, 2);
    }

    #[test]
    fn names_from_the_iso_cannot_drive_the_terminal() {
        let mut i = Image {
            index: 1,
            name: "Windows 11 Pro\x1b[2J".into(),
            display_name: None,
            edition_id: None,
            installation_type: None,
            arch: None,
            major: None,
            minor: None,
            build: None,
            spbuild: None,
        };
        assert_eq!(names(std::slice::from_ref(&i)), "Windows 11 Pro\\x1b[2J");
        i.name = "a".into();
        assert_eq!(
            headline(&[i]),
            "Windows (version not given) (architecture not given)"
        );
        assert_eq!(
            not_windows(true),
            "not a Windows installation ISO: no sources/install.wim or install.esd in its UDF or \
             ISO 9660 tree"
        );
        assert_eq!(
            not_windows(false),
            "not a Windows installation ISO: no sources/install.wim or install.esd"
        );
    }
}
