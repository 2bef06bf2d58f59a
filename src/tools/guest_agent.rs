//! Running a program in the guest through the QEMU guest agent
//! (`virsh qemu-agent-command NAME '{"execute":"guest-exec",...}'`, then
//! `guest-exec-status` until it has exited), and the PowerShell script that
//! lists the programs installed in Windows for `bkt vm apps`.
//!
//! The JSON shapes are QEMU's (qga/qapi-schema.json: `GuestExec`,
//! `GuestExecStatus`); virsh prints the agent's reply as it is.

use anyhow::{Context, Result, anyhow};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;

/// The program that runs the discovery script: found on Windows' own path
/// (and on the path of the end-to-end tier's Linux stand-in guest).
pub const POWERSHELL: &str = "powershell.exe";

/// Lists the programs installed in Windows: the targets of the Start Menu
/// shortcuts (all users and each user), the App Paths registry key, and the
/// Store apps (`Get-StartApps`, started through `explorer.exe
/// shell:AppsFolder\ID`). Each with its icon as a base64 PNG (none for Store
/// apps) and the file types it declares (`HKCR\Applications\EXE\SupportedTypes`).
/// Prints one line of JSON in the format of fixtures/guest/apps-script-output.json.
/// Only a Windows guest can run it: the tests check its output format, not
/// the script itself.
pub const APPS_PS1: &str = r#"$ErrorActionPreference = 'SilentlyContinue'
[Console]::OutputEncoding = [Text.Encoding]::UTF8
Add-Type -AssemblyName System.Drawing
$apps = [ordered]@{}
function Icon($path) {
  if (-not $path) { return $null }
  $i = [System.Drawing.Icon]::ExtractAssociatedIcon($path)
  if (-not $i) { return $null }
  $ms = New-Object System.IO.MemoryStream
  $i.ToBitmap().Save($ms, [System.Drawing.Imaging.ImageFormat]::Png)
  [Convert]::ToBase64String($ms.ToArray())
}
function Types($exe) {
  $k = "Registry::HKEY_CLASSES_ROOT\Applications\$(Split-Path $exe -Leaf)\SupportedTypes"
  if (Test-Path $k) { @((Get-Item $k).Property | Where-Object { $_ -like '.*' } | Sort-Object -Unique) } else { @() }
}
function Add($name, $program, $extra, $source, $icon) {
  if (-not $program -or $apps.Contains($name)) { return }
  $apps[$name] = [ordered]@{ name = $name; program = $program; args = $extra; source = $source
    icon = (Icon $icon); types = @(Types $program) }
}
$shell = New-Object -ComObject WScript.Shell
$dirs = @("$env:ProgramData\Microsoft\Windows\Start Menu\Programs") +
  @(Get-ChildItem 'C:\Users\*\AppData\Roaming\Microsoft\Windows\Start Menu\Programs' -Directory | ForEach-Object FullName)
foreach ($d in $dirs) {
  Get-ChildItem $d -Recurse -Filter *.lnk | ForEach-Object {
    $t = $shell.CreateShortcut($_.FullName).TargetPath
    if ($t -like '*.exe' -and (Test-Path $t)) { Add $_.BaseName $t '' 'startmenu' $t }
  }
}
Get-ChildItem 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\App Paths' | ForEach-Object {
  $t = "$($_.GetValue(''))".Trim('"')
  if ($t -like '*.exe' -and (Test-Path $t)) { Add ($_.PSChildName -replace '\.exe$', '') $t '' 'apppaths' $t }
}
Get-StartApps | Where-Object { $_.AppID -like '*!*' } | ForEach-Object {
  Add $_.Name 'explorer.exe' "shell:AppsFolder\$($_.AppID)" 'store' $null
}
[ordered]@{ version = 1; apps = @($apps.Values) } | ConvertTo-Json -Depth 4 -Compress
"#;

/// The script for `-EncodedCommand`: base64 of its UTF-16LE text, so that
/// no quoting stands between it and PowerShell.
pub fn encoded_command(script: &str) -> String {
    let utf16: Vec<u8> = script.encode_utf16().flat_map(u16::to_le_bytes).collect();
    B64.encode(utf16)
}

/// The agent command that starts `path` with `args`, its output captured.
pub fn exec_request(path: &str, args: &[String]) -> String {
    serde_json::json!({
        "execute": "guest-exec",
        "arguments": { "path": path, "arg": args, "capture-output": true },
    })
    .to_string()
}

/// The agent command that asks how the program `pid` is doing.
pub fn status_request(pid: i64) -> String {
    serde_json::json!({ "execute": "guest-exec-status", "arguments": { "pid": pid } }).to_string()
}

#[derive(Deserialize)]
struct Reply<T> {
    #[serde(rename = "return")]
    ret: T,
}

#[derive(Deserialize)]
struct ExecReturn {
    pid: i64,
}

/// The pid in the agent's answer to `guest-exec`: `{"return":{"pid":N}}`.
pub fn parse_exec(out: &str) -> Result<i64> {
    let r: Reply<ExecReturn> = serde_json::from_str(out.trim())
        .context("reading the guest agent's answer to guest-exec")?;
    Ok(r.ret.pid)
}

