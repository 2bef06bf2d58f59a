//! Which Windows program an APP argument means, for `run` and `apps`: an id
//! (a built-in one every Windows 11 has, or one `bkt vm apps` found), a
//! full Windows path, or a program Windows finds on its own path.

use anyhow::{Result, anyhow};
use serde::{Deserialize, Serialize};

use crate::tools::guest_agent::Found;
use crate::ui::HintExt;
use crate::vm::ctx::Ctx;

/// A program in the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    /// bkt's id for it: lower-case letters, digits and `-`, at most
    /// [`MAX_ID`] of them ([`check_id`]).
    pub id: String,
    /// What people call it.
    pub name: String,
    /// What Windows runs.
    pub program: String,
    /// Fixed arguments before any file (a Store app's `shell:AppsFolder\ID`).
    #[serde(default)]
    pub args: String,
    /// Where it was found: `builtin`, `startmenu`, `apppaths`, `store`, `path`.
    #[serde(default)]
    pub source: String,
    /// Its icon, a base64 PNG.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    /// The file types it opens (`.docx`).
    #[serde(default)]
    pub types: Vec<String>,
}

/// What `bkt vm apps` keeps per VM in bkt's cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cache {
    /// When the guest was asked (seconds since 1970).
    pub found: u64,
    pub apps: Vec<App>,
}

/// The cache file of a VM's programs.
pub fn cache_file(ctx: &Ctx, vm: &str) -> String {
    format!("{}.apps.json", crate::vm::power::idle::key(ctx, vm))
}

/// The VM's programs as `bkt vm apps` last found them.
pub fn cached(ctx: &Ctx, vm: &str) -> Option<Cache> {
    let text = ctx.local.read_cache_file(&cache_file(ctx, vm))?;
    serde_json::from_str(&text).ok()
}

/// Keep what was found.
pub fn store(ctx: &Ctx, vm: &str, cache: &Cache) -> Result<()> {
    let text = serde_json::to_string_pretty(cache)?;
    ctx.local
        .write_cache_file(&cache_file(ctx, vm), &text)
        .map(|_| ())
}

/// The built-ins first, then what the guest reported, each with an id of
/// its own (`-2`, `-3` after a taken one).
pub fn from_found(found: Vec<Found>) -> Vec<App> {
    let mut apps = builtins();
    for f in found {
        let base = make_id(&f.name);
        let base = if base.is_empty() {
            make_id(stem(&f.program))
        } else {
            base
        };
        if base.is_empty() {
            continue;
        }
        // A built-in found again (its program, or its name: Windows 11's
        // Paint is a Store app) keeps its id, and gains an icon and types.
        if let Some(b) = apps.iter_mut().find(|a| {
            a.source == "builtin"
                && (a.program.eq_ignore_ascii_case(&f.program) || a.name == f.name)
        }) {
            if b.icon.is_none() {
                b.icon = f.icon;
            }
            if b.types.is_empty() {
                b.types = f.types;
            }
            continue;
        }
        let mut id = base.clone();
        let mut n = 1;
        while apps.iter().any(|a| a.id == id) {
            n += 1;
            let suffix = format!("-{n}");
            id = format!("{}{suffix}", cap(&base, MAX_ID - suffix.len()));
        }
        apps.push(App {
            id,
            name: f.name,
            program: f.program,
            args: f.args,
            source: f.source,
            icon: f.icon,
            types: f.types,
        });
    }
    apps
}

/// The programs known for a VM: what `apps` found, else the built-ins.
pub fn known(ctx: &Ctx, vm: &str) -> Vec<App> {
    cached(ctx, vm).map_or_else(builtins, |c| c.apps)
}

