//! RDP clients: finding one, telling FreeRDP 2 from 3, the argv each accepts,
//! and what their exit codes mean. The password never appears here: FreeRDP
//! reads it from stdin (`/from-stdin:force`), Remmina asks for it itself.

use crate::exec::Cmd;

/// The port Remote Desktop listens on unless told otherwise, and the one
/// clients assume when `/v:` names only the host.
pub const DEFAULT_PORT: u16 = 3389;

/// What `/v:` (or Remmina's `rdp://`) names for `host`'s `port`: the host
/// alone on the default port, else `HOST:PORT`.
pub fn server(host: &str, port: u16) -> String {
    if port == DEFAULT_PORT {
        host.to_string()
    } else {
        format!("{host}:{port}")
    }
}

/// Which client, and so which argv dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    FreeRdp2,
    FreeRdp3,
    Remmina,
}

/// A client found on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub program: String,
    pub flavor: Flavor,
    /// As the client reports it (e.g. `3.10.3`), when it does.
    pub version: Option<String>,
}

/// Candidates in order of preference. `xfreerdp` may be either major
/// version: its `/version` output decides.
pub const CANDIDATES: &[&str] = &[
    "sdl-freerdp3",
    "xfreerdp3",
    "wlfreerdp3",
    "xfreerdp",
    "remmina",
];

/// `CLIENT /version`. FreeRDP 2 needs a display even for this (without one it
/// prints only an error and exits 1): read stdout whatever the status.
pub fn version_cmd(program: &str) -> Cmd {
    Cmd::new(program).arg("/version")
}

/// Parse `This is FreeRDP version 3.10.3 (n/a)` into `3.10.3`.
pub fn parse_version(out: &str) -> Option<String> {
    out.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("This is FreeRDP version ")?;
        rest.split_whitespace().next().map(str::to_string)
    })
}

/// The FreeRDP flavor a version string means.
pub fn flavor_of(version: &str) -> Option<Flavor> {
    match version.split('.').next()?.parse::<u32>().ok()? {
        2 => Some(Flavor::FreeRdp2),
        n if n >= 3 => Some(Flavor::FreeRdp3),
        _ => None,
    }
}

/// What the user asked the session to be like.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    pub host: String,
    pub user: Option<String>,
    pub title: String,
    pub fullscreen: bool,
    /// A host directory to share into the guest.
    pub share: Option<String>,
    /// Share the clipboard both ways.
    pub clipboard: bool,
    /// The certificate bkt pinned for this VM (see [`cert_arg`]).
    pub pin: Option<String>,
}

/// FreeRDP's certificate switch. Without a pin, trust on first use: the
/// guest's self-signed certificate is accepted once and pinned (by FreeRDP,
/// by host and port; bkt then takes it as its own pin, see
/// src/vm/rdp/pins.rs), not ignored forever. With bkt's pin (a SHA-256
/// fingerprint, lowercase hex bytes joined by `:`), exactly that
/// certificate and no other, wherever the port is (a new ssh tunnel port
/// each time). Tried with scripts/rdp-standin.py: FreeRDP 2.11.7 and 3.10.3
/// both get past TLS with `/cert:deny,fingerprint:sha256:HEX` when HEX is
/// the served certificate's, and refuse another one with exit 143 and
/// "No certificate stored, automatically denying." (see [`pin_refused`]),
/// storing nothing; FreeRDP 2 refuses even the right certificate when the
/// hex has no colons, so the colons are kept.
pub fn cert_arg(pin: Option<&str>) -> String {
    match pin {
        Some(fp) => format!("/cert:deny,fingerprint:sha256:{fp}"),
        None => "/cert:tofu".into(),
    }
}

/// FreeRDP's clipboard switch. Both 2.11 and 3.10 share the clipboard
/// unless told not to (their `/help` lists `-clipboard`, "Disable Redirect
/// clipboard": fixtures/freerdp/xfreerdp{2,3}-help.txt), so off is said,
/// not left out.
fn clipboard_arg(on: bool) -> String {
    if on { "+clipboard" } else { "-clipboard" }.to_string()
}

/// Why Remmina cannot be used with the clipboard off.
pub const REMMINA_CLIPBOARD: &str =
    "Remmina cannot be told from its command line to keep the clipboard to itself";

/// The client's argv. FreeRDP gets `/from-stdin:force` so that it reads the
/// password from stdin before connecting. Remmina shares the clipboard by
/// its own settings and takes no switch for it: refused with it off.
pub fn argv(client: &Client, s: &Session) -> Result<Cmd, String> {
    let c = Cmd::new(&client.program);
    match client.flavor {
        Flavor::Remmina => {
            if !s.clipboard {
                return Err(REMMINA_CLIPBOARD.into());
            }
            let target = match &s.user {
                Some(u) => format!("rdp://{u}@{}", s.host),
                None => format!("rdp://{}", s.host),
            };
            Ok(c.arg("-c").arg(target))
        }
        Flavor::FreeRdp2 | Flavor::FreeRdp3 => {
            let mut a = vec![format!("/v:{}", s.host)];
            if let Some(u) = &s.user {
                a.push(format!("/u:{u}"));
            }
            a.push("/from-stdin:force".into());
            a.push(cert_arg(s.pin.as_deref()));
            a.push(match client.flavor {
                Flavor::FreeRdp3 => "+dynamic-resolution".into(),
                _ => "/dynamic-resolution".into(),
            });
            a.push(clipboard_arg(s.clipboard));
            a.push("/sound".into());
            if let Some(dir) = &s.share {
                a.push(format!("/drive:bkt,{dir}"));
            }
            if s.fullscreen {
                a.push("/f".into());
            }
            a.push(format!("/t:{}", s.title));
            Ok(c.args(a))
        }
    }
}

/// The clients that can open a RemoteApp window, in order of preference.
/// The SDL client's RemoteApp support is still experimental upstream, and
/// Wayland's own client has none: on Wayland, `xfreerdp` runs under
/// XWayland (which sets DISPLAY).
pub const REMOTEAPP_CANDIDATES: &[&str] = &["xfreerdp3", "xfreerdp"];

/// One Windows program in a window of its own (RDP RemoteApp).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteApp {
    pub host: String,
    pub user: String,
    /// What Windows runs: a full path (`C:\...\x.exe`) or a program on its
    /// own path (`notepad.exe`).
    pub program: String,
    /// The name FreeRDP gives the window until Windows names it.
    pub name: String,
    /// `bkt-<vm>-<app>`: what a launcher's StartupWMClass matches.
    pub wm_class: String,
    /// Arguments that come first, as a Windows command line already (a
    /// Store app's `shell:AppsFolder\ID`).
    pub fixed_args: String,
    /// The program's arguments, as Windows paths (see [`translate_files`]).
    pub args: Vec<String>,
    /// Host directories redirected as drives: (drive name, directory).
    pub drives: Vec<(String, String)>,
    /// The desktop's scale in percent, when above 100.
    pub scale: Option<u32>,
    /// Share the clipboard both ways.
    pub clipboard: bool,
    /// The certificate bkt pinned for this VM (see [`cert_arg`]).
    pub pin: Option<String>,
}

