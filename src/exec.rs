//! The one runner for every external program `bkt` calls.
//!
//! A [`Cmd`] is plain data (program, arguments, environment) that can be shown
//! before it runs; [`Cmd::run`] is the only place that turns one into a
//! process. Failures carry the command line, the exit status and the captured
//! stderr, so callers can match on them and users see what failed.

// why: the one runner: the only place a Cmd becomes a process.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};

static VERBOSE: AtomicBool = AtomicBool::new(false);

/// Print every command (shell-quoted, on stderr) before it runs.
pub fn set_verbose(on: bool) {
    VERBOSE.store(on, Ordering::Relaxed);
}

/// Under `-v`, show a request that is not a command (an HTTP GET), as
/// commands are shown.
pub fn log_line(line: &str) {
    if VERBOSE.load(Ordering::Relaxed) {
        crate::ui::trace(&format!("+ {line}"));
    }
}

/// An external command, not yet run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// Written to the child's stdin (closed after), instead of /dev/null.
    input: Option<Vec<u8>>,
    /// Started in a process group of its own: see [`Cmd::shielded`].
    shielded: bool,
}

/// Where an attached child's output goes.
#[derive(Debug, Clone)]
pub enum Sink {
    /// The user's terminal.
    Inherit,
    /// A log file (created 0600, appended to).
    File(std::path::PathBuf),
}

/// What a finished command printed.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The output of `cmd` when it succeeded; else the error carrying what
    /// it said, as [`Cmd::run`] returns it.
    pub fn checked(self, cmd: &Cmd) -> Result<Output, ExecError> {
        if self.status.success() {
            Ok(self)
        } else {
            Err(ExecError::Failed {
                cmd: cmd.display(),
                status: Status::of(&self.status),
                stderr: self.stderr,
            })
        }
    }
}

/// How a command that ran ended, for callers that match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// It exited with this code.
    Code(i32),
    /// A signal ended it: its number and name (`SIGTERM`).
    Signal(i32, &'static str),
    /// Neither (should not happen on Unix).
    Unknown,
}

impl Status {
    fn of(status: &ExitStatus) -> Status {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => Status::Code(code),
            (None, Some(sig)) => Status::Signal(sig, signal_name(sig)),
            (None, None) => Status::Unknown,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Code(code) => write!(f, "exit status: {code}"),
            Status::Signal(sig, name) => write!(f, "killed by signal {sig} ({name})"),
            Status::Unknown => f.write_str("unknown exit status"),
        }
    }
}

/// Why a command did not succeed. The runner says *what* failed; callers
/// add *why* and what to do (e.g. which package provides a missing
/// program: `crate::tools::program_error`).
#[derive(Debug)]
pub enum ExecError {
    /// The program is not on PATH.
    NotFound { program: String },
    /// It ran and exited unsuccessfully (or was killed by a signal).
    Failed {
        cmd: String,
        status: Status,
        stderr: String,
    },
    /// It could not be started for another reason.
    Io { cmd: String, err: io::Error },
}

impl ExecError {
    /// The captured stderr, when the command ran.
    pub fn stderr(&self) -> &str {
        match self {
            ExecError::Failed { stderr, .. } => stderr,
            _ => "",
        }
    }

    /// How it ended, when it ran.
    pub fn status(&self) -> Option<Status> {
        match self {
            ExecError::Failed { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// How many trailing lines of stderr an error shows.
const STDERR_TAIL_LINES: usize = 20;

impl fmt::Display for ExecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecError::NotFound { program } => write!(f, "command not found: `{program}`"),
            ExecError::Failed {
                cmd,
                status,
                stderr,
                ..
            } => {
                write!(f, "`{cmd}` failed ({status})")?;
                let stderr = stderr.trim_end();
                if !stderr.is_empty() {
                    let lines: Vec<&str> = stderr.lines().collect();
                    let tail = &lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..];
                    write!(f, "\n--- stderr\n{}", tail.join("\n"))?;
                }
                Ok(())
            }
            ExecError::Io { cmd, err } => write!(f, "could not run `{cmd}`: {err}"),
        }
    }
}

impl std::error::Error for ExecError {}

/// Quote one word for a POSIX shell, only when it needs it.
pub fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn signal_name(sig: i32) -> &'static str {
    use signal_hook::consts::*;
    match sig {
        SIGINT => "SIGINT",
        SIGKILL => "SIGKILL",
        SIGTERM => "SIGTERM",
        SIGSEGV => "SIGSEGV",
        SIGABRT => "SIGABRT",
        SIGPIPE => "SIGPIPE",
        SIGHUP => "SIGHUP",
        _ => "signal",
    }
}

