//! `bkt vm apps NAME`: the programs installed in the guest, asked of
//! Windows through the QEMU guest agent (a short PowerShell script run with
//! `guest-exec`), kept in bkt's cache per VM. Without an agent, the programs
//! every Windows 11 has.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use clap::Args;
use console::style;

use crate::names::VmName;
use crate::tools::guest_agent::{self, Found, POWERSHELL};
use crate::tools::virsh::{self, DomState};
use crate::ui::{HintExt, Ui, escaped};
use crate::vm::ctx::Ctx;
use crate::vm::programs::catalog::{self, App, Cache};
use crate::vm::programs::launchers;
use crate::vm::wait::poll_until;

/// The ids `--install`/`--uninstall` name, or None for all of them.
fn chosen(ids: &[String], all: bool, verb: &str, name: &str) -> Result<Option<Vec<String>>> {
    match (ids.is_empty(), all) {
        (true, true) => Ok(None),
        (false, false) => Ok(Some(ids.to_vec())),
        (false, true) => Err(anyhow!("--{verb} takes program ids or --all, not both")),
        (true, false) => Err(anyhow!("--{verb} needs the programs' ids, or --all")).hint(format!(
            "the ids are in the first column of `bkt vm apps {name}`"
        )),
    }
}

/// How long the discovery script may take in the guest (it reads every
/// Start Menu shortcut and icon).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(200);

/// Why the guest could not be asked.
enum NotAsked {
    /// The VM is not running.
    Off(DomState),
    /// The guest agent does not answer.
    NoAgent,
}

/// Where the list comes from.
enum From {
    Guest,
    Cache(u64),
    Builtin(NotAsked),
}

/// List the programs installed in Windows (for `bkt vm run`).
#[derive(Debug, Args)]
#[command(
    long_about = "List the programs installed in Windows, with the file types each opens, \
    for `bkt vm run`.\n\n\
    Windows is asked through the QEMU guest agent (the virtio guest tools install it): a \
    short PowerShell script reads the Start Menu shortcuts, the App Paths registry key and \
    the Store apps, with their icons. The answer is kept in $XDG_CACHE_HOME/bkt/vm/ until \
    --refresh. When the VM is off or the agent does not answer, the programs every \
    Windows 11 has are listed (notepad, paint, explorer, cmd, powershell).\n\n\
    --install adds menu entries: $XDG_DATA_HOME/applications/bkt-VM-APP.desktop running \
    `bkt vm run VM APP` with the files given, its icon under \
    $XDG_DATA_HOME/icons/hicolor, the file types it opens as MIME types (from the \
    shared-mime-info database), and one entry for the VM's whole desktop. Your default \
    applications are never changed. --uninstall removes them; so does `destroy`.",
    after_help = "Examples:\n  bkt vm apps windows\n  bkt vm apps windows --refresh --json\n  \
    bkt vm apps windows --install word notepad\n  bkt vm apps windows --install --all\n  \
    bkt vm apps windows --uninstall --all"
)]
pub struct AppsArgs {
    /// The VM's name.
    pub name: VmName,
    /// Print JSON (with each icon as a base64 PNG).
    #[arg(long)]
    pub json: bool,
    /// Ask Windows again instead of using what was found before.
    #[arg(long)]
    pub refresh: bool,
    /// Add menu entries for these programs (ids), or for all with --all.
    #[arg(long, num_args = 0.., value_name = "APP", conflicts_with_all = ["uninstall", "json"])]
    pub install: Option<Vec<String>>,
    /// Remove the menu entries of these programs, or all with --all.
    #[arg(long, num_args = 0.., value_name = "APP", conflicts_with_all = ["json", "refresh"])]
    pub uninstall: Option<Vec<String>>,
    /// With --install or --uninstall: every program (and the desktop's entry).
    #[arg(long)]
    pub all: bool,
}