/// One argument as Windows' `CommandLineToArgvW` reads it back: quoted when
/// it holds a space or a tab (or is empty), with the backslashes before a
/// quote (and before the closing quote) doubled. Windows paths cannot hold
/// `"` (see [`translate_files`]), but the rule is kept whole.
pub fn windows_quote(arg: &str) -> String {
    if !arg.is_empty() && !arg.contains([' ', '\t', '"']) {
        return arg.to_string();
    }
    let mut out = String::from("\"");
    let mut slashes = 0usize;
    for c in arg.chars() {
        if c == '\\' {
            slashes += 1;
            continue;
        }
        if c == '"' {
            out.push_str(&"\\".repeat(slashes * 2 + 1));
        } else {
            out.push_str(&"\\".repeat(slashes));
        }
        out.push(c);
        slashes = 0;
    }
    out.push_str(&"\\".repeat(slashes * 2));
    out.push('"');
    out
}

/// One `key:value` element of a FreeRDP 3 comma-separated option (`/app:`,
/// `/drive:`), quoted so that WinPR's `CommandLineParseCommaSeparatedValues`
/// gives it back whole. As read in winpr/libwinpr/utils/cmdline.c
/// (`get_element_count`, `get_next_comma`, `CommandLineParseCommaSeparatedValuesEx`)
/// and checked against the real libwinpr3 3.10.3 of Debian:
/// - an element may be quoted, as a whole, with `'` or `"`; a comma inside
///   the quotes does not split; the quotes are removed. A quote anywhere
///   else in an element ("Invalid quoted argument"), or the element's own
///   quote inside it, is an error: there is no escape character.
/// - a list whose first and last characters are both quotes counts as
///   quoted as a whole, so the first element is never quoted here.
/// - the last element, when quoted, is cut at its last `"` (`strrchr`),
///   so only `"` may quote it, and only when it holds no other `"`.
///
/// (Newer WinPR, after 3.10, rewrote this parser with `\` escapes; see
/// FreeRDP pull request 11735. bkt targets the 3.10 rules, which Debian and
/// Ubuntu ship.)
fn csv_element(text: &str, last: bool) -> Result<String, String> {
    if !text.contains([',', '\'', '"']) {
        return Ok(text.to_string());
    }
    if !last && !text.contains('\'') {
        return Ok(format!("'{text}'"));
    }
    if !text.contains('"') {
        return Ok(format!("\"{text}\""));
    }
    Err(format!(
        "FreeRDP 3 cannot pass {text:?} in a comma-separated option: it holds both kinds of quote"
    ))
}

/// The RemoteApp argv: FreeRDP 3 takes `/app:program:...,cmd:...,name:...`
/// (the FreeRDP 2 form is refused), FreeRDP 2 `/app:PATH /app-name:NAME
/// /app-cmd:ARGS`. Remmina cannot start a RemoteApp from its command line.
pub fn remoteapp_argv(client: &Client, app: &RemoteApp) -> Result<Cmd, String> {
    let cmdline = std::iter::once(app.fixed_args.clone())
        .filter(|f| !f.is_empty())
        .chain(app.args.iter().map(|a| windows_quote(a)))
        .collect::<Vec<_>>()
        .join(" ");
    let mut a = vec![
        format!("/v:{}", app.host),
        format!("/u:{}", app.user),
        "/from-stdin:force".into(),
        cert_arg(app.pin.as_deref()),
        clipboard_arg(app.clipboard),
    ];
    match client.flavor {
        Flavor::Remmina => {
            return Err("Remmina cannot open a single Windows program (RemoteApp)".into());
        }
        Flavor::FreeRdp3 => {
            // The name last, never quoted (bkt's own text, its quotes and
            // commas dropped): the list then never starts and ends with a
            // quote, and no quoted element comes last.
            let mut parts = vec![csv_element(&format!("program:{}", app.program), false)?];
            if !cmdline.is_empty() {
                parts.push(csv_element(&format!("cmd:{cmdline}"), false)?);
            }
            parts.push(format!("name:{}", app.name.replace([',', '\'', '"'], " ")));
            a.push(format!("/app:{}", parts.join(",")));
        }
        Flavor::FreeRdp2 => {
            a.push(format!("/app:{}", app.program));
            a.push(format!("/app-name:{}", app.name));
            if !cmdline.is_empty() {
                a.push(format!("/app-cmd:{cmdline}"));
            }
        }
    }
    a.push(format!("/wm-class:{}", app.wm_class));
    for (name, dir) in &app.drives {
        let dir = match client.flavor {
            Flavor::FreeRdp3 => csv_element(dir, true)?,
            // FreeRDP 2's list parser knows no quotes at all.
            _ if dir.contains(',') => {
                return Err(format!(
                    "FreeRDP 2 cannot share a directory whose path holds a comma: {dir}"
                ));
            }
            _ => dir.clone(),
        };
        a.push(format!("/drive:{name},{dir}"));
    }
    if let Some(p) = app.scale.filter(|p| *p > 100) {
        a.extend(scale_args(p));
    }
    Ok(Cmd::new(&client.program).args(a))
}

/// The desktop's scale for FreeRDP: `/scale:` takes only 100, 140 or 180
/// (the nearest is used), `/scale-desktop:` 100 to 500.
pub fn scale_args(percent: u32) -> Vec<String> {
    let p = percent.clamp(100, 500);
    let coarse = [100u32, 140, 180]
        .into_iter()
        .min_by_key(|s| s.abs_diff(p))
        .unwrap_or(100);
    vec![format!("/scale:{coarse}"), format!("/scale-desktop:{p}")]
}

/// What `run` lets Windows see of this machine (`run --share`, `config
/// --share`). The doc comments are the `--help` text of each value.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Share {
    /// The directory of each file opened, as a drive of its own, and nothing else.
    #[default]
    Files,
    /// Your whole home (read-write) as \\tsclient\home, and the directory of each file outside it.
    Home,
    /// No drive at all: Windows sees no file of this machine (FILEs are refused).
    None,
}

impl Share {
    /// The word users type and the manifest keeps.
    pub fn as_str(self) -> &'static str {
        match self {
            Share::Files => "files",
            Share::Home => "home",
            Share::None => "none",
        }
    }

    pub fn parse(word: &str) -> Option<Share> {
        [Share::Files, Share::Home, Share::None]
            .into_iter()
            .find(|s| s.as_str() == word)
    }
}

/// Files as Windows sees them through drive redirection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Translated {
    /// Each file's Windows path, in order.
    pub paths: Vec<String>,
    /// The drives to redirect: `home` for $HOME, `bkt1`, `bkt2`, ... for
    /// the other directories.
    pub drives: Vec<(String, String)>,
}

