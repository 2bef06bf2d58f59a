//! `bkt vm config NAME [--auto-save TIME|off] [--share files|home|none]
//! [--clipboard on|off]`: a VM's settings that are bkt's own (kept in the
//! manifest), shown or changed.

use anyhow::{Result, anyhow};
use serde::Serialize;

use crate::names::VmName;
use crate::tools::rdp::Share;
use crate::ui::HintExt;
use crate::units::AutoSave;
use crate::vm::ctx::Ctx;
use crate::vm::power::idle;
use crate::vm::rdp::client as rdp_client;

#[derive(Serialize)]
struct Shown {
    name: String,
    /// Seconds, 0 for off.
    auto_save: u64,
    watcher: bool,
    /// What `run` shares with Windows unless told otherwise.
    share: Share,
    /// Whether RDP shares the clipboard.
    clipboard: bool,
}

/// What to change; nothing: show the settings.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    pub auto_save: Option<AutoSave>,
    pub share: Option<Share>,
    pub clipboard: Option<bool>,
}

/// What `run` lets Windows see, in words.
fn shares(share: Share) -> &'static str {
    match share {
        Share::Files => "the directory of each file it opens, nothing else",
        Share::Home => "your whole home, and the directory of each file outside it",
        Share::None => "nothing: no drive, and no file can be opened",
    }
}

pub fn run(ctx: &Ctx, name: &VmName, changes: &Changes, json: bool) -> Result<()> {
    let (state, _) = ctx.require(name)?;
    let m = ctx.manifest.load()?;
    if m.get(name, &ctx.uri).is_none() {
        return Err(anyhow!(
            "{name} was not made by bkt on {} (it is not in the manifest), so bkt keeps no \
             settings for it",
            ctx.uri
        ))
        .hint("bkt vm status lists the VMs bkt made");
    }
    if changes.auto_save.is_some() || changes.share.is_some() || changes.clipboard.is_some() {
        ctx.manifest.update(|m| {
            let e = m
                .get_mut(name, &ctx.uri)
                .ok_or_else(|| anyhow!("{name} left the manifest while it was being changed"))?;
            if let Some(window) = changes.auto_save {
                e.auto_save = Some(window.as_secs());
            }
            if let Some(share) = changes.share {
                e.share = Some(share.as_str().to_string());
            }
            if let Some(on) = changes.clipboard {
                e.clipboard = Some(on);
            }
            Ok(())
        })?;
        if let Some(share) = changes.share {
            ctx.ui.line(format_args!(
                "{name}: `bkt vm run` shares {}",
                shares(share)
            ));
        }
        match changes.clipboard {
            Some(true) => ctx
                .ui
                .line(format_args!("{name}: the clipboard is shared with Windows")),
            Some(false) => ctx.ui.line(format_args!(
                "{name}: the clipboard is not shared with Windows"
            )),
            None => {}
        }
        if let Some(window) = changes.auto_save {
            match window {
                AutoSave::Off => ctx.ui.line(format_args!("{name}: auto-save is off")),
                t => ctx
                    .ui
                    .line(format_args!("{name}: saved to disk after {t} unused")),
            }
            if window != AutoSave::Off && state.is_active() {
                idle::ensure_watcher(ctx, name)?;
            }
        }
        return Ok(());
    }
    let window = idle::setting(ctx, name)?;
    let watcher = ctx.local.watcher_running(&idle::key(ctx, name));
    let share = rdp_client::share_setting(ctx, name)?;
    let clipboard = rdp_client::clipboard_setting(ctx, name)?;
    if json {
        let shown = Shown {
            name: name.to_string(),
            auto_save: window.as_secs(),
            watcher,
            share,
            clipboard,
        };
        ctx.ui.json(&shown)?;
        return Ok(());
    }
    let watching = match (window, watcher) {
        (AutoSave::Off, _) => "",
        (_, true) => " (a watcher is running)",
        (_, false) => " (no watcher now: the next connect starts one)",
    };
    ctx.ui.line(format_args!("auto-save   {window}{watching}"));
    ctx.ui.line(format_args!(
        "share       {} (run shares {})",
        share.as_str(),
        shares(share)
    ));
    ctx.ui.line(format_args!(
        "clipboard   {}",
        if clipboard { "on" } else { "off" }
    ));
    Ok(())
}