pub fn run(ctx: &Ctx, args: AppsArgs) -> Result<()> {
    let (name, opts) = (&args.name, &args);
    if opts.all && opts.install.is_none() && opts.uninstall.is_none() {
        return Err(anyhow!("--all goes with --install or --uninstall"));
    }
    let (state, _) = ctx.require(name)?;
    if let Some(ids) = &opts.uninstall {
        let ids = chosen(ids, opts.all, "uninstall", name)?;
        return uninstall(ctx, name, ids.as_deref());
    }
    let install_ids = opts
        .install
        .as_ref()
        .map(|ids| chosen(ids, opts.all, "install", name))
        .transpose()?;
    let (apps, from) = list(ctx, name, state, opts.refresh)?;
    if let Some(ids) = install_ids {
        return install(ctx, name, &apps, ids.as_deref());
    }
    if opts.json {
        let from_word = match from {
            From::Guest => "guest",
            From::Cache(_) => "cache",
            From::Builtin(_) => "builtin",
        };
        let v = serde_json::json!({ "vm": name.as_str(), "from": from_word, "apps": apps });
        ctx.ui.json(&v)?;
    } else {
        print_table(&ctx.ui, &apps);
    }
    match from {
        From::Guest => {}
        From::Cache(at) => ctx.ui.note(format_args!(
            "(as Windows listed them at {}; `bkt vm apps {name} --refresh` asks again)",
            jiff::Timestamp::from_second(at as i64)
                .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default()
        )),
        From::Builtin(NotAsked::Off(s)) => ctx.ui.note(format_args!(
            "{} {name} is {}, so Windows cannot be asked what is installed: these are the \
             programs every Windows 11 has\n  start it, then: bkt vm apps {name} --refresh",
            style("⚠").yellow(),
            s.label()
        )),
        From::Builtin(NotAsked::NoAgent) => ctx.ui.note(format_args!(
            "{} the guest agent in {name} does not answer, so Windows cannot be asked what is \
             installed: these are the programs every Windows 11 has\n  install the guest tools in \
             Windows (virtio-win-guest-tools.exe on the virtio-win ISO; `bkt vm download` fetches \
             them), then: bkt vm apps {name} --refresh",
            style("⚠").yellow()
        )),
    }
    Ok(())
}

fn install(ctx: &Ctx, name: &str, apps: &[App], ids: Option<&[String]>) -> Result<()> {
    let chosen: Vec<App> = match ids {
        None => apps.to_vec(),
        Some(ids) => ids
            .iter()
            .map(|id| {
                apps.iter()
                    .find(|a| a.id.eq_ignore_ascii_case(id))
                    .cloned()
                    .ok_or_else(|| anyhow!("no program {id:?} known in {name}"))
                    .hint(format!(
                        "the ids are in the first column of `bkt vm apps {name}`"
                    ))
            })
            .collect::<Result<_>>()?,
    };
    let written = launchers::install(ctx, name, &chosen)?;
    let entries = written
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "desktop"))
        .count();
    ctx.ui.line(format_args!(
        "Added {entries} menu entries for {name} (your default applications are unchanged):"
    ));
    for p in &written {
        ctx.ui.line(format_args!("  {}", p.display()));
    }
    Ok(())
}

fn uninstall(ctx: &Ctx, name: &str, ids: Option<&[String]>) -> Result<()> {
    let removed = launchers::uninstall(ctx, name, ids)?;
    if removed.is_empty() {
        ctx.ui
            .line(format_args!("No menu entries of {name} to remove"));
        return Ok(());
    }
    ctx.ui.line("Removed:");
    for p in &removed {
        ctx.ui.line(format_args!("  {}", p.display()));
    }
    Ok(())
}

/// The cached list, else the guest's answer (kept), else the built-ins.
fn list(ctx: &Ctx, name: &str, state: DomState, refresh: bool) -> Result<(Vec<App>, From)> {
    if !refresh && let Some(c) = catalog::cached(ctx, name) {
        return Ok((c.apps, From::Cache(c.found)));
    }
    if !state.is_active() {
        return Ok((catalog::builtins(), From::Builtin(NotAsked::Off(state))));
    }
    match discover(ctx, name)? {
        Ok(found) => {
            let apps = catalog::from_found(found);
            catalog::store(
                ctx,
                name,
                &Cache {
                    found: ctx.local.now(),
                    apps: apps.clone(),
                },
            )?;
            Ok((apps, From::Guest))
        }
        Err(why) => Ok((catalog::builtins(), From::Builtin(why))),
    }
}