/// One path named on the command line: absolute, symlinks resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub path: String,
    /// A directory: shared itself, not its parent.
    pub dir: bool,
}

/// Characters a Windows file name cannot hold (and control characters):
/// a Linux file whose path holds one cannot be opened from Windows.
const NOT_IN_WINDOWS_NAMES: &[char] = &['<', '>', ':', '"', '|', '?', '*', '\\'];

/// Linux paths (absolute, symlinks resolved) to what Windows sees, and the
/// drives that show it, with `share`:
/// - `Files`: each file's directory (a directory named: itself) is a drive
///   of its own, one per directory however many files it holds: `home`
///   when it is `home` itself (a file directly in it), else `bkt1`,
///   `bkt2`, ... in the order met, so two directories of the same name
///   never meet.
/// - `Home`: `home` is always a drive, and holds every file under it; a
///   file elsewhere has its directory as a drive of its own.
/// - `None`: no drive; a file is refused.
///
/// `/` is never a drive: a file directly in it is refused, with the way out.
pub fn translate_files(
    home: Option<&str>,
    files: &[Opened],
    share: Share,
) -> Result<Translated, String> {
    let mut t = Translated::default();
    let home = home
        .map(|h| h.trim_end_matches('/'))
        .filter(|h| !h.is_empty());
    if share == Share::None {
        return match files.first() {
            Some(f) => Err(format!(
                "{}: with --share none, Windows gets no drive to open it from",
                f.path
            )),
            None => Ok(t),
        };
    }
    if let (Share::Home, Some(h)) = (share, home) {
        t.drives.push(("home".into(), h.to_string()));
    }
    for f in files {
        let (dir, rest) = split_at_drive(f, home, share)?;
        let drive = drive_for(&mut t, dir, home);
        let mut win = format!("\\\\tsclient\\{drive}");
        for part in rest.split('/').filter(|p| !p.is_empty()) {
            win.push('\\');
            win.push_str(part);
        }
        t.paths.push(win);
    }
    Ok(t)
}

/// The directory a file is shared by (its drive's), and its path below it
/// without the leading `/`; refused when that directory would be `/` or
/// the path holds what a Windows name cannot.
fn split_at_drive<'a>(
    f: &'a Opened,
    home: Option<&'a str>,
    share: Share,
) -> Result<(&'a str, &'a str), String> {
    let under_home = home.and_then(|h| {
        let rest = f.path.strip_prefix(h)?;
        (rest.is_empty() || rest.starts_with('/')).then_some((h, rest))
    });
    let (dir, rest) = match under_home {
        Some((h, rest)) if share == Share::Home => (h, rest),
        _ if f.dir => (f.path.trim_end_matches('/'), ""),
        _ => {
            let (dir, _) = f
                .path
                .rsplit_once('/')
                .ok_or_else(|| format!("{}: not absolute", f.path))?;
            (dir, &f.path[dir.len()..])
        }
    };
    if dir.is_empty() {
        return Err(if f.dir {
            format!(
                "{}: bkt never shares / (the whole file system) with Windows: open a \
                 directory under it",
                f.path
            )
        } else {
            format!(
                "{}: bkt never shares / (the whole file system) with Windows, and this file \
                 is directly in it: copy it into a directory of its own and open the copy",
                f.path
            )
        });
    }
    let rest = rest.trim_start_matches('/');
    if let Some(c) = rest
        .chars()
        .find(|c| NOT_IN_WINDOWS_NAMES.contains(c) || c.is_control())
    {
        return Err(format!(
            "{}: Windows cannot open a file whose path holds {c:?}",
            f.path
        ));
    }
    Ok((dir, rest))
}

/// The drive that shows `dir`: the one already made for it, else a new
/// one (`home` for home itself, else the next `bktN`).
fn drive_for(t: &mut Translated, dir: &str, home: Option<&str>) -> String {
    if let Some((n, _)) = t.drives.iter().find(|(_, d)| d == dir) {
        return n.clone();
    }
    let n = if Some(dir) == home {
        "home".to_string()
    } else {
        format!(
            "bkt{}",
            t.drives.iter().filter(|(n, _)| n != "home").count() + 1
        )
    };
    t.drives.push((n.clone(), dir.to_string()));
    n
}

/// How a FreeRDP run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The session ran and ended (window closed, logoff, disconnect).
    Ended,
    /// It never got a session: the network or the protocol failed. Worth
    /// falling back to SPICE.
    ConnectFailed,
    /// The credentials were refused.
    AuthFailed,
    /// Anything else.
    Failed,
}

/// FreeRDP's exit codes (client/common: `freerdp_client_exit_code`), in
/// words, with what they mean for us.
pub fn explain_exit(code: i32) -> (Outcome, &'static str) {
    use Outcome::*;
    match code {
        0 => (Ended, "the session ended"),
        1 => (Ended, "disconnected"),
        2 => (Ended, "logged off"),
        3 => (Ended, "idle timeout"),
        5 => (Ended, "another session replaced this one"),
        11 | 12 => (Ended, "disconnected by the user"),
        7 => (Failed, "the server denied the connection"),
        9 => (Failed, "the user lacks the privilege to log on remotely"),
        128 => (Failed, "the client rejected its arguments"),
        // Seen here with both 2.11 and 3.10: an unknown option (23), a
        // /drive: whose directory is missing (24, FreeRDP 2).
        23 | 24 => (Failed, "the client rejected its command line"),
        131 => (ConnectFailed, "connection failed"),
        133 => (ConnectFailed, "protocol negotiation failed"),
        137 => (ConnectFailed, "connection failed"),
        139 | 140 => (ConnectFailed, "the address could not be resolved"),
        141 => (ConnectFailed, "connection failed"),
        142 => (ConnectFailed, "the RDP handshake failed"),
        143 => (ConnectFailed, "the TLS handshake failed"),
        145 => (Failed, "the connection was cancelled"),
        147 => (ConnectFailed, "connection failed (transport)"),
        150 => (ConnectFailed, "the Kerberos KDC is unreachable"),
        132 | 134 | 154 | 159 => (AuthFailed, "authentication failed"),
        135 => (AuthFailed, "the account is locked out"),
        148 | 149 | 152 => (AuthFailed, "the password has expired or must be changed"),
        151 => (AuthFailed, "the account is disabled"),
        155 => (AuthFailed, "access denied"),
        156..=158 => (AuthFailed, "the account may not log on this way"),
        _ => (Failed, "the client failed"),
    }
}

/// The line where FreeRDP's option parser says which argument it refused,
/// as 2.11 and 3.10 both print it:
/// `[ERROR][com.winpr.commandline] - Failed at index 10 [/no-such-option]: Unexpected keyword`
/// (the rest of the line after the log prefix).
pub fn rejected_argument(output: &str) -> Option<String> {
    output.lines().find_map(|l| {
        let i = l.find("Failed at index ")?;
        Some(l[i..].trim().to_string())
    })
}