impl Cmd {
    pub fn new(program: impl Into<String>) -> Self {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            input: None,
            shielded: false,
        }
    }

    /// Feed `bytes` to the child's stdin (a domain XML to `virsh define
    /// /dev/stdin`): data that should not sit in a file or on argv.
    pub fn input(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.input = Some(bytes.into());
        self
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Its arguments, as the program gets them.
    pub fn arguments(&self) -> &[String] {
        &self.args
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Start it in a process group of its own, so that the terminal's
    /// Ctrl-C (sent to the foreground group) does not reach it: for a step
    /// that must finish once begun, while `bkt` notes the interruption and
    /// stops after it (see `crate::interrupt`).
    pub fn shielded(mut self) -> Self {
        self.shielded = true;
        self
    }

    /// This command, then `after` once it has ended however it ended, its
    /// exit status kept (`/bin/sh -c '"$@"; s=$?; AFTER; exit $s' sh
    /// PROGRAM ARGS...`, the environment as it was; `after`'s output
    /// discarded): for what must last exactly as long as a detached child.
    pub fn followed_by(self, after: &Cmd) -> Cmd {
        let script = format!("\"$@\"; s=$?; {} >/dev/null 2>&1; exit $s", after.display());
        Cmd {
            program: "/bin/sh".into(),
            args: ["-c".to_string(), script, "sh".to_string(), self.program]
                .into_iter()
                .chain(self.args)
                .collect(),
            ..self
        }
    }

    /// The command as a user could paste it into a shell (environment
    /// settings are left out: they only pin the language of the output).
    pub fn display(&self) -> String {
        std::iter::once(&self.program)
            .chain(self.args.iter())
            .map(|w| shell_quote(w))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn expression(&self) -> duct::Expression {
        let args: Vec<OsString> = self.args.iter().map(OsString::from).collect();
        let mut expr = duct::cmd(&self.program, args);
        for (k, v) in &self.env {
            expr = expr.env(k, v);
        }
        if self.shielded {
            expr = expr.before_spawn(|c| {
                std::os::unix::process::CommandExt::process_group(c, 0);
                Ok(())
            });
        }
        expr
    }

    fn log(&self) {
        if VERBOSE.load(Ordering::Relaxed) {
            crate::ui::trace(&format!("+ {}", self.display()));
        }
    }

    /// A program that could not be started: missing, or another reason.
    fn spawn_error(&self, err: io::Error) -> ExecError {
        if err.kind() == io::ErrorKind::NotFound {
            ExecError::NotFound {
                program: self.program.clone(),
            }
        } else {
            ExecError::Io {
                cmd: self.display(),
                err,
            }
        }
    }

    /// Run to completion with stdin closed and stdout/stderr captured. A
    /// non-zero exit is an error carrying the captured output.
    pub fn run(&self) -> Result<Output, ExecError> {
        self.run_unchecked()?.checked(self)
    }

    /// Run with stdout going into `file` (opened by the caller, so it has
    /// the caller's mode from its first byte) and stderr captured; a
    /// non-zero exit is an error as in [`Cmd::run`].
    pub fn run_into(&self, file: std::fs::File) -> Result<(), ExecError> {
        self.log();
        let res = self
            .expression()
            .stdin_null()
            .stdout_file(file)
            .stderr_capture()
            .unchecked()
            .run();
        match res {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(ExecError::Failed {
                cmd: self.display(),
                status: Status::of(&o.status),
                stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            }),
            Err(err) => Err(self.spawn_error(err)),
        }
    }

    /// Run and return stdout; see [`Cmd::run`].
    pub fn stdout(&self) -> Result<String, ExecError> {
        self.run().map(|o| o.stdout)
    }

    /// Run to completion without treating a non-zero exit as an error.
    pub fn run_unchecked(&self) -> Result<Output, ExecError> {
        self.log();
        // A child that ends without reading its input is its failure to
        // report, not bkt's death by SIGPIPE.
        let _pipe_errors = self
            .input
            .as_ref()
            .map(|_| crate::interrupt::PipeErrors::new());
        let expr = match &self.input {
            Some(bytes) => self.expression().stdin_bytes(bytes.clone()),
            None => self.expression().stdin_null(),
        };
        let res = expr.stdout_capture().stderr_capture().unchecked().run();
        match res {
            Ok(o) => Ok(Output {
                status: o.status,
                stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            }),
            Err(err) => Err(self.spawn_error(err)),
        }
    }
}

impl Cmd {
    /// Run to completion with stdin fed from `from` (a file too big to
    /// hold in memory: an ISO going to a host over ssh), `sent` told the
    /// bytes written so far after each chunk; stdout and stderr captured,
    /// a non-zero exit an error as in [`Cmd::run`]. A child that ends
    /// before reading everything ends the feeding (its error is the one
    /// returned).
    pub fn run_feeding(
        &self,
        from: &mut dyn io::Read,
        sent: &mut dyn FnMut(u64),
    ) -> Result<Output, ExecError> {
        use std::io::Write;
        self.log();
        let _pipe_errors = crate::interrupt::PipeErrors::new();
        let (reader, mut writer) = io::pipe().map_err(|err| self.spawn_error(err))?;
        // The expression (and with it our copy of the pipe's reading end)
        // is gone once the child has started: a child that dies makes our
        // writes fail instead of block.
        let handle = self
            .expression()
            .stdin_file(reader)
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .start()
            .map_err(|err| self.spawn_error(err))?;
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        let fed: io::Result<()> = loop {
            let n = match from.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(e),
            };
            if let Err(e) = writer.write_all(&buf[..n]) {
                break Err(e);
            }
            total += n as u64;
            sent(total);
            // A SIGTERM (or a Ctrl-C noted while the child was being
            // started) reached bkt, not the child: stop feeding it.
            if crate::interrupt::happened() {
                let _ = handle.kill();
                return Err(ExecError::Io {
                    cmd: self.display(),
                    err: io::Error::new(io::ErrorKind::Interrupted, "interrupted"),
                });
            }
        };
        drop(writer);
        let o = handle.wait().map_err(|err| self.spawn_error(err))?;
        let out = Output {
            status: o.status,
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        };
        if !out.status.success() {
            return Err(ExecError::Failed {
                cmd: self.display(),
                status: Status::of(&out.status),
                stderr: out.stderr,
            });
        }
        // The child took what it read and succeeded, but we could not
        // give it everything.
        fed.map_err(|err| ExecError::Io {
            cmd: self.display(),
            err,
        })?;
        Ok(out)
    }
}

impl Cmd {
    /// A helper that lives while bkt does and no longer (a `virsh event
    /// --loop` the idle watcher reads): no input, its output where `sink`
    /// says. Dropping the value ends it; the kernel sends it SIGTERM when
    /// bkt ends however it ends (killed too), so none is left behind.
    pub fn start_tied(&self, sink: &Sink) -> Result<Tied, ExecError> {
        let expr = self.attached(None, sink)?.before_spawn(|c| {
            // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe; it is
            // all the child does between fork and exec.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(c, || {
                    rustix::process::set_parent_process_death_signal(Some(
                        rustix::process::Signal::TERM,
                    ))
                    .map_err(io::Error::from)
                });
            }
            Ok(())
        });
        match expr.start() {
            Ok(handle) => Ok(Tied { handle }),
            Err(err) => Err(self.spawn_error(err)),
        }
    }

    /// An attached child: `stdin` written to it and then closed (how a
    /// secret reaches it without touching argv or disk), its stdout and
    /// stderr where `sink` says (a log file is created 0600, appended to).
    fn attached(&self, stdin: Option<&[u8]>, sink: &Sink) -> Result<duct::Expression, ExecError> {
        use std::os::unix::fs::OpenOptionsExt;
        self.log();
        let expr = self.expression().unchecked();
        let expr = match stdin {
            Some(bytes) => expr.stdin_bytes(bytes.to_vec()),
            None => expr.stdin_null(),
        };
        let Sink::File(path) = sink else {
            return Ok(expr);
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|err| self.spawn_error(err))?;
        let err_file = file.try_clone().map_err(|err| self.spawn_error(err))?;
        Ok(expr.stdout_file(file).stderr_file(err_file))
    }

    /// Run a long-lived interactive program (an RDP client, a viewer) to its
    /// end, attached as [`Cmd::attached`] says. Returns its exit status
    /// whatever it is: what a status means is the caller's call.
    pub fn run_attached(&self, stdin: Option<&[u8]>, sink: &Sink) -> Result<ExitStatus, ExecError> {
        // A client that ends before reading its password is not bkt's end.
        let _pipe_errors = stdin.map(|_| crate::interrupt::PipeErrors::new());
        match self.attached(stdin, sink)?.run() {
            Ok(o) => Ok(o.status),
            Err(err) => Err(self.spawn_error(err)),
        }
    }

    /// Like [`Cmd::run_attached`], but return at once: the caller polls the
    /// child and may leave it running when bkt exits (`run --detach`). The
    /// child gets its own process group, so neither Ctrl-C in bkt's terminal
    /// nor bkt's exit ends it.
    pub fn start_attached(&self, stdin: Option<&[u8]>, sink: &Sink) -> Result<Running, ExecError> {
        let expr = self.attached(stdin, sink)?.before_spawn(|c| {
            std::os::unix::process::CommandExt::process_group(c, 0);
            Ok(())
        });
        match expr.start() {
            Ok(handle) => Ok(Running { handle }),
            Err(err) => Err(self.spawn_error(err)),
        }
    }
}