/// Run the discovery script in the guest and wait for its output.
fn discover(ctx: &Ctx, name: &str) -> Result<std::result::Result<Vec<Found>, NotAsked>> {
    // In use while the guest is asked: a save would cut the script off.
    let _busy = crate::vm::power::idle::busy(ctx, name);
    let args: Vec<String> = [
        "-NoProfile",
        "-NonInteractive",
        "-ExecutionPolicy",
        "Bypass",
        "-EncodedCommand",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([guest_agent::encoded_command(guest_agent::APPS_PS1)])
    .collect();
    let ask = |json: &str| ctx.try_libvirt_out(&ctx.virsh.agent_command(name, json, 10));
    let started = match ask(&guest_agent::exec_request(POWERSHELL, &args)) {
        Ok(out) => out,
        Err(e) if virsh::is_no_agent(e.stderr()) => return Ok(Err(NotAsked::NoAgent)),
        Err(e) => {
            return Err(ctx
                .libvirt_error(e)
                .context(format!("asking {name}'s guest agent to run PowerShell")));
        }
    };
    let pid = guest_agent::parse_exec(&started)?;
    let spinner = ctx
        .ui
        .spinner(&format!("asking Windows in {name} for its programs"));
    let done = poll_until(
        Some(Instant::now() + SCRIPT_TIMEOUT),
        POLL,
        &spinner,
        "",
        || {
            let out = ask(&guest_agent::status_request(pid)).map_err(|e| ctx.libvirt_error(e))?;
            guest_agent::parse_status(&out)
        },
    );
    spinner.clear();
    let done = done?.ok_or_else(|| {
        anyhow!(
            "the program list from {name} did not come within {}s",
            SCRIPT_TIMEOUT.as_secs()
        )
    })?;
    if done.code != Some(0) {
        // What the script printed is the guest's: escaped, line by line.
        let err = String::from_utf8_lossy(&done.stderr);
        let tail: Vec<String> = err.lines().rev().take(5).map(escaped).collect();
        return Err(anyhow!(
            "the PowerShell script that lists {name}'s programs failed ({})\n{}",
            done.code
                .map_or("killed".to_string(), |c| format!("exit code {c}")),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    if done.truncated {
        return Err(anyhow!(
            "the guest agent cut {name}'s program list short (too much output)"
        ));
    }
    guest_agent::parse_apps(&String::from_utf8_lossy(&done.stdout)).map(Ok)
}

/// The table, every cell escaped ([`escaped`]): the names and file types
/// are what the guest said, and a cache file holds whatever it holds.
fn print_table(ui: &Ui, apps: &[App]) {
    let rows: Vec<[String; 3]> = apps
        .iter()
        .map(|a| {
            let types = if a.types.is_empty() {
                "-".to_string()
            } else {
                a.types.join(" ")
            };
            [escaped(&a.id), escaped(&a.name), escaped(&types)]
        })
        .collect();
    let width = |i: usize, min: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .max()
            .unwrap_or(0)
            .max(min)
    };
    let (w_id, w_name) = (width(0, 2), width(1, 4));
    ui.line(format_args!("{:w_id$}  {:w_name$}  OPENS", "ID", "NAME"));
    for [id, name, types] in rows {
        ui.line(format_args!("{id:w_id$}  {name:w_name$}  {types}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(id: &str, name: &str, types: &[&str]) -> App {
        serde_json::from_value(serde_json::json!({
            "id": id, "name": name, "program": "C:\\x.exe", "types": types
        }))
        .unwrap()
    }

    #[test]
    fn the_table_lines_up_and_shows_the_guest_text_escaped() {
        let ui = Ui::capture();
        print_table(
            &ui,
            &[
                app("notepad", "Notepad", &[".txt", ".log"]),
                app("evil", "Evil\x1b[31m\u{202e}", &[]),
            ],
        );
        let said = ui.said();
        assert_eq!(
            said.out,
            "ID       NAME                  OPENS\n\
             notepad  Notepad               .txt .log\n\
             evil     Evil\\x1b[31m\\u{202e}  -\n"
        );
        assert_eq!(said.err, "");
    }
}