/// FreeRDP's OpenSSL has no MD4, as Debian's FreeRDP 3.10 (OpenSSL 3,
/// legacy provider not loaded) logs at every connection:
///
/// `[ERROR][com.winpr.crypto.hash] - [winpr_Digest_Init_Internal]: Failed to initialize digest md4`
/// ` * md4: NTLM support not available`
///
/// NTLM, and with it Network Level Authentication to a Windows outside a
/// domain, needs MD4 (and RC4, missing for the same reason).
pub fn md4_missing(output: &str) -> bool {
    output.lines().any(|l| {
        l.contains("Failed to initialize digest md4")
            || l.contains("md4: NTLM support not available")
    })
}

/// An OpenSSL configuration that loads the legacy provider (MD4, RC4) beside
/// the default one. With `OPENSSL_CONF` naming it, Debian's xfreerdp3 3.10.3
/// no longer logs that MD4 and RC4 are missing (tried on this stack).
pub const OPENSSL_LEGACY_CNF: &str = include_str!("openssl-legacy.cnf");

/// The server FreeRDP refused because its certificate is not the one pinned
/// for it (`/cert:tofu`) at an earlier connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedCertificate {
    pub host: String,
    pub port: u16,
}

/// Find FreeRDP's report of a changed server certificate in its output
/// (stdout and stderr together, as in bkt's client log). Both 2.11 and 3.10
/// print, when they refuse a certificate that differs from the pinned one:
///
/// `!!!Certificate for 127.0.0.2:3389 (RDP-Server) has changed!!!`
///
/// and then exit 143 (TLS connect failed). The log lines around it prove
/// nothing alone: FreeRDP 3 logs "REMOTE HOST IDENTIFICATION HAS CHANGED" at
/// a first contact too, when it pins the certificate.
pub fn changed_certificate(output: &str) -> Option<ChangedCertificate> {
    output.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("!!!Certificate for ")?;
        let (addr, what) = rest.split_once(' ')?;
        if !what.ends_with(" has changed!!!") {
            return None;
        }
        let (host, port) = addr.rsplit_once(':')?;
        Some(ChangedCertificate {
            host: host.to_string(),
            port: port.parse().ok()?,
        })
    })
}

/// Whether FreeRDP refused a certificate that is not the one bkt pinned
/// (`/cert:deny,fingerprint:...`, see [`cert_arg`]). Neither version says
/// "has changed" then; both (2.11.7 and 3.10.3, against
/// scripts/rdp-standin.py) log `No certificate stored, automatically
/// denying.` and exit 143, and never when the fingerprint matches.
pub fn pin_refused(output: &str) -> bool {
    output.lines().any(|l| {
        l.trim_end()
            .ends_with("No certificate stored, automatically denying.")
    })
}

/// A SHA-256 fingerprint as FreeRDP writes and reads it: 32 bytes in
/// lowercase hex joined by `:`. Anything else is None.
pub fn fingerprint(text: &str) -> Option<String> {
    let fp = text.trim().to_ascii_lowercase();
    let ok = fp.len() == 95
        && fp.split(':').count() == 32
        && fp
            .split(':')
            .all(|b| b.len() == 2 && b.bytes().all(|c| c.is_ascii_hexdigit()));
    ok.then_some(fp)
}

/// The SHA-256 fingerprint of the (first) certificate in a PEM file, as
/// FreeRDP 3 stores a pinned one (`freerdp/server/HOST_PORT.pem`): the
/// digest of its DER bytes.
pub fn pem_fingerprint(pem: &str) -> Option<String> {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let body = pem
        .split("-----BEGIN CERTIFICATE-----")
        .nth(1)?
        .split("-----END CERTIFICATE-----")
        .next()?;
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let hex: Vec<String> = Sha256::digest(&der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(hex.join(":"))
}

/// The fingerprint FreeRDP 2 pinned in its `freerdp/known_hosts2`: a line
/// `HOST PORT FINGERPRINT SUBJECT ISSUER` (SHA-256, as in
/// fixtures/freerdp/xfreerdp2-known_hosts2.txt). The first valid line.
pub fn known_hosts2_fingerprint(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| fingerprint(l.split_whitespace().nth(2)?))
}

