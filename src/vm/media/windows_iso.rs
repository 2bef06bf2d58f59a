//! The Windows 11 ISO into bkt's cache, for `download --windows` /
//! `--iso-url` and for `create`'s offer: from Microsoft (the flow of
//! [`crate::winiso`]) or from a mirror, with the resume, room and hash
//! checks of [`crate::download`].

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};

use crate::download::{self, Item, Kind, Relink};
use crate::settings::Download;
use crate::ui::{Check, HintExt, Ui, escaped};
use crate::units::human;
use crate::vm::ctx::Ctx;
use crate::vm::options::WindowsIsoArgs;
use crate::winiso::{self, Session, Sku};

/// Room kept free beyond the ISO itself.
const MARGIN: u64 = 256 << 20;
/// A Windows 11 ISO is about 7 GiB: anything past this is not one.
const MAX_SIZE: u64 = 16 << 30;
const MIRROR_HINT: &str = "check the URL (--iso-url), or use another mirror";
const MICROSOFT_HINT: &str = "run it again for a fresh link; if Microsoft keeps refusing, download the ISO in a browser from https://www.microsoft.com/software-download/windows11 and run: bkt vm create NAME --iso PATH";

pub fn run(ctx: &Ctx, args: &WindowsIsoArgs) -> Result<()> {
    let iso = match &args.iso_url {
        Some(url) => Some(mirror(ctx, url, args.iso_sha256.as_deref())?),
        None => from_microsoft(ctx, args.lang.as_deref())?,
    };
    if let Some(iso) = iso {
        ctx.ui.line(format_args!(
            "Next: bkt vm create windows --iso {}",
            iso.display()
        ));
    }
    Ok(())
}

/// `f` on a thread of its own, so that a Ctrl-C ends the wait for
/// Microsoft's answers at once (a signal does not wake a blocked read).
fn interruptible<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match crate::interrupt::recv(&rx) {
        Some(done) => done,
        None => Err(anyhow::Error::new(crate::interrupt::Interrupted).context(
            "asking Microsoft for the Windows 11 ISO was interrupted; nothing was downloaded",
        )),
    }
}

/// The language asked for, else the locale's, else US English.
fn wanted_language(given: Option<&str>, s: &Download) -> String {
    given
        .map(str::to_string)
        .or_else(|| {
            s.locale
                .as_deref()
                .and_then(winiso::locale_language)
                .map(str::to_string)
        })
        .unwrap_or_else(|| winiso::DEFAULT_LANGUAGE.to_string())
}

fn find_sku<'a>(skus: &'a [Sku], want: &str) -> Result<&'a Sku> {
    skus.iter()
        .find(|k| k.language.eq_ignore_ascii_case(want) || k.localized.eq_ignore_ascii_case(want))
        .ok_or_else(|| {
            anyhow!(
                "Microsoft offers no Windows 11 ISO in \"{}\"",
                escaped(want)
            )
        })
        .hint("see the languages with: bkt vm download --windows --lang list")
}

fn print_languages(ui: &Ui, session: &Session, skus: &[Sku]) {
    ui.line(format_args!(
        "Languages of the Windows 11 ISO (product edition {}):",
        session.edition
    ));
    for k in skus {
        if k.localized.is_empty() || k.localized == k.language {
            ui.line(format_args!("  {}", escaped(&k.language)));
        } else {
            ui.line(format_args!(
                "  {:<26} {}",
                escaped(&k.language),
                escaped(&k.localized)
            ));
        }
    }
}

/// The Windows 11 ISO of `lang` (see [`wanted_language`]) from Microsoft
/// into the cache, its steps shown; None when `lang` is `list` (the
/// languages are printed instead). `create` offers it too.
pub fn from_microsoft(ctx: &Ctx, lang: Option<&str>) -> Result<Option<PathBuf>> {
    let (s, ui) = (&ctx.local.settings.download, &ctx.ui);
    ui.heading("Windows 11 from Microsoft");
    let (session, skus) = {
        let s = s.clone();
        interruptible(move || {
            let session = Session::start(&s)?;
            let skus = session.skus()?;
            Ok((session, skus))
        })?
    };
    ui.check(&edition_check(&session));
    if lang == Some("list") {
        print_languages(ui, &session, &skus);
        return Ok(None);
    }
    let want = wanted_language(lang, s);
    let sku = find_sku(&skus, &want)?.clone();
    ui.check(&Check::pass(
        "language",
        format!("{} (SKU {})", escaped(&sku.language), sku.id),
    ));
    let session = Arc::new(session);
    let link = {
        let (session, id) = (session.clone(), sku.id.clone());
        interruptible(move || session.link(&id))?
    };
    let Some(file) = winiso::iso_file_name(&link) else {
        return Err(winiso::step_error(
            5,
            winiso::Failure::Changed(format!(
                "the link {} does not end in a file NAME.iso",
                escaped(&download::shown(&link))
            )),
        ));
    };
    let expected = winiso::hash_for(&session.hashes, &sku.language);
    ui.check(&hash_check(expected.as_deref(), &sku));
    let relink = {
        let (session, id) = (session.clone(), sku.id.clone());
        Relink(Arc::new(move || session.link(&id)))
    };
    let item = Item {
        origin: download::shown(&link),
        file,
        what: "Windows 11 ISO",
        url: link,
        kind: Kind::Iso,
        min_size: 1 << 20,
        max_size: s.cap.unwrap_or(MAX_SIZE),
        margin: Some(MARGIN),
        relink: Some(relink),
        hint: MICROSOFT_HINT,
        sha256_from: "the SHA-256 Microsoft's page publishes",
    };
    let verified = expected.is_some();
    fetched(
        ctx,
        &item,
        expected,
        if verified {
            "matches Microsoft's SHA-256"
        } else {
            "from Microsoft over HTTPS"
        },
    )
    .map(Some)
}

