//! Menu entries for a VM's programs, and one for its whole desktop, shared
//! by `apps --install/--uninstall` and `destroy`. Each is
//! `$XDG_DATA_HOME/applications/bkt-VM-APP.desktop` (the desktop's:
//! `bkt-VM.desktop`), its icon `$XDG_DATA_HOME/icons/hicolor/WxH/apps/bkt-VM-APP.png`.
//! Which VM (and connection) an entry belongs to is written in it
//! (`X-Bkt-VM`, `X-Bkt-URI`, `X-Bkt-App`): removing goes by those, never by
//! a file name pattern that another VM's name could match. The user's
//! default applications (mimeapps.list) are never touched.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use base64::Engine;

use crate::tools::desktop::{self, Entry};
use crate::ui::HintExt;
use crate::vm::ctx::Ctx;
use crate::vm::programs::catalog::{self, App, wm_class};

/// Freedesktop's categories for what bkt knows a program to be.
fn categories(app: &App) -> &'static str {
    match app.id.as_str() {
        "cmd" | "powershell" => "System;TerminalEmulator;",
        "explorer" => "System;FileTools;FileManager;",
        "paint" => "Graphics;",
        _ => "Utility;",
    }
}

/// A theme icon for a program that brought none of its own.
fn theme_icon(app: &App) -> &'static str {
    match app.id.as_str() {
        "notepad" => "accessories-text-editor",
        "paint" => "applications-graphics",
        "explorer" => "system-file-manager",
        "cmd" | "powershell" => "utilities-terminal",
        _ => "application-x-executable",
    }
}

fn applications(ctx: &Ctx) -> Result<PathBuf> {
    Ok(ctx.local.data_home()?.join("applications"))
}

fn icons(ctx: &Ctx) -> Result<PathBuf> {
    Ok(ctx.local.data_home()?.join("icons").join("hicolor"))
}

/// The command a launcher runs: this bkt, on the VM's connection.
fn bkt_args(ctx: &Ctx, words: &[&str]) -> Result<Vec<String>> {
    let bkt = ctx.local.own_program()?.display().to_string();
    let mut v = vec![bkt, "vm".into(), "--connect".into(), ctx.uri.to_string()];
    v.extend(words.iter().map(|w| w.to_string()));
    Ok(v)
}

/// Write the entries (and icons) of `apps` and of the VM's desktop, all of
/// them or none: every id, icon and file name is checked before the first
/// file is written, and when a write fails the files this call wrote are
/// removed. Returns the files written.
pub fn install(ctx: &Ctx, vm: &str, apps: &[App]) -> Result<Vec<PathBuf>> {
    let dir = applications(ctx)?;
    let files = plan(ctx, vm, apps, &dir)?;
    // Each file written, with what it replaced: a failed install puts an
    // earlier install's entries and icons back as they were, and removes
    // only the files that were not there before.
    let mut written: Vec<(PathBuf, Option<Vec<u8>>)> = Vec::new();
    for (p, bytes) in &files {
        let before = ctx.local.read_user_file(p);
        if let Err(e) = ctx.local.write_user_file(p, bytes) {
            let mut left = Vec::new();
            for (w, was) in written.iter().rev() {
                let undone = match was {
                    Some(old) => ctx.local.write_user_file(w, old),
                    None => ctx.local.remove_user_file(w),
                };
                if undone.is_err() {
                    left.push(w.display().to_string());
                }
            }
            if !written.is_empty() {
                refresh(ctx, &dir);
            }
            let undone = match (written.len(), left.is_empty()) {
                (0, _) => "nothing was written".to_string(),
                (n, true) => format!("undid the {n} files written before it"),
                (n, false) => format!(
                    "undid {} of the {n} files written before it; not undone: {}",
                    n - left.len(),
                    left.join(", ")
                ),
            };
            return Err(e.context(format!("cannot write {} ({undone})", p.display())));
        }
        written.push((p.clone(), before));
    }
    refresh(ctx, &dir);
    Ok(written.into_iter().map(|(p, _)| p).collect())
}

/// Every file [`install`] writes, with its bytes, once each has passed its
/// checks: the id ([`catalog::check_id`]), the icon (a PNG that decodes,
/// [`desktop::icon_size`]), and the entry's name not another VM's.
fn plan(ctx: &Ctx, vm: &str, apps: &[App], dir: &Path) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let globs = desktop::parse_globs2(&ctx.local.mime_globs());
    let mut files = Vec::new();
    for app in apps {
        catalog::check_id(&app.id)
            .map_err(|e| anyhow!("{e}{NOTHING}"))
            .hint(format!(
                "ask Windows again for new ids: bkt vm apps {vm} --refresh"
            ))?;
        let name = format!("bkt-{vm}-{}", app.id);
        let icon = match app.icon.as_deref() {
            None => theme_icon(app).to_string(),
            Some(b64) => {
                files.push(icon_file(ctx, vm, app, &name, b64)?);
                name.clone()
            }
        };
        let entry = app_entry(ctx, vm, app, icon, &globs)?;
        let p = dir.join(format!("{name}.desktop"));
        refuse_foreign(ctx, &p, vm)?;
        files.push((p, desktop::render(&entry).into_bytes()));
    }
    let args = bkt_args(ctx, &["connect", vm])?;
    let whole = Entry {
        name: format!("{vm} (Windows desktop)"),
        comment: format!("The whole desktop of the Windows VM {vm}"),
        try_exec: args[0].clone(),
        exec: args,
        field_code: None,
        icon: "computer".into(),
        categories: "System;",
        wm_class: None,
        mime_types: Vec::new(),
        vm: vm.to_string(),
        uri: ctx.uri.to_string(),
        app: None,
    };
    let p = dir.join(format!("bkt-{vm}.desktop"));
    refuse_foreign(ctx, &p, vm)?;
    files.push((p, desktop::render(&whole).into_bytes()));
    Ok(files)
}

