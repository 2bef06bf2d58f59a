//! Which Windows program an APP argument means, for `run` and `apps`: an id
//! (a built-in one every Windows 11 has, or one `bkt vm apps` found), a
//! full Windows path, or a program Windows finds on its own path.

use anyhow::{Result, anyhow};

use crate::ui::HintExt;

/// A program in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// bkt's id for it: lower-case letters, digits and `-`.
    pub id: String,
    /// What people call it.
    pub name: String,
    /// What Windows runs.
    pub program: String,
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

/// The built-in programs.
pub fn builtins() -> Vec<App> {
    BUILTINS
        .iter()
        .map(|(id, name, program)| App {
            id: id.to_string(),
            name: name.to_string(),
            program: program.to_string(),
        })
        .collect()
}

/// An id from any text: lower case, runs of anything but letters and
/// digits as one `-`.
pub fn make_id(text: &str) -> String {
    let mut id = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            id.push(c.to_ascii_lowercase());
        } else if !id.ends_with('-') && !id.is_empty() {
            id.push('-');
        }
    }
    id.trim_end_matches('-').to_string()
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
}
