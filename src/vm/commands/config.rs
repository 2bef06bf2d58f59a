//! `bkt vm config NAME [--auto-save TIME|off] [--share files|home|none]
//! [--clipboard on|off]`: a VM's settings that are bkt's own (kept in the
//! manifest), shown or changed.

use anyhow::{Result, anyhow};
use clap::Args;
use serde::Serialize;

use crate::names::VmName;
use crate::tools::rdp::Share;
use crate::tools::virsh::DomState;
use crate::ui::HintExt;
use crate::units::AutoSave;
use crate::vm::ctx::Ctx;
use crate::vm::options::Switch;
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

/// Show or change a VM's settings that bkt keeps (auto-save, share, clipboard).
#[derive(Debug, Args)]
#[command(
    long_about = "Show or change the settings bkt keeps for a VM it made.\n\n\
    --auto-save TIME saves the VM to disk (its memory given back to the host) once nothing \
    has used it for TIME: no client bkt started is open, no Remote Desktop connection from \
    this machine, no SPICE viewer attached. `start` or `connect` restores it where it was. \
    A small watcher that `connect` starts after its client exits does this; it ends when \
    the VM stops. `off` turns it off.\n\n\
    --share is what `bkt vm run` (and the menu entries `apps --install` writes, which run \
    it) lets Windows see of this machine, read-write: `files` (the default) the directory \
    of each file opened and nothing else, `home` your whole home (a macro could then \
    change ~/.bashrc or read ~/.ssh), `none` no drive at all. `run --share` changes it for \
    one run.\n\n\
    --clipboard off keeps the clipboard to each side in `run` and `connect` over RDP \
    (FreeRDP gets -clipboard; Remmina, which cannot be told so, is refused; the SPICE \
    console shares it through the guest's SPICE agent all the same). It is on by default.",
    after_help = "Examples:\n  bkt vm config windows\n  bkt vm config windows --auto-save 30m\n  \
    bkt vm config windows --auto-save off\n  bkt vm config windows --share home\n  \
    bkt vm config windows --share none --clipboard off"
)]
pub struct ConfigArgs {
    /// The VM's name.
    pub name: VmName,
    /// Save it to disk after this long unused (15m, 1h, 90s), or off.
    #[arg(long, value_name = "TIME")]
    pub auto_save: Option<AutoSave>,
    /// What `run` shares with Windows unless told otherwise.
    #[arg(long, value_enum, value_name = "WHAT")]
    pub share: Option<Share>,
    /// Share the clipboard with Windows over RDP (run and connect).
    #[arg(long, value_enum, value_name = "ON|OFF")]
    pub clipboard: Option<Switch>,
    /// Print JSON instead (without a change).
    #[arg(long, conflicts_with_all = ["auto_save", "share", "clipboard"])]
    pub json: bool,
}

pub fn run(ctx: &Ctx, args: ConfigArgs) -> Result<()> {
    let name = &args.name;
    let changes = Changes {
        auto_save: args.auto_save,
        share: args.share,
        clipboard: args.clipboard.map(|c| c == Switch::On),
    };
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
        return change(ctx, name, state, &changes);
    }
    show(ctx, name, args.json)
}

/// Write the changes to the manifest, say each, and start the idle
/// watcher when auto-save is turned on for a running VM.
fn change(ctx: &Ctx, name: &VmName, state: DomState, changes: &Changes) -> Result<()> {
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
    Ok(())
}

/// Show the settings, as lines or JSON.
fn show(ctx: &Ctx, name: &VmName, json: bool) -> Result<()> {
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