/// Programs every Windows 11 has, listed even when the guest agent cannot
/// be asked (id, name, program).
pub const BUILTINS: &[(&str, &str, &str)] = &[
    ("notepad", "Notepad", r"C:\Windows\System32\notepad.exe"),
    // Windows 11's Paint is a Store app; `mspaint.exe` is its alias on
    // Windows' own path.
    ("paint", "Paint", "mspaint.exe"),
    ("explorer", "File Explorer", r"C:\Windows\explorer.exe"),
    ("cmd", "Command Prompt", r"C:\Windows\System32\cmd.exe"),
    (
        "powershell",
        "Windows PowerShell",
        r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
    ),
];

/// The window class of an app's windows (`/wm-class:`), which its menu
/// entry's StartupWMClass matches.
pub fn wm_class(vm: &str, id: &str) -> String {
    format!("bkt-{vm}-{id}")
}

/// The built-in programs.
pub fn builtins() -> Vec<App> {
    BUILTINS
        .iter()
        .map(|(id, name, program)| App {
            id: id.to_string(),
            name: name.to_string(),
            program: program.to_string(),
            args: String::new(),
            source: "builtin".into(),
            icon: None,
            types: Vec::new(),
        })
        .collect()
}

/// The longest id: it becomes part of file names (`bkt-VM-ID.desktop`,
/// its icon), of a window class and of `bkt vm run VM ID`, and a program's
/// name is the guest's to choose.
pub const MAX_ID: usize = 64;

/// An id from any text: lower case, runs of anything but letters and
/// digits as one `-`, at most [`MAX_ID`] long.
pub fn make_id(text: &str) -> String {
    let mut id = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            id.push(c.to_ascii_lowercase());
        } else if !id.ends_with('-') && !id.is_empty() {
            id.push('-');
        }
    }
    cap(&id, MAX_ID).to_string()
}

/// An id cut to `max` characters (all ASCII), no `-` at its end.
fn cap(id: &str, max: usize) -> &str {
    id[..id.len().min(max)].trim_end_matches('-')
}

/// An id as [`make_id`] makes them: what a cache written by another bkt,
/// or by hand, holds is checked again before it names a file.
pub fn check_id(id: &str) -> Result<()> {
    let chars_ok = id
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if id.is_empty() || id.len() > MAX_ID || !chars_ok || id.starts_with('-') {
        return Err(anyhow!(
            "the program id \"{}\" is not one bkt makes (1 to {MAX_ID} lower-case letters, \
             digits and -; this one has {} characters)",
            crate::ui::escaped(id),
            id.chars().count()
        ));
    }
    Ok(())
}

/// The program's file name without `.exe`: `C:\x\WINWORD.EXE` → `WINWORD`.
fn stem(program: &str) -> &str {
    let file = program.rsplit(['\\', '/']).next().unwrap_or(program);
    match file.len().checked_sub(4) {
        Some(n) if file.is_char_boundary(n) && file[n..].eq_ignore_ascii_case(".exe") => &file[..n],
        _ => file,
    }
}