impl Cmd {
    /// Last words: a small shell that waits for bkt to end, however it
    /// ends (its return, Ctrl-C, SIGTERM, SIGPIPE, SIGKILL: the pipe to its
    /// stdin closes), then runs `cmds` in turn, their output discarded.
    /// The terminal's Ctrl-C and hangup do not end it first. For what must
    /// not outlive bkt, such as a daemonised ssh master.
    pub fn on_exit(cmds: &[Cmd]) -> io::Result<Sentinel> {
        let words = cmds.iter().map(Cmd::display).collect::<Vec<_>>().join("; ");
        let (reader, writer) = io::pipe()?;
        let handle = duct::cmd(
            "/bin/sh",
            ["-c", &format!("trap '' INT HUP TERM; read _; {words}")],
        )
        .stdin_file(reader)
        .stdout_null()
        .stderr_null()
        .unchecked()
        .start()?;
        Ok(Sentinel {
            writer: Some(writer),
            handle,
        })
    }
}

/// The shell of [`Cmd::on_exit`]: its words are said when bkt ends, or
/// now by [`Sentinel::finish`].
pub struct Sentinel {
    writer: Option<io::PipeWriter>,
    handle: duct::Handle,
}

impl Sentinel {
    /// Say them now, and wait until they are said.
    pub fn finish(mut self) {
        drop(self.writer.take());
        let _ = self.handle.wait();
    }
}

