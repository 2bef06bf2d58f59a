//! What the user sees: check lines (✓ ⚠ ✗), section headings, spinners with
//! elapsed time, and hints attached to errors. Colour only on a terminal and
//! never with NO_COLOR.
//!
//! Every word bkt says goes through here: commands write through the [`Ui`]
//! on their `Ctx` (which a unit test makes with [`Ui::capture`] to read what
//! was said), and `main` prints the error chain with [`print_error`]. The
//! print macros are disallowed everywhere else (clippy.toml).
// The one module that may print: the rest of bkt writes through it.
#![allow(clippy::disallowed_macros)]

use std::fmt;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use console::style;
use indicatif::{ProgressBar, ProgressStyle};

/// Honour NO_COLOR (plain pipes get none anyway) before anything is
/// printed.
pub fn init_colors(no_color: bool) {
    if no_color {
        console::set_colors_enabled(false);
        console::set_colors_enabled_stderr(false);
    }
}

pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Pass,
    Warn,
    Fail,
}

/// One line of a preflight: what was checked, what was found, and for
/// warnings and failures what to do about it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub level: Level,
    pub label: String,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub fn pass(label: &str, detail: impl Into<String>) -> Check {
        Check {
            level: Level::Pass,
            label: label.into(),
            detail: detail.into(),
            fix: None,
        }
    }
    pub fn warn(label: &str, detail: impl Into<String>) -> Check {
        Check {
            level: Level::Warn,
            label: label.into(),
            detail: detail.into(),
            fix: None,
        }
    }
    pub fn fail(label: &str, detail: impl Into<String>) -> Check {
        Check {
            level: Level::Fail,
            label: label.into(),
            detail: detail.into(),
            fix: None,
        }
    }
    pub fn fix(mut self, fix: impl Into<String>) -> Check {
        self.fix = Some(fix.into());
        self
    }
}

/// Where a command's words go: the terminal (stdout for what it reports,
/// stderr for notes, waits and progress), or, made by [`Ui::capture`] for a
/// test, a record of both streams. Cheap to clone: clones share the record.
#[derive(Clone, Default)]
pub struct Ui {
    /// The record of a capturing Ui; None writes to the terminal.
    said: Option<Arc<Mutex<Said>>>,
}

/// What a capturing [`Ui`] was told to say, each stream apart, as the user
/// would read it (colour codes removed).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Said {
    pub out: String,
    pub err: String,
}

#[derive(Clone, Copy)]
enum Stream {
    Out,
    Err,
}

impl Ui {
    /// The Ui of a run: stdout and stderr, colour as [`init_colors`] set it.
    pub fn terminal() -> Ui {
        Ui { said: None }
    }

    /// A Ui that records instead of printing, for tests; read it with
    /// [`Ui::said`]. Spinners and bars never draw, as off a terminal.
    #[cfg(test)]
    pub fn capture() -> Ui {
        Ui {
            said: Some(Arc::default()),
        }
    }

    /// What a capturing Ui recorded so far (nothing for the terminal's).
    #[cfg(test)]
    pub fn said(&self) -> Said {
        match &self.said {
            Some(s) => s.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            None => Said::default(),
        }
    }

    /// The one place bkt's words are written. On the terminal through the
    /// standard macros, so buffering is theirs: stdout flushed at each
    /// newline (before a child starts or a prompt shows), stderr unbuffered.
    fn write(&self, stream: Stream, text: fmt::Arguments<'_>) {
        match (&self.said, stream) {
            (None, Stream::Out) => print!("{text}"),
            (None, Stream::Err) => eprint!("{text}"),
            (Some(said), _) => {
                let text = console::strip_ansi_codes(&text.to_string()).into_owned();
                let mut said = said.lock().unwrap_or_else(|e| e.into_inner());
                match stream {
                    Stream::Out => said.out.push_str(&text),
                    Stream::Err => said.err.push_str(&text),
                }
            }
        }
    }

    /// A line on stdout: what the command reports.
    pub fn line(&self, text: impl fmt::Display) {
        self.write(Stream::Out, format_args!("{text}\n"));
    }

