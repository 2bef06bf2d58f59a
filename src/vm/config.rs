//! `bkt vm config NAME [--auto-save TIME|off]`: a VM's settings that are
//! bkt's own (kept in the manifest), shown or changed.

use anyhow::{Result, anyhow};
use serde::Serialize;

use crate::manifest;
use crate::names::VmName;
use crate::ui::HintExt;
use crate::units::AutoSave;
use crate::vm::ctx::Ctx;
use crate::vm::idle;

#[derive(Serialize)]
struct Shown {
    name: String,
    /// Seconds, 0 for off.
    auto_save: u64,
    watcher: bool,
}

pub fn run(ctx: &Ctx, name: &VmName, auto_save: Option<AutoSave>, json: bool) -> Result<()> {
    let (state, _) = ctx.require(name)?;
    let m = manifest::load(&ctx.manifest)?;
    if m.get(name, &ctx.uri).is_none() {
        return Err(anyhow!(
            "{name} was not made by bkt on {} (it is not in the manifest), so bkt keeps no \
             settings for it",
            ctx.uri
        ))
        .hint("bkt vm status lists the VMs bkt made");
    }
    if let Some(window) = auto_save {
        manifest::update(&ctx.manifest, |m| {
            let e = m
                .get_mut(name, &ctx.uri)
                .ok_or_else(|| anyhow!("{name} left the manifest while it was being changed"))?;
            e.auto_save = Some(window.as_secs());
            Ok(())
        })?;
        match window {
            AutoSave::Off => println!("{name}: auto-save is off"),
            t => println!("{name}: saved to disk after {t} unused"),
        }
        if window != AutoSave::Off && state.is_active() {
            idle::ensure_watcher(ctx, name)?;
        }
        return Ok(());
    }
    let window = idle::setting(ctx, name)?;
    let watcher = ctx.local.watcher_running(&idle::key(ctx, name));
    if json {
        let shown = Shown {
            name: name.to_string(),
            auto_save: window.as_secs(),
            watcher,
        };
        println!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(());
    }
    let watching = match (window, watcher) {
        (AutoSave::Off, _) => "",
        (_, true) => " (a watcher is running)",
        (_, false) => " (no watcher now: the next connect starts one)",
    };
    println!("auto-save   {window}{watching}");
    Ok(())
}