/// What APP means, among `known` (the built-ins and what `apps` found).
pub fn resolve(app: &str, known: &[App], vm: &str) -> Result<App> {
    if app.is_empty() || app.chars().any(|c| c.is_control()) {
        return Err(anyhow!("invalid program {app:?}"));
    }
    if let Some(a) = known.iter().find(|a| a.id.eq_ignore_ascii_case(app)) {
        check_id(&a.id)?;
        return Ok(a.clone());
    }
    let by_path = app.contains('\\') || app.contains(':');
    let on_path = stem(app).len() < app.len();
    if by_path || on_path {
        let id = make_id(stem(app));
        if id.is_empty() {
            return Err(anyhow!("invalid program {app:?}"));
        }
        // A path of a program `apps` knows gets its name.
        let name = known
            .iter()
            .find(|a| a.program.eq_ignore_ascii_case(app))
            .map_or_else(|| stem(app).to_string(), |a| a.name.clone());
        return Ok(App {
            id,
            name,
            program: app.to_string(),
            args: String::new(),
            source: "path".into(),
            icon: None,
            types: Vec::new(),
        });
    }
    Err(anyhow!("no program {app:?} known in {vm}")).hint(format!(
        "list them with `bkt vm apps {vm}`, or give its Windows path \
         ('C:\\Program Files\\...\\x.exe') or its program name (notepad.exe)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_paths_and_program_names() {
        let known = builtins();
        assert_eq!(
            resolve("Notepad", &known, "w").unwrap().program,
            BUILTINS[0].2
        );
        let word = resolve(
            r"C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE",
            &known,
            "w",
        )
        .unwrap();
        assert_eq!(
            (word.id.as_str(), word.name.as_str()),
            ("winword", "WINWORD")
        );
        let calc = resolve("calc.exe", &known, "w").unwrap();
        assert_eq!(
            (calc.id.as_str(), calc.program.as_str()),
            ("calc", "calc.exe")
        );
        let by_path = resolve(r"C:\Windows\explorer.exe", &known, "w").unwrap();
        assert_eq!(
            (by_path.id.as_str(), by_path.name.as_str()),
            ("explorer", "File Explorer")
        );
        let err = resolve("word", &known, "w").unwrap_err();
        assert_eq!(err.to_string(), "no program \"word\" known in w");
        assert!(resolve("", &known, "w").is_err());
        assert!(resolve(r"C:\.exe", &known, "w").is_err());
        assert_eq!(
            make_id("Visual Studio Code (User)"),
            "visual-studio-code-user"
        );
        assert_eq!(make_id("--Über 2--"), "ber-2");
    }

    #[test]
    fn ids_are_capped_and_checked() {
        // A name of 300 letters makes an id of 64.
        let long = "Ab".repeat(150);
        assert_eq!(make_id(&long), "ab".repeat(32));
        // No `-` left at the cut.
        let dashed = format!("{} x", "a".repeat(63));
        assert_eq!(make_id(&dashed), "a".repeat(63));
        // The same long name twice: the second id keeps within the cap.
        let f = |name: &str| Found {
            name: name.into(),
            program: "p.exe".into(),
            args: String::new(),
            source: "startmenu".into(),
            icon: None,
            types: Vec::new(),
        };
        let apps = from_found(vec![f(&long), f(&long)]);
        assert_eq!(apps[6].id, format!("{}-2", "ab".repeat(31)));
        for a in &apps {
            check_id(&a.id).unwrap();
        }
        assert_eq!(
            check_id(&"a".repeat(65)).unwrap_err().to_string(),
            format!(
                "the program id \"{}\" is not one bkt makes (1 to 64 lower-case letters, \
                 digits and -; this one has 65 characters)",
                "a".repeat(65)
            )
        );
        for bad in ["", "-x", "Word", "a/b", "..", "a b", "a\x1bb"] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
        assert!(
            check_id("a\x1b[2Jb")
                .unwrap_err()
                .to_string()
                .starts_with("the program id \"a\\x1b[2Jb\" ")
        );
    }

    #[test]
    fn found_programs_get_ids_of_their_own() {
        let f = |name: &str, program: &str| Found {
            name: name.into(),
            program: program.into(),
            args: String::new(),
            source: "startmenu".into(),
            icon: Some("PNG".into()),
            types: vec![".txt".into()],
        };
        let apps = from_found(vec![
            f("Notepad", r"C:\Windows\System32\notepad.exe"),
            f("Notepad++", r"C:\npp\notepad++.exe"),
            f("Word", "w.exe"),
            f("Word", "w2.exe"),
            f("!!!", r"C:\x\Tool.exe"),
            f("", ""),
        ]);
        let ids: Vec<&str> = apps.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "notepad",
                "paint",
                "explorer",
                "cmd",
                "powershell",
                "notepad-2",
                "word",
                "word-2",
                "tool"
            ]
        );
        assert_eq!(apps[0].icon.as_deref(), Some("PNG"));
        assert_eq!(apps[0].source, "builtin");
        assert_eq!(apps[6].types, [".txt"]);
    }
}