/// A helper started by [`Cmd::start_tied`]: ended when this is dropped.
pub struct Tied {
    handle: duct::Handle,
}

impl Tied {
    /// Its exit status, once it has ended (None while it runs).
    pub fn try_wait(&self) -> io::Result<Option<ExitStatus>> {
        Ok(self.handle.try_wait()?.map(|o| o.status))
    }
}

impl Drop for Tied {
    fn drop(&mut self) {
        let _ = self.handle.kill();
    }
}

/// A child started by [`Cmd::start_attached`], still running or ended.
pub struct Running {
    handle: duct::Handle,
}

impl Running {
    /// Its exit status, once it has ended (None while it runs).
    pub fn try_wait(&self) -> io::Result<Option<ExitStatus>> {
        Ok(self.handle.try_wait()?.map(|o| o.status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_followed_by_another_keeps_its_status_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let done = dir.path().join("done");
        let cmd = Cmd::new("/bin/sh")
            .args(["-c", "echo \"$X\"; exit 3"])
            .env("X", "x y")
            .followed_by(
                &Cmd::new("/bin/sh")
                    .args(["-c", &format!("echo after >{}; echo noise", done.display())]),
            );
        assert_eq!(cmd.display().split(' ').next(), Some("/bin/sh"));
        let out = cmd.run_unchecked().unwrap();
        assert_eq!((out.status.code(), out.stdout.as_str()), (Some(3), "x y\n"));
        assert_eq!(std::fs::read_to_string(&done).unwrap(), "after\n");
    }

    #[test]
    fn last_words_are_said_when_bkt_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let said = dir.path().join("said");
        let words = Cmd::new("/bin/sh").args(["-c", &format!("echo bye >'{}'", said.display())]);
        // (Said too early, the master bkt keeps would end at once: every
        // command over ssh would fail; tier 2 shows they do not.)
        Cmd::on_exit(&[words]).unwrap().finish();
        assert_eq!(std::fs::read_to_string(&said).unwrap(), "bye\n");
    }

    #[test]
    fn quotes_only_what_needs_it() {
        let c = Cmd::new("virt-install")
            .arg("--name")
            .arg("win 11")
            .arg("--disk")
            .arg("path=/x/it's.qcow2,bus=virtio")
            .arg("");
        assert_eq!(
            c.display(),
            r"virt-install --name 'win 11' --disk 'path=/x/it'\''s.qcow2,bus=virtio' ''"
        );
    }

    #[test]
    fn failure_names_command_status_and_stderr_tail() {
        let c = Cmd::new("sh").args(["-c", "echo out; echo bad >&2; exit 3"]);
        let err = c.run().unwrap_err();
        assert_eq!(
            err.to_string(),
            "`sh -c 'echo out; echo bad >&2; exit 3'` failed (exit status: 3)\n--- stderr\nbad"
        );
        assert_eq!(err.stderr(), "bad\n");
    }

    #[test]
    fn empty_stderr_is_not_shown() {
        let err = Cmd::new("false").run().unwrap_err();
        assert_eq!(err.to_string(), "`false` failed (exit status: 1)");
    }

    #[test]
    fn missing_program_is_its_own_error() {
        let err = Cmd::new("xorriso-does-not-exist").run().unwrap_err();
        assert!(matches!(err, ExecError::NotFound { .. }));
        assert_eq!(
            err.to_string(),
            "command not found: `xorriso-does-not-exist`"
        );
    }

    #[test]
    fn attached_child_gets_stdin_and_logs_to_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let c = Cmd::new("sh")
            .args([
                "-c",
                "read pw; echo \"got $pw\"; echo \"env ${SETTING-unset}\" >&2; exit 3",
            ])
            .env("SETTING", "x");
        let st = c
            .run_attached(Some(b"hunter2\n"), &Sink::File(log.clone()))
            .unwrap();
        assert_eq!(st.code(), Some(3));
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "got hunter2\nenv x\n"
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&log).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn a_stream_reaches_stdin_and_its_progress_is_told() {
        let data = vec![b'x'; 3 << 20];
        let mut seen = Vec::new();
        let out = Cmd::new("wc")
            .arg("-c")
            .run_feeding(&mut &data[..], &mut |n| seen.push(n))
            .unwrap();
        assert_eq!(out.stdout.trim(), (3 << 20).to_string());
        assert_eq!(seen, [1 << 20, 2 << 20, 3 << 20]);
        // A child that reads nothing and fails: its failure, not a hang.
        let big = vec![0u8; 64 << 20];
        let e = Cmd::new("sh")
            .args(["-c", "echo full >&2; exit 4"])
            .run_feeding(&mut &big[..], &mut |_| {})
            .unwrap_err();
        assert!(e.to_string().contains("exit status: 4"), "{e}");
        assert_eq!(e.stderr(), "full\n");
    }