/// The end of every refusal of [`plan`]: it refuses before writing.
const NOTHING: &str = "; nothing was written";

/// The icon file of an app whose icon Windows gave (`b64`, a base64 PNG),
/// named `name` in the icon theme's directory of its size.
fn icon_file(ctx: &Ctx, vm: &str, app: &App, name: &str, b64: &str) -> Result<(PathBuf, Vec<u8>)> {
    let size = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("it is not base64: {e}"))
        .and_then(|png| Ok((desktop::icon_size(&png)?, png)));
    let ((w, h), png) = size
        .map_err(|why| {
            anyhow!(
                "the icon Windows in {vm} gave for {} is not one bkt can use: \
                 {why}{NOTHING}",
                app.id
            )
        })
        .hint(format!(
            "leave it out (bkt vm apps {vm} --install with the other ids), or \
             ask Windows again: bkt vm apps {vm} --refresh"
        ))?;
    let p = icons(ctx)?
        .join(format!("{w}x{h}"))
        .join("apps")
        .join(format!("{name}.png"));
    Ok((p, png))
}

/// The menu entry of one app: `bkt vm run VM ID` with the files opened,
/// for the MIME types of the file types it opens.
fn app_entry(
    ctx: &Ctx,
    vm: &str,
    app: &App,
    icon: String,
    globs: &[desktop::Glob],
) -> Result<Entry> {
    let mut mime: Vec<String> = app
        .types
        .iter()
        .filter_map(|t| desktop::mime_of(globs, t))
        .collect();
    mime.sort();
    mime.dedup();
    // No --share: what Windows sees is the VM's `config --share` at
    // each run, so changing it changes every entry already written.
    let args = bkt_args(ctx, &["run", vm, &app.id])?;
    Ok(Entry {
        name: format!("{} ({vm})", app.name),
        comment: format!("{} in the Windows VM {vm}", app.name),
        try_exec: args[0].clone(),
        exec: args,
        field_code: Some("%F"),
        icon,
        categories: categories(app),
        wm_class: Some(wm_class(vm, &app.id)),
        mime_types: mime,
        vm: vm.to_string(),
        uri: ctx.uri.to_string(),
        app: Some(app.id.clone()),
    })
}

/// A file of that name that belongs to another VM (bkt-win-2-x.desktop is
/// VM win's app 2-x or VM win-2's app x) is left alone.
fn refuse_foreign(ctx: &Ctx, p: &Path, vm: &str) -> Result<()> {
    let text = ctx.local.read_log(p);
    if text.is_empty() {
        return Ok(());
    }
    let owner = desktop::value_of(&text, "X-Bkt-VM");
    let uri = desktop::value_of(&text, "X-Bkt-URI");
    if owner.as_deref() == Some(vm) && uri.as_deref() == Some(ctx.uri.as_str()) {
        return Ok(());
    }
    Err(anyhow!(
        "{} exists and is not {vm}'s on {}: left as it is; nothing was written",
        p.display(),
        ctx.uri
    ))
}

/// Remove the VM's entries: those of `ids`, or all of them with the
/// desktop's when `ids` is None, and the icons bkt wrote for them. Returns
/// the files removed.
pub fn uninstall(ctx: &Ctx, vm: &str, ids: Option<&[String]>) -> Result<Vec<PathBuf>> {
    let dir = applications(ctx)?;
    let icon_dirs: Vec<PathBuf> = ctx
        .local
        .list_dir(&icons(ctx)?)
        .into_iter()
        .map(|d| d.join("apps"))
        .collect();
    let mut removed = Vec::new();
    let mut remove = || -> Result<()> {
        for p in ctx.local.list_dir(&dir) {
            let file = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            if !file.starts_with("bkt-") || !file.ends_with(".desktop") {
                continue;
            }
            let text = ctx.local.read_log(&p);
            if desktop::value_of(&text, "X-Bkt-VM").as_deref() != Some(vm)
                || desktop::value_of(&text, "X-Bkt-URI").as_deref() != Some(ctx.uri.as_str())
            {
                continue;
            }
            let app = desktop::value_of(&text, "X-Bkt-App");
            let wanted = match (ids, &app) {
                (None, _) => true,
                (Some(ids), Some(a)) => ids.contains(a),
                (Some(_), None) => false,
            };
            if !wanted {
                continue;
            }
            if let Some(icon) = desktop::value_of(&text, "Icon").filter(|i| i.starts_with("bkt-")) {
                for d in &icon_dirs {
                    let png = d.join(format!("{icon}.png"));
                    if ctx.local.exists(&png) {
                        ctx.local.remove_user_file(&png)?;
                        removed.push(png);
                    }
                }
            }
            ctx.local.remove_user_file(&p)?;
            removed.push(p);
        }
        Ok(())
    };
    // A failure part way still leaves files removed: the database learns
    // of those.
    let done = remove();
    if !removed.is_empty() {
        refresh(ctx, &dir);
    }
    done.map(|()| removed)
}

/// The desktop database, where `update-desktop-database` exists; a failure
/// there only delays "Open With" until the next refresh.
fn refresh(ctx: &Ctx, dir: &Path) {
    if ctx.local.has_program("update-desktop-database") {
        let _ = ctx.local.exec(&desktop::update_desktop_database(
            &dir.display().to_string(),
        ));
    }
}