    /// Text on stdout as it is, its newlines its own (a document, a table).
    pub fn text(&self, text: impl fmt::Display) {
        self.write(Stream::Out, format_args!("{text}"));
    }

    /// A line on stderr: a note beside the report (progress said in words,
    /// a warning, what bkt waits for), kept out of a pipe's data.
    pub fn note(&self, text: impl fmt::Display) {
        self.write(Stream::Err, format_args!("{text}\n"));
    }

    /// A section heading, bold.
    pub fn heading(&self, text: &str) {
        self.line(style(text).bold());
    }

    /// A step of work: `  • label          detail`.
    pub fn step(&self, label: &str, detail: &str) {
        self.line(format_args!(
            "  {} {:<14} {detail}",
            style("•").cyan(),
            label
        ));
    }

    /// A check as one line (plus its fix) on stdout.
    pub fn check(&self, c: &Check) {
        let mark = match c.level {
            Level::Pass => style("✓").green(),
            Level::Warn => style("⚠").yellow(),
            Level::Fail => style("✗").red(),
        };
        self.line(format_args!("  {mark} {:<14} {}", c.label, c.detail));
        if let Some(fix) = &c.fix {
            self.line(format_args!("    {} {fix}", style("fix:").dim()));
        }
    }

    /// A warning on stderr: `⚠ text`.
    pub fn warn(&self, text: impl fmt::Display) {
        self.note(format_args!("{} {text}", style("⚠").yellow()));
    }

    /// A `--json` document on stdout, pretty-printed.
    pub fn json<T: serde::Serialize + ?Sized>(&self, doc: &T) -> serde_json::Result<()> {
        let text = serde_json::to_string_pretty(doc)?;
        self.line(text);
        Ok(())
    }

    /// A spinner saying `msg` (see [`Spinner`]).
    pub fn spinner(&self, msg: &str) -> Spinner {
        Spinner::start(self, Some(msg))
    }

    /// A spinner that says nothing until told what it waits for.
    pub fn quiet_spinner(&self) -> Spinner {
        Spinner::start(self, None)
    }

    /// A bar of bytes (see [`bytes_bar`]); a capturing Ui's is hidden.
    pub fn bytes_bar(&self, msg: &str, total: Option<u64>) -> ProgressBar {
        bar_of_bytes(msg, total, self.said.is_none() && stderr_is_terminal())
    }
}

/// A command line about to run, dim on stderr (`-v`).
pub fn trace(line: &str) {
    eprintln!("{}", style(line).dim());
}

/// A bar of bytes done out of `total` for a long copy, hash or download:
/// on a terminal it draws on stderr with speed and time left; elsewhere it
/// is hidden and the caller says what it does in a line.
pub fn bytes_bar(msg: &str, total: Option<u64>) -> ProgressBar {
    bar_of_bytes(msg, total, stderr_is_terminal())
}

fn bar_of_bytes(msg: &str, total: Option<u64>, drawn: bool) -> ProgressBar {
    let bar = if drawn {
        match total {
            Some(t) => ProgressBar::new(t),
            None => ProgressBar::new_spinner(),
        }
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    bar.set_message(msg.to_string());
    bar
}

/// A spinner with elapsed time for anything that waits. On a terminal it
/// animates on stderr; elsewhere it prints the message once, and the result.
pub struct Spinner {
    bar: Option<ProgressBar>,
    started: Instant,
    /// Where the lines go off a terminal.
    ui: Ui,
}

impl Spinner {
    fn start(ui: &Ui, msg: Option<&str>) -> Spinner {
        let bar = if ui.said.is_none() && stderr_is_terminal() {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} … {elapsed}")
                    .expect("static template"),
            );
            bar.set_message(msg.unwrap_or_default().to_string());
            bar.enable_steady_tick(Duration::from_millis(100));
            Some(bar)
        } else {
            if let Some(m) = msg {
                ui.note(format_args!("{m} …"));
            }
            None
        };
        Spinner {
            bar,
            started: Instant::now(),
            ui: ui.clone(),
        }
    }

    /// Say what is being waited for now. Off a terminal, print it once.
    pub fn set_message(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.set_message(msg.to_string()),
            None => self.ui.note(format_args!("{msg} …")),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stop the spinner and leave nothing behind; the caller prints the result.
    pub fn clear(self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Seconds as people say them: `12s`, `3m 05s`.
pub fn secs(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m {:02}s", s / 60, s % 60)
    }
}

/// An error with a piece of advice attached; `main` prints the advice last,
/// as `hint: ...`. It shows as the error it wraps and keeps its causes.
#[derive(Debug)]
pub struct Hinted {
    /// In the order they were attached (a hint added to a hinted error
    /// joins it instead of hiding it).
    pub hints: Vec<String>,
    inner: anyhow::Error,
}

impl fmt::Display for Hinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

impl std::error::Error for Hinted {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner.source()
    }
}