    #[test]
    fn input_reaches_stdin() {
        let out = Cmd::new("cat").input("<domain/>").stdout().unwrap();
        assert_eq!(out, "<domain/>");
        assert_eq!(Cmd::new("cat").stdout().unwrap(), "");
    }

    #[test]
    fn signals_are_named() {
        let err = Cmd::new("sh")
            .args(["-c", "kill -TERM $$"])
            .run()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "`sh -c 'kill -TERM $$'` failed (killed by signal 15 (SIGTERM))"
        );
        assert_eq!(err.status(), Some(Status::Signal(15, "SIGTERM")));
        let err = Cmd::new("sh").args(["-c", "exit 7"]).run().unwrap_err();
        assert_eq!(err.status(), Some(Status::Code(7)));
        let err = Cmd::new("no-such-program-here").run().unwrap_err();
        assert_eq!(err.status(), None);
    }

    #[test]
    fn a_shielded_child_has_its_own_process_group() {
        // /proc/PID/stat: "pid (comm) state ppid pgrp ...".
        let stat = |c: Cmd| -> (String, String) {
            let out = c
                .args(["-c", "read -r l </proc/$$/stat; echo \"$l\""])
                .stdout()
                .unwrap();
            let f: Vec<String> = out.split_whitespace().map(String::from).collect();
            (f[0].clone(), f[4].clone())
        };
        let (pid, group) = stat(Cmd::new("sh").shielded());
        assert_eq!(group, pid);
        let (pid, group) = stat(Cmd::new("sh"));
        assert_ne!(group, pid);
        // SAFETY: getpgrp has no preconditions.
        assert_eq!(
            group,
            rustix::process::getpgrp().as_raw_nonzero().to_string()
        );
    }
}