#[derive(Deserialize)]
struct StatusReturn {
    exited: bool,
    exitcode: Option<i32>,
    signal: Option<i32>,
    #[serde(rename = "out-data")]
    out_data: Option<String>,
    #[serde(rename = "err-data")]
    err_data: Option<String>,
    #[serde(rename = "out-truncated", default)]
    out_truncated: bool,
}

/// A program the agent ran, once it has exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exited {
    /// Its exit code (None when a signal ended it).
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The agent kept only the start of its output.
    pub truncated: bool,
}

/// The agent's answer to `guest-exec-status`: None while the program runs.
pub fn parse_status(out: &str) -> Result<Option<Exited>> {
    let r: Reply<StatusReturn> = serde_json::from_str(out.trim())
        .context("reading the guest agent's answer to guest-exec-status")?;
    let s = r.ret;
    if !s.exited {
        return Ok(None);
    }
    let decode = |d: Option<String>| -> Result<Vec<u8>> {
        d.map(|d| B64.decode(d.as_bytes()))
            .transpose()
            .map(Option::unwrap_or_default)
            .map_err(|e| anyhow!("the guest agent's output is not base64: {e}"))
    };
    Ok(Some(Exited {
        code: if s.signal.is_some() { None } else { s.exitcode },
        stdout: decode(s.out_data)?,
        stderr: decode(s.err_data)?,
        truncated: s.out_truncated,
    }))
}

/// One program as the discovery script reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Found {
    pub name: String,
    pub program: String,
    /// Fixed arguments before any file (a Store app's `shell:AppsFolder\ID`).
    #[serde(default)]
    pub args: String,
    pub source: String,
    /// A PNG, base64.
    pub icon: Option<String>,
    #[serde(default)]
    pub types: Vec<String>,
}

#[derive(Deserialize)]
struct Listing {
    version: u32,
    apps: Vec<Found>,
}

/// The discovery script's output (fixtures/guest/apps-script-output.json).
pub fn parse_apps(out: &str) -> Result<Vec<Found>> {
    // PowerShell may start its UTF-8 output with a byte-order mark.
    let text = out.trim_start_matches('\u{feff}').trim();
    let l: Listing =
        serde_json::from_str(text).context("reading the program list the guest printed")?;
    if l.version != 1 {
        return Err(anyhow!(
            "the guest's program list has version {}, bkt knows 1",
            l.version
        ));
    }
    Ok(l.apps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fx(name: &str) -> String {
        crate::tools::fixture(&format!("guest/{name}"))
    }

    #[test]
    fn requests() {
        assert_eq!(
            exec_request(POWERSHELL, &["-NoProfile".into(), "a\"b".into()]),
            r#"{"arguments":{"arg":["-NoProfile","a\"b"],"capture-output":true,"path":"powershell.exe"},"execute":"guest-exec"}"#
        );
        assert_eq!(
            status_request(1234),
            r#"{"arguments":{"pid":1234},"execute":"guest-exec-status"}"#
        );
        // -EncodedCommand: UTF-16LE, base64.
        assert_eq!(encoded_command("dir"), "ZABpAHIA");
        assert_eq!(
            B64.decode(encoded_command(APPS_PS1)).unwrap().len(),
            APPS_PS1.encode_utf16().count() * 2
        );
    }

    #[test]
    fn exec_and_status_replies() {
        assert_eq!(parse_exec(&fx("guest-exec.json")).unwrap(), 141);
        assert_eq!(
            parse_status(&fx("guest-exec-status-running.json")).unwrap(),
            None
        );
        let done = parse_status(&fx("guest-exec-status-exited.json"))
            .unwrap()
            .unwrap();
        assert_eq!(done.code, Some(0));
        assert!(!done.truncated);
        let apps = parse_apps(&String::from_utf8(done.stdout).unwrap()).unwrap();
        assert_eq!(apps.len(), 3);
        assert!(parse_exec("{}").is_err());
    }

    #[test]
    fn the_scripts_output_format() {
        let apps = parse_apps(&fx("apps-script-output.json")).unwrap();
        let names: Vec<&str> = apps.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["Word", "Notepad++", "Calculator"]);
        assert_eq!(
            apps[0].program,
            r"C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE"
        );
        assert_eq!(apps[0].types, [".doc", ".docx", ".rtf"]);
        assert_eq!(
            apps[2].args,
            r"shell:AppsFolder\Microsoft.WindowsCalculator_8wekyb3d8bbwe!App"
        );
        assert_eq!(apps[2].icon, None);
        // The icons are PNGs.
        let png = B64.decode(apps[0].icon.as_ref().unwrap()).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // The file ends with LF (the stand-in's); Windows PowerShell ends
        // its line with CRLF.
        assert!(fx("apps-script-output.json").ends_with("]}\n"));
        assert_eq!(
            parse_apps(&fx("apps-script-output.json").replace('\n', "\r\n")).unwrap(),
            apps
        );
        assert!(parse_apps("{\"version\":2,\"apps\":[]}").is_err());
        assert_eq!(
            parse_apps("\u{feff}{\"version\":1,\"apps\":[]}").unwrap(),
            []
        );
    }
}