fn edition_check(session: &Session) -> Check {
    if session.edition_listed {
        Check::pass("edition", format!("product edition {}", session.edition))
    } else {
        Check::warn(
            "edition",
            format!(
                "the page lists no Windows 11 edition; trying {} as other clients do",
                session.edition
            ),
        )
    }
}

fn hash_check(published: Option<&str>, sku: &Sku) -> Check {
    match published {
        Some(h) => Check::pass(
            "SHA-256",
            format!("{}… (published on Microsoft's page)", &h[..16]),
        ),
        None => Check::warn(
            "SHA-256",
            format!(
                "Microsoft's page publishes none for {}: only HTTPS from Microsoft vouches for the file",
                escaped(&sku.language)
            ),
        ),
    }
}

/// Fetch `item` and show where it is.
fn fetched(ctx: &Ctx, item: &Item, expected: Option<String>, note: &str) -> Result<PathBuf> {
    let verified = expected.is_some();
    let opts = download::Options {
        offline: false,
        expected_sha256: expected,
    };
    let f = ctx
        .local
        .fetch(item, &opts)
        .context("getting the Windows 11 ISO")?;
    // Without a hash, only the transport vouched for the file, and a
    // cached one may have come from anywhere (a mirror of the same name):
    // no claim for it.
    let note = if f.cached && !verified { "" } else { note };
    let mut detail = format!(
        "{} ({}, sha256 {}…",
        f.path.display(),
        human(f.size),
        &f.sha256[..16]
    );
    for extra in [note, if f.cached { "cached" } else { "" }] {
        if !extra.is_empty() {
            detail.push_str(", ");
            detail.push_str(extra);
        }
    }
    detail.push(')');
    ctx.ui.check(&Check::pass("Windows ISO", detail));
    if note.is_empty() {
        ctx.ui.check(&Check::warn(
            "SHA-256",
            format!(
                "nothing vouches for this file: its SHA-256 {} is recorded in {}.sha256; compare it with the one its source publishes",
                f.sha256,
                f.path.display()
            ),
        ));
    }
    Ok(f.path)
}

fn mirror(ctx: &Ctx, url: &str, sha256: Option<&str>) -> Result<PathBuf> {
    let s = &ctx.local.settings.download;
    let expected = sha256.map(str::to_ascii_lowercase);
    if let Some(e) = &expected
        && !(e.len() == 64 && e.chars().all(|c| c.is_ascii_hexdigit()))
    {
        bail!("--iso-sha256 must be 64 hexadecimal digits");
    }
    ctx.ui.heading("Windows 11 from a mirror");
    let item = Item {
        file: winiso::iso_file_name(url).unwrap_or_else(|| "windows11.iso".into()),
        what: "Windows 11 ISO",
        url: url.to_string(),
        // A mirror's query may hold a token too (a signed share link).
        origin: download::shown(url),
        kind: Kind::Iso,
        min_size: 1 << 20,
        max_size: s.cap.unwrap_or(MAX_SIZE),
        margin: Some(MARGIN),
        relink: None,
        hint: MIRROR_HINT,
        sha256_from: download::SHA256_GIVEN,
    };
    let note = if expected.is_some() {
        "matches --iso-sha256"
    } else {
        ""
    };
    fetched(ctx, &item, expected, note)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_follows_the_flag_then_the_locale() {
        let mut s = Download::default();
        assert_eq!(wanted_language(None, &s), "English (United States)");
        s.locale = Some("de_DE.UTF-8".into());
        assert_eq!(wanted_language(None, &s), "German");
        assert_eq!(wanted_language(Some("French"), &s), "French");
        s.locale = Some("C.UTF-8".into());
        assert_eq!(wanted_language(None, &s), "English (United States)");
    }
}