/// How to drop the certificate a FreeRDP pinned for a server, so that the
/// next connection pins the new one. `config` is FreeRDP's configuration
/// directory's parent as it computes it: `$XDG_CONFIG_HOME`, else
/// `$HOME/.config`. FreeRDP 2 keeps one line `HOST PORT FINGERPRINT ...` per
/// server in `freerdp/known_hosts2`; FreeRDP 3 one file per server,
/// `freerdp/server/HOST_PORT.pem` (both as its own message names them).
pub fn forget_certificate_cmd(
    flavor: Flavor,
    config: &std::path::Path,
    c: &ChangedCertificate,
) -> String {
    use crate::exec::shell_quote;
    let dir = config.join("freerdp");
    match flavor {
        Flavor::FreeRdp2 => {
            let file = dir.join("known_hosts2");
            let line = format!("^{} {} ", c.host.replace('.', "\\."), c.port);
            format!(
                "sed -i {} {}",
                shell_quote(&format!("/{line}/d")),
                shell_quote(&file.display().to_string())
            )
        }
        // FreeRDP 3 (Remmina's output is never read: it has its own dialogs).
        _ => {
            let file = dir
                .join("server")
                .join(format!("{}_{}.pem", c.host, c.port));
            format!("rm {}", shell_quote(&file.display().to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    // why: tests read fixtures and set up the files and processes they look at.
    #![allow(clippy::disallowed_methods, clippy::disallowed_types)]

    use super::*;

    #[test]
    fn server_names_the_port_only_when_not_the_default() {
        assert_eq!(server("192.168.122.57", 3389), "192.168.122.57");
        assert_eq!(server("127.0.0.1", 40123), "127.0.0.1:40123");
    }

    fn fx(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/fixtures/freerdp/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn versions() {
        let v2 = parse_version(&fx("xfreerdp2-version.txt")).unwrap();
        assert_eq!(v2, "2.11.7");
        assert_eq!(flavor_of(&v2), Some(Flavor::FreeRdp2));
        let v3 = parse_version(&fx("xfreerdp3-version.txt")).unwrap();
        assert_eq!(v3, "3.10.3");
        assert_eq!(flavor_of(&v3), Some(Flavor::FreeRdp3));
        assert_eq!(
            parse_version(&fx("sdl-freerdp3-version.txt")).as_deref(),
            Some("3.10.3")
        );
        assert_eq!(parse_version("usage: remmina"), None);
        assert_eq!(flavor_of("1.0"), None);
    }

    fn session() -> Session {
        Session {
            host: "192.168.122.57".into(),
            user: Some("anna".into()),
            title: "windows".into(),
            fullscreen: true,
            share: Some("/home/anna/Shared".into()),
            clipboard: true,
            pin: None,
        }
    }

    const PIN: &str = "b9:1b:5e:f1:b3:40:b9:c6:c9:e5:e7:3a:00:49:17:00:\
                       ed:3b:f4:7b:6f:8d:70:03:87:cf:21:47:2d:e9:3d:8e";

    #[test]
    fn a_pinned_certificate_on_argv_in_both_versions() {
        // The same switch for both: the experiment (see `cert_arg`) showed
        // both accept the colon form with the right certificate and refuse
        // another.
        for (program, flavor, dynres) in [
            ("xfreerdp", Flavor::FreeRdp2, "/dynamic-resolution"),
            ("xfreerdp3", Flavor::FreeRdp3, "+dynamic-resolution"),
        ] {
            let c = Client {
                program: program.into(),
                flavor,
                version: None,
            };
            let s = Session {
                host: "127.0.0.1:40123".into(),
                pin: Some(PIN.into()),
                fullscreen: false,
                share: None,
                ..session()
            };
            assert_eq!(
                argv(&c, &s).unwrap().arguments(),
                [
                    "/v:127.0.0.1:40123".to_string(),
                    "/u:anna".into(),
                    "/from-stdin:force".into(),
                    format!("/cert:deny,fingerprint:sha256:{PIN}"),
                    dynres.into(),
                    "+clipboard".into(),
                    "/sound".into(),
                    "/t:windows".into(),
                ]
            );
        }
        assert_eq!(cert_arg(None), "/cert:tofu");
    }

    #[test]
    fn fingerprints_of_what_freerdp_pinned() {
        // FreeRDP 3's .pem: the SHA-256 of the DER, as `openssl x509
        // -fingerprint -sha256` gives it for this file (upper case there).
        assert_eq!(
            pem_fingerprint(&fx("pinned-cert.pem")).as_deref(),
            Some(PIN)
        );
        assert_eq!(pem_fingerprint("no certificate"), None);
        assert_eq!(
            pem_fingerprint("-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n"),
            None
        );
        // FreeRDP 2's known_hosts2, as it wrote it at a first contact.
        assert_eq!(
            known_hosts2_fingerprint(&fx("xfreerdp2-known_hosts2.txt")).as_deref(),
            Some(
                "db:71:32:76:0f:40:c8:38:aa:17:01:af:ef:19:b9:2a:\
                 57:43:61:ff:58:83:c1:5d:b8:fb:42:3d:42:b5:9c:39"
            )
        );
        assert_eq!(known_hosts2_fingerprint(""), None);
        assert_eq!(known_hosts2_fingerprint("h 3389 db:71 x y\n"), None);
        // Upper case is read as lower; short, long or unseparated is not one.
        assert_eq!(fingerprint(&PIN.to_uppercase()).as_deref(), Some(PIN));
        assert_eq!(fingerprint(&PIN[3..]), None);
        assert_eq!(fingerprint(&format!("{PIN}:00")), None);
        assert_eq!(fingerprint(&PIN.replace(':', "")), None);
        assert_eq!(fingerprint(&PIN.replace(':', "-")), None);
    }

    #[test]
    fn a_refused_pin_in_both_versions() {
        // What each version logged (scripts/rdp-standin.py serving another
        // certificate than the pinned one).
        assert!(pin_refused(&fx("xfreerdp2-pin-refused.txt")));
        assert!(pin_refused(&fx("xfreerdp3-pin-refused.txt")));
        assert_eq!(changed_certificate(&fx("xfreerdp2-pin-refused.txt")), None);
        assert_eq!(changed_certificate(&fx("xfreerdp3-pin-refused.txt")), None);
        assert!(!pin_refused(&fx("xfreerdp3-cert-first.txt")));
        assert!(!pin_refused(&fx("xfreerdp2-cert-first.txt")));
    }

    #[test]
    fn freerdp3_argv() {
        let c = Client {
            program: "xfreerdp3".into(),
            flavor: Flavor::FreeRdp3,
            version: Some("3.10.3".into()),
        };
        assert_eq!(
            argv(&c, &session()).unwrap().display(),
            "xfreerdp3 /v:192.168.122.57 /u:anna /from-stdin:force /cert:tofu \
             +dynamic-resolution +clipboard /sound /drive:bkt,/home/anna/Shared /f /t:windows"
        );
    }

    #[test]
    fn freerdp2_argv() {
        let c = Client {
            program: "xfreerdp".into(),
            flavor: Flavor::FreeRdp2,
            version: Some("2.11.7".into()),
        };
        let s = Session {
            fullscreen: false,
            share: None,
            ..session()
        };
        assert_eq!(
            argv(&c, &s).unwrap().display(),
            "xfreerdp /v:192.168.122.57 /u:anna /from-stdin:force /cert:tofu \
             /dynamic-resolution +clipboard /sound /t:windows"
        );
        // The clipboard off is said, not left out: FreeRDP shares it by
        // default.
        let s = Session {
            clipboard: false,
            ..s
        };
        assert_eq!(
            argv(&c, &s).unwrap().display(),
            "xfreerdp /v:192.168.122.57 /u:anna /from-stdin:force /cert:tofu \
             /dynamic-resolution -clipboard /sound /t:windows"
        );
    }

    #[test]
    fn freerdp_shares_the_clipboard_unless_told_not_to() {
        // What makes `-clipboard` necessary: both generations' /help name
        // the switch by its way to turn it off.
        assert!(fx("xfreerdp2-help.txt").contains(
            "    -clipboard[:[use-selection:<atom>]]\n                                      Disable Redirect clipboard."
        ));
        let v3 = fx("xfreerdp3-help.txt");
        assert!(v3.contains("    [-|/]clipboard[: [[use-selection:<atom>]"));
        assert!(v3.contains("                                      Disable Redirect clipboard:\n"));
        let c = client("xfreerdp3", Flavor::FreeRdp3);
        let s = Session {
            clipboard: false,
            ..session()
        };
        assert_eq!(
            argv(&c, &s).unwrap().display(),
            "xfreerdp3 /v:192.168.122.57 /u:anna /from-stdin:force /cert:tofu \
             +dynamic-resolution -clipboard /sound /drive:bkt,/home/anna/Shared /f /t:windows"
        );
        let mut a = app(&[]);
        a.clipboard = false;
        for c in [c, client("xfreerdp", Flavor::FreeRdp2)] {
            let w = words(&remoteapp_argv(&c, &a).unwrap());
            assert_eq!(
                w[..5],
                [
                    "/v:127.0.0.1",
                    "/u:anna",
                    "/from-stdin:force",
                    "/cert:tofu",
                    "-clipboard"
                ]
            );
            assert!(!w.contains(&"+clipboard".to_string()), "{w:?}");
        }
    }

    #[test]
    fn remmina_argv() {
        let c = Client {
            program: "remmina".into(),
            flavor: Flavor::Remmina,
            version: None,
        };
        assert_eq!(
            argv(&c, &session()).unwrap().display(),
            "remmina -c rdp://anna@192.168.122.57"
        );
        // Remmina shares the clipboard by its own settings: no switch.
        let s = Session {
            clipboard: false,
            ..session()
        };
        assert_eq!(argv(&c, &s).unwrap_err(), REMMINA_CLIPBOARD);
    }

    fn opened(files: &[&str]) -> Vec<Opened> {
        files
            .iter()
            .map(|f| Opened {
                path: f.to_string(),
                dir: f.ends_with('/'),
            })
            .collect()
    }

    /// Notepad with `files`, as `run --share home` gives them (the
    /// quoting below was recorded so: fixtures/freerdp/winpr3-csv-parse.txt).
    fn app(files: &[&str]) -> RemoteApp {
        app_sharing(Share::Home, files)
    }

    fn app_sharing(share: Share, files: &[&str]) -> RemoteApp {
        let t = translate_files(Some("/home/anna"), &opened(files), share).unwrap();
        RemoteApp {
            host: "127.0.0.1".into(),
            user: "anna".into(),
            program: r"C:\Windows\System32\notepad.exe".into(),
            name: "Notepad".into(),
            wm_class: "bkt-windows-notepad".into(),
            fixed_args: String::new(),
            args: t.paths,
            drives: t.drives,
            scale: None,
            clipboard: true,
            pin: None,
        }
    }

    #[test]
    fn a_pinned_certificate_on_remoteapp_argv_in_both_versions() {
        for c in [
            client("xfreerdp", Flavor::FreeRdp2),
            client("xfreerdp3", Flavor::FreeRdp3),
        ] {
            let tofu = remoteapp_argv(&c, &app(&[])).unwrap();
            let pinned = RemoteApp {
                pin: Some(PIN.into()),
                ..app(&[])
            };
            let mut want = tofu.arguments().to_vec();
            assert_eq!(want[3], "/cert:tofu");
            want[3] = format!("/cert:deny,fingerprint:sha256:{PIN}");
            assert_eq!(remoteapp_argv(&c, &pinned).unwrap().arguments(), want);
        }
    }

    fn client(program: &str, flavor: Flavor) -> Client {
        Client {
            program: program.into(),
            flavor,
            version: None,
        }
    }

    /// The arguments as the client gets them (no shell quoting to read
    /// through).
    fn words(c: &Cmd) -> Vec<String> {
        c.arguments().to_vec()
    }

    #[test]
    fn remoteapp_freerdp3_quotes_for_winpr() {
        let c = client("xfreerdp3", Flavor::FreeRdp3);
        let a = app(&["/home/anna/Documents/Q3, final.docx", "/tmp/x y/é.txt"]);
        assert_eq!(
            words(&remoteapp_argv(&c, &a).unwrap()),
            [
                "/v:127.0.0.1",
                "/u:anna",
                "/from-stdin:force",
                "/cert:tofu",
                "+clipboard",
                r#"/app:program:C:\Windows\System32\notepad.exe,'cmd:"\\tsclient\home\Documents\Q3, final.docx" \\tsclient\bkt1\é.txt',name:Notepad"#,
                "/wm-class:bkt-windows-notepad",
                "/drive:home,/home/anna",
                "/drive:bkt1,/tmp/x y",
            ]
        );
        // No files: no cmd; the desktop's scale; a comma in a shared
        // directory quoted with " (the last element).
        let mut a = app_sharing(Share::Files, &["/srv/a,b/x.txt"]);
        a.args.clear();
        a.scale = Some(150);
        assert_eq!(
            words(&remoteapp_argv(&c, &a).unwrap())[5..],
            [
                r"/app:program:C:\Windows\System32\notepad.exe,name:Notepad",
                "/wm-class:bkt-windows-notepad",
                "/drive:bkt1,\"/srv/a,b\"",
                "/scale:140",
                "/scale-desktop:150",
            ]
        );
        // A file name with ' and no space needs no Windows quotes: "-quoted
        // for WinPR. With a space as well it needs both kinds: refused.
        let a = app(&["/home/anna/it's.txt"]);
        assert_eq!(
            words(&remoteapp_argv(&c, &a).unwrap())[5],
            r#"/app:program:C:\Windows\System32\notepad.exe,"cmd:\\tsclient\home\it's.txt",name:Notepad"#
        );
        let a = app(&["/home/anna/it's here.txt"]);
        assert_eq!(
            remoteapp_argv(&c, &a).unwrap_err(),
            r#"FreeRDP 3 cannot pass "cmd:\"\\\\tsclient\\home\\it's here.txt\"" in a comma-separated option: it holds both kinds of quote"#
        );
        // The name's commas and quotes are dropped, never quoted.
        let mut a = app(&[]);
        a.name = "Bob's, \"best\"".into();
        assert!(words(&remoteapp_argv(&c, &a).unwrap())[5].ends_with(",name:Bob s   best "));
    }

    /// What the real WinPR 3.10.3 parser made of the values bkt builds
    /// (fixtures/freerdp/winpr3-csv-parse.txt): each input, its elements.
    fn winpr_parses() -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for l in fx("winpr3-csv-parse.txt").lines() {
            let inner = |l: &str| l[l.find('[').unwrap() + 1..l.len() - 1].to_string();
            if l.starts_with("IN ") {
                out.push((inner(l), Vec::new()));
            } else {
                out.last_mut().unwrap().1.push(inner(l));
            }
        }
        out
    }

    #[test]
    fn the_real_winpr_reads_back_what_bkt_meant() {
        let c = client("xfreerdp3", Flavor::FreeRdp3);
        let parsed = winpr_parses();
        let first = app(&["/home/anna/Documents/Q3, final.docx", "/tmp/x y/é.txt"]);
        let second = app(&["/home/anna/it's.txt"]);
        for (i, a) in [first, second].iter().enumerate() {
            let value = words(&remoteapp_argv(&c, a).unwrap())[5]
                .strip_prefix("/app:")
                .unwrap()
                .to_string();
            assert_eq!(parsed[i].0, value);
            let cmd = a.args.iter().map(|x| windows_quote(x)).collect::<Vec<_>>();
            assert_eq!(
                parsed[i].1,
                [
                    format!("program:{}", a.program),
                    format!("cmd:{}", cmd.join(" ")),
                    "name:Notepad".into()
                ]
            );
        }
        let drive = app(&["/srv/a,b/x.txt"]);
        let w = words(&remoteapp_argv(&c, &drive).unwrap());
        assert_eq!(format!("/drive:{}", parsed[2].0), *w.last().unwrap());
        assert_eq!(parsed[2].1, ["bkt1", "/srv/a,b"]);
    }

    #[test]
    fn remoteapp_freerdp2_and_remmina() {
        let c = client("xfreerdp", Flavor::FreeRdp2);
        let a = app(&[
            "/home/anna/Documents/Q3, final.docx",
            "/home/anna/it's here.txt",
        ]);
        assert_eq!(
            remoteapp_argv(&c, &a).unwrap().display(),
            r#"xfreerdp /v:127.0.0.1 /u:anna /from-stdin:force /cert:tofu +clipboard '/app:C:\Windows\System32\notepad.exe' /app-name:Notepad '/app-cmd:"\\tsclient\home\Documents\Q3, final.docx" "\\tsclient\home\it'\''s here.txt"' /wm-class:bkt-windows-notepad /drive:home,/home/anna"#
        );
        assert_eq!(
            remoteapp_argv(&c, &app(&["/srv/a,b/x.txt"])).unwrap_err(),
            "FreeRDP 2 cannot share a directory whose path holds a comma: /srv/a,b"
        );
        assert_eq!(
            remoteapp_argv(&client("remmina", Flavor::Remmina), &app(&[])).unwrap_err(),
            "Remmina cannot open a single Windows program (RemoteApp)"
        );
    }

    fn drives(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn shared(share: Share, files: &[&str]) -> Result<Translated, String> {
        translate_files(Some("/home/anna/"), &opened(files), share)
    }

    #[test]
    fn by_default_only_the_directories_of_the_files_opened() {
        // In $HOME directly (its directory is $HOME: shared, as `home`), in
        // a subdirectory, two in one directory, same-named directories in
        // different places, a directory named itself.
        let r = shared(
            Share::Files,
            &[
                "/home/anna/notes.txt",
                "/home/anna/Dokumente/Größe, «x».odt",
                "/home/anna/Dokumente/b.txt",
                "/media/usb/Dokumente/c.txt",
                "/home/anna/Projects/",
                "/home/anna/",
            ],
        )
        .unwrap();
        assert_eq!(
            r.paths,
            [
                r"\\tsclient\home\notes.txt",
                r"\\tsclient\bkt1\Größe, «x».odt",
                r"\\tsclient\bkt1\b.txt",
                r"\\tsclient\bkt2\c.txt",
                r"\\tsclient\bkt3",
                r"\\tsclient\home",
            ]
        );
        assert_eq!(
            r.drives,
            drives(&[
                ("home", "/home/anna"),
                ("bkt1", "/home/anna/Dokumente"),
                ("bkt2", "/media/usb/Dokumente"),
                ("bkt3", "/home/anna/Projects"),
            ])
        );
        // $HOME only when a file sits directly in it: a file deeper down
        // brings its own directory alone.
        let r = shared(Share::Files, &["/home/anna/a/b/c.txt"]).unwrap();
        assert_eq!(r.drives, drives(&[("bkt1", "/home/anna/a/b")]));
        assert_eq!(r.paths, [r"\\tsclient\bkt1\c.txt"]);
        // A home of the same name's prefix is not $HOME.
        let r = shared(Share::Files, &["/home/anna2/x.txt"]).unwrap();
        assert_eq!(r.drives, drives(&[("bkt1", "/home/anna2")]));
        // No file: no drive.
        assert_eq!(shared(Share::Files, &[]).unwrap(), Translated::default());
    }

    #[test]
    fn a_symlinked_directory_is_shared_as_its_target() {
        // `run` resolves the symlinks (canonicalize) before the mapping:
        // the drive is the real directory, never the link's.
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real dir");
        std::fs::create_dir(&real).unwrap();
        std::fs::write(real.join("a.txt"), "x").unwrap();
        std::os::unix::fs::symlink(&real, tmp.path().join("link")).unwrap();
        let file = std::fs::canonicalize(tmp.path().join("link/a.txt")).unwrap();
        let file = file.to_str().unwrap();
        let r = shared(Share::Files, &[file]).unwrap();
        let real = std::fs::canonicalize(&real).unwrap();
        assert_eq!(r.drives, drives(&[("bkt1", real.to_str().unwrap())]));
        assert_eq!(r.paths, [r"\\tsclient\bkt1\a.txt"]);
    }

    #[test]
    fn never_slash() {
        for share in [Share::Files, Share::Home] {
            assert_eq!(
                shared(share, &["/home/anna/a.txt", "/notes.txt"]).unwrap_err(),
                "/notes.txt: bkt never shares / (the whole file system) with Windows, and this \
                 file is directly in it: copy it into a directory of its own and open the copy"
            );
            assert_eq!(
                shared(share, &["/"]).unwrap_err(),
                "/: bkt never shares / (the whole file system) with Windows: open a directory \
                 under it"
            );
        }
        // A home at / is no home: each file brings its directory.
        let r = translate_files(Some("/"), &opened(&["/srv/x"]), Share::Home).unwrap();
        assert_eq!(r.drives, drives(&[("bkt1", "/srv")]));
    }

    #[test]
    fn share_home_and_share_none() {
        let r = shared(
            Share::Home,
            &[
                "/home/anna/Dokumente/Größe, «x».odt",
                "/home/anna2/x.txt",
                "/media/usb/a.txt",
                "/home/anna2/y.txt",
                "/home/anna/Projects/",
            ],
        )
        .unwrap();
        assert_eq!(
            r.paths,
            [
                r"\\tsclient\home\Dokumente\Größe, «x».odt",
                r"\\tsclient\bkt1\x.txt",
                r"\\tsclient\bkt2\a.txt",
                r"\\tsclient\bkt1\y.txt",
                r"\\tsclient\home\Projects",
            ]
        );
        assert_eq!(
            r.drives,
            drives(&[
                ("home", "/home/anna"),
                ("bkt1", "/home/anna2"),
                ("bkt2", "/media/usb"),
            ])
        );
        // Asked for, home is shared with no file too.
        assert_eq!(
            shared(Share::Home, &[]).unwrap().drives,
            drives(&[("home", "/home/anna")])
        );
        // No home: every directory a drive of its own.
        let r = translate_files(None, &opened(&["/home/anna/x"]), Share::Home).unwrap();
        assert_eq!(r.paths, [r"\\tsclient\bkt1\x"]);
        assert_eq!(shared(Share::None, &[]).unwrap(), Translated::default());
        assert_eq!(
            shared(Share::None, &["/home/anna/x.txt"]).unwrap_err(),
            "/home/anna/x.txt: with --share none, Windows gets no drive to open it from"
        );
        assert_eq!(Share::parse("home"), Some(Share::Home));
        assert_eq!(Share::parse("Home"), None);
        assert_eq!(Share::default().as_str(), "files");
    }

    #[test]
    fn names_windows_cannot_open() {
        assert_eq!(
            shared(Share::Home, &["/home/anna/a:b.txt"]).unwrap_err(),
            "/home/anna/a:b.txt: Windows cannot open a file whose path holds ':'"
        );
        assert_eq!(
            shared(Share::Files, &["/tmp/a\\b"]).unwrap_err(),
            "/tmp/a\\b: Windows cannot open a file whose path holds '\\\\'"
        );
        // Only the part below the drive counts: a ':' in the shared
        // directory itself is FreeRDP's business, not Windows'.
        assert_eq!(
            shared(Share::Files, &["/srv/a:b/x.txt"]).unwrap().paths,
            [r"\\tsclient\bkt1\x.txt"]
        );
    }

    #[test]
    fn windows_command_line_quoting() {
        assert_eq!(windows_quote(r"C:\x\y.txt"), r"C:\x\y.txt");
        assert_eq!(windows_quote("a b"), "\"a b\"");
        assert_eq!(windows_quote(""), "\"\"");
        assert_eq!(windows_quote(r"C:\my dir\"), r#""C:\my dir\\""#);
        assert_eq!(windows_quote(r#"say "hi""#), r#""say \"hi\"""#);
        assert_eq!(windows_quote(r#"a\"b c"#), r#""a\\\"b c""#);
    }

    #[test]
    fn scale_follows_the_desktop() {
        assert_eq!(scale_args(100), ["/scale:100", "/scale-desktop:100"]);
        assert_eq!(scale_args(125), ["/scale:140", "/scale-desktop:125"]);
        assert_eq!(scale_args(200), ["/scale:180", "/scale-desktop:200"]);
        assert_eq!(scale_args(900), ["/scale:180", "/scale-desktop:500"]);
    }

    #[test]
    fn the_refused_argument() {
        assert_eq!(
            rejected_argument(
                "[13:10:27:416] [29881:000074b9] [ERROR][com.winpr.commandline] - [log_error]: \
                 Failed at index 8 [/no-such-option]: Unexpected keyword\nUsage: ..."
            )
            .as_deref(),
            Some("Failed at index 8 [/no-such-option]: Unexpected keyword")
        );
        assert_eq!(rejected_argument(&fx("xfreerdp3-nla-md4.txt")), None);
    }

    #[test]
    fn md4_missing_in_debians_freerdp3() {
        // Recorded at a first contact (TLS only) and at an NLA login.
        assert!(md4_missing(&fx("xfreerdp3-cert-first.txt")));
        assert!(md4_missing(&fx("xfreerdp3-nla-md4.txt")));
        // FreeRDP 2 and FreeRDP 3 with the legacy provider loaded do not.
        assert!(!md4_missing(&fx("xfreerdp2-cert-first.txt")));
        assert!(!md4_missing(&fx("xfreerdp3-legacy-provider.txt")));
    }

    #[test]
    fn exit_codes() {
        assert_eq!(explain_exit(0).0, Outcome::Ended);
        assert_eq!(
            explain_exit(147),
            (Outcome::ConnectFailed, "connection failed (transport)")
        );
        assert_eq!(
            explain_exit(132),
            (Outcome::AuthFailed, "authentication failed")
        );
        assert_eq!(explain_exit(99).0, Outcome::Failed);
        assert_eq!(
            explain_exit(23),
            (Outcome::Failed, "the client rejected its command line")
        );
        // As recorded: the stand-ins hang up after TLS, or after the NLA
        // AUTHENTICATE (147); a changed certificate is refused (143).
        let code = |name: &str| -> i32 { fx(name).trim().parse().unwrap() };
        for name in [
            "xfreerdp2-cert-first.code",
            "xfreerdp3-cert-first.code",
            "xfreerdp3-nla-md4.code",
            "xfreerdp3-legacy-provider.code",
        ] {
            assert_eq!(
                explain_exit(code(name)),
                (Outcome::ConnectFailed, "connection failed (transport)"),
                "{name}"
            );
        }
        for name in ["xfreerdp2-cert-changed.code", "xfreerdp3-cert-changed.code"] {
            assert_eq!(
                explain_exit(code(name)),
                (Outcome::ConnectFailed, "the TLS handshake failed"),
                "{name}"
            );
        }
    }

    #[test]
    fn a_changed_certificate_in_both_versions() {
        let at = |host: &str, port| {
            Some(ChangedCertificate {
                host: host.into(),
                port,
            })
        };
        assert_eq!(
            changed_certificate(&fx("xfreerdp2-cert-changed.txt")),
            at("127.0.0.2", 3389)
        );
        assert_eq!(
            changed_certificate(&fx("xfreerdp3-cert-changed.txt")),
            at("127.0.0.2", 3389)
        );
        // A first contact pins the certificate; FreeRDP 3 logs "REMOTE HOST
        // IDENTIFICATION HAS CHANGED" then as well.
        assert_eq!(changed_certificate(&fx("xfreerdp2-cert-first.txt")), None);
        assert_eq!(changed_certificate(&fx("xfreerdp3-cert-first.txt")), None);
        assert_eq!(changed_certificate(&fx("xfreerdp3-version.txt")), None);
        assert_eq!(
            changed_certificate("!!!Certificate for h:3390 (RDP-Gateway) has changed!!!\n"),
            at("h", 3390)
        );
        assert_eq!(
            changed_certificate("!!!Certificate for h:x (RDP-Server) has changed!!!"),
            None
        );
        assert_eq!(
            changed_certificate("!!!Certificate for h:3389 (RDP-Server) is new!!!"),
            None
        );
        assert_eq!(
            changed_certificate("!!!Certificate for h3389 has changed!!!"),
            None
        );
    }

    /// Run a hint's command with `sh`, as the user would paste it.
    fn sh(cmd: &str) {
        let st = std::process::Command::new("sh")
            .args(["-c", cmd])
            .status()
            .unwrap();
        assert!(st.success(), "{cmd}");
    }

    #[test]
    fn forgetting_a_pinned_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("my config");
        let c = ChangedCertificate {
            host: "127.0.0.2".into(),
            port: 3389,
        };
        let cmd = forget_certificate_cmd(Flavor::FreeRdp2, &config, &c);
        let file = config.join("freerdp/known_hosts2");
        assert_eq!(
            cmd,
            format!("sed -i '/^127\\.0\\.0\\.2 3389 /d' '{}'", file.display())
        );
        // FreeRDP 2's own file, with other servers around the one to drop.
        let pinned = fx("xfreerdp2-known_hosts2.txt");
        let others = [
            pinned.replace("127.0.0.2 3389 ", "127.0.0.2 3390 "),
            pinned.replace("127.0.0.2 3389 ", "127.0.0.23 3389 "),
            pinned.replace("127.0.0.2 3389 ", "127.0.0.21 3389 "),
        ];
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(
            &file,
            format!("{}{pinned}{}{}", others[0], others[1], others[2]),
        )
        .unwrap();
        sh(&cmd);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), others.concat());

        let cmd = forget_certificate_cmd(Flavor::FreeRdp3, &config, &c);
        let file = config.join("freerdp/server/127.0.0.2_3389.pem");
        assert_eq!(cmd, format!("rm '{}'", file.display()));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, "pinned").unwrap();
        std::fs::write(config.join("freerdp/server/127.0.0.2_3390.pem"), "other").unwrap();
        sh(&cmd);
        assert!(!file.exists());
        assert!(config.join("freerdp/server/127.0.0.2_3390.pem").exists());
    }
}