/// The hints attached anywhere in an error's chain, in order.
pub fn hints_of(e: &anyhow::Error) -> Vec<String> {
    e.chain()
        .filter_map(|c| c.downcast_ref::<Hinted>())
        .flat_map(|h| h.hints.clone())
        .collect()
}

/// Attach a hint to an error.
pub trait HintExt<T> {
    fn hint(self, hint: impl Into<String>) -> anyhow::Result<T>;
}

impl<T> HintExt<T> for anyhow::Result<T> {
    fn hint(self, hint: impl Into<String>) -> anyhow::Result<T> {
        self.map_err(|inner| match inner.downcast::<Hinted>() {
            Ok(mut h) => {
                h.hints.push(hint.into());
                anyhow::Error::new(h)
            }
            Err(inner) => anyhow::Error::new(Hinted {
                hints: vec![hint.into()],
                inner,
            }),
        })
    }
}

/// Text from outside bkt (the guest's program names, a script's errors)
/// made safe to print: control characters (C0, DEL, C1: an ESC starting a
/// terminal sequence, a CR that rewinds the line, BEL) and the invisible
/// characters that reorder or hide text (bidi overrides, isolates and
/// marks, line and paragraph separators, zero-width ones) shown as their
/// escapes, `\x1b` or `\u{202e}`, instead of acting on the terminal.
/// Everything else, backslashes included, is left as it is.
pub fn escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let hidden = matches!(
            c,
            '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{061c}'
                | '\u{feff}'
        );
        if c.is_control() && (c as u32) < 0x100 {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else if c.is_control() || hidden {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// [`escaped`] line by line: the line breaks (and tabs) of a message stay,
/// everything else that would act on the terminal is shown instead.
pub fn escaped_lines(text: &str) -> String {
    text.split('\n')
        .map(|l| l.split('\t').map(escaped).collect::<Vec<_>>().join("\t"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Print an error chain once: the messages top-down, then any hints. A
/// message may quote what a program, the host over ssh or the guest said
/// (a command's stderr): it is escaped, so that text is data, never
/// terminal control.
pub fn print_error(err: &anyhow::Error) {
    let mut messages = Vec::new();
    let mut hints = Vec::new();
    for cause in err.chain() {
        if let Some(h) = cause.downcast_ref::<Hinted>() {
            hints.extend(h.hints.iter().map(|h| escaped_lines(h)));
        }
        messages.push(escaped_lines(&cause.to_string()));
    }
    let mut first = true;
    for m in messages {
        if first {
            eprintln!("{} {m}", style("error:").red().bold());
            first = false;
        } else {
            eprintln!("{} {m}", style("caused by:").dim());
        }
    }
    for h in hints {
        eprintln!("{} {h}", style("hint:").cyan().bold());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_keeps_its_lines_and_shows_terminal_control() {
        let quoted = "virsh said:\n\x1b]0;owned\x07error:\tno\r";
        assert_eq!(
            escaped_lines(quoted),
            "virsh said:\n\\x1b]0;owned\\x07error:\tno\\x0d"
        );
    }

    #[test]
    fn escaped_shows_what_would_act_on_the_terminal() {
        // A hostile name: a title change, a colour, a CR that rewinds the
        // line, a BEL, a right-to-left override, a C1 CSI (U+009B).
        assert_eq!(
            escaped("Word\x1b]0;owned\x07\x1b[31mred\rX\u{202e}cod.exe\u{9b}2J"),
            "Word\\x1b]0;owned\\x07\\x1b[31mred\\x0dX\\u{202e}cod.exe\\x9b2J"
        );
        assert_eq!(escaped("a\tb\nc\x7f\0"), "a\\x09b\\x0ac\\x7f\\x00");
        assert_eq!(
            escaped("\u{2066}x\u{2069}\u{200b}\u{feff}\u{2028}"),
            "\\u{2066}x\\u{2069}\\u{200b}\\u{feff}\\u{2028}"
        );
        // What is only text stays as it is.
        let plain = r"Notepad++ (x86) — C:\Program Files\Ünïcode 日本語 émoji 🎉";
        assert_eq!(escaped(plain), plain);
    }

    #[test]
    fn a_capturing_ui_keeps_each_stream_apart_without_colour() {
        let ui = Ui::capture();
        ui.line(style("coloured").red().force_styling(true));
        ui.heading("Preflight");
        ui.check(&Check::pass("KVM", "usable"));
        ui.check(&Check::fail("disk", "full").fix("free some"));
        ui.step("removed", "disk.qcow2");
        ui.note("a note");
        ui.warn("tight on memory");
        ui.line("");
        ui.text("no newline");
        let said = ui.said();
        assert_eq!(
            said.out,
            "coloured\nPreflight\n  ✓ KVM            usable\n  ✗ disk           full\n    fix: free some\n  \
             • removed        disk.qcow2\n\nno newline"
        );
        assert_eq!(said.err, "a note\n⚠ tight on memory\n");
        // Clones share the record, as a Spinner's does.
        let clone = ui.clone();
        clone.note("more");
        assert_eq!(ui.said().err, "a note\n⚠ tight on memory\nmore\n");
    }

    #[test]
    fn spinners_and_bars_of_a_capturing_ui_say_their_message_in_words() {
        let ui = Ui::capture();
        let s = ui.spinner("waiting for x");
        s.set_message("waiting for y");
        s.clear();
        let quiet = ui.quiet_spinner();
        quiet.clear();
        assert!(ui.bytes_bar("copying", Some(10)).is_hidden());
        assert_eq!(
            ui.said(),
            Said {
                out: String::new(),
                err: "waiting for x …\nwaiting for y …\n".into()
            }
        );
    }

    #[test]
    fn json_is_pretty_and_ends_its_line() {
        let ui = Ui::capture();
        ui.json(&serde_json::json!({"ok": true})).unwrap();
        assert_eq!(ui.said().out, "{\n  \"ok\": true\n}\n");
    }

    #[test]
    fn seconds() {
        assert_eq!(secs(Duration::from_secs(12)), "12s");
        assert_eq!(secs(Duration::from_secs(185)), "3m 05s");
    }

    #[test]
    fn hints_are_separated_from_the_chain() {
        let e: anyhow::Result<()> = Err(anyhow::anyhow!("inner"));
        let e = e.hint("do this").unwrap_err().context("outer");
        let msgs: Vec<String> = e.chain().map(|c| c.to_string()).collect();
        assert_eq!(msgs, ["outer", "inner"]);
        let hints: Vec<&str> = e
            .chain()
            .filter_map(|c| c.downcast_ref::<Hinted>())
            .flat_map(|h| h.hints.iter().map(String::as_str))
            .collect();
        assert_eq!(hints, ["do this"]);
        let two: anyhow::Result<()> = Err(anyhow::anyhow!("inner"));
        let two = two.hint("first").hint("second").unwrap_err();
        let msgs: Vec<String> = two.chain().map(|c| c.to_string()).collect();
        assert_eq!(msgs, ["inner"]);
        assert_eq!(
            two.downcast_ref::<Hinted>().unwrap().hints,
            ["first", "second"]
        );
    }
}
