//! `bkt completions` and `bkt man`: shell completion scripts and man pages,
//! made from the clap definitions (`cli.rs`, each command's `XxxArgs`), so
//! they say what `--help` says and cannot drift from it.

use std::io::{self, Write};
use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, roman};

use crate::cli::{Cli, Shell};
use crate::ui::HintExt;
use crate::vm::ctx::Local;

/// Where `man` finds pages of programs in ~/.cargo/bin (man-db looks for
/// share/man beside every directory of PATH).
const MAN_DIR_EXAMPLE: &str = "~/.cargo/share/man/man1";

/// `bkt completions SHELL`: the script on stdout.
pub fn completions(shell: Shell) -> Result<()> {
    print_stdout(&completion_script(shell))
        .context("cannot print the completion script")
        .hint("redirect it into the file your shell reads (`bkt completions --help` says which)")
}

/// `bkt man [DIR]`: every page into DIR, or bkt.1 on stdout.
pub fn man(dir: Option<&Path>, local: &Local) -> Result<()> {
    let pages = pages();
    let Some(dir) = dir else {
        return print_stdout(pages[0].roff.as_bytes())
            .context("cannot print the man page")
            .hint(format!(
                "write the pages into a directory instead: `bkt man {MAN_DIR_EXAMPLE}`"
            ));
    };
    local
        .create_dir_all(dir)
        .with_context(|| format!("cannot make the man page directory {}", dir.display()))
        .hint(format!(
            "give a directory you may write to, e.g. `bkt man {MAN_DIR_EXAMPLE}` (man finds \
             pages there for programs in ~/.cargo/bin)"
        ))?;
    let mut written = String::new();
    for page in &pages {
        let path = dir.join(&page.file_name);
        local
            .write(&path, page.roff.as_bytes())
            .with_context(|| format!("cannot write the man page {}", path.display()))
            .hint(format!(
                "make sure {} can be written (nothing else of that name in the way), or give \
                 another directory",
                path.display()
            ))?;
        written += &format!("{}\n", path.display());
    }
    print_stdout(written.as_bytes())
        .context("cannot print the paths of the man pages")
        .hint(format!(
            "all {} pages are written in {}",
            pages.len(),
            dir.display()
        ))
}

/// Write all of it to stdout, or say why not (a full disk: `> /dev/full`);
/// `println!` would panic instead.
fn print_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}

impl From<Shell> for clap_complete::Shell {
    fn from(shell: Shell) -> clap_complete::Shell {
        match shell {
            Shell::Bash => clap_complete::Shell::Bash,
            Shell::Zsh => clap_complete::Shell::Zsh,
            Shell::Fish => clap_complete::Shell::Fish,
        }
    }
}

pub fn completion_script(shell: Shell) -> Vec<u8> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(
        clap_complete::Shell::from(shell),
        &mut cmd,
        "bkt",
        &mut script,
    );
    if shell == Shell::Fish {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            fish_extra(sub, &mut vec![sub.get_name()], &mut script);
        }
    }
    script
}

/// What clap_complete's fish script (4.6) leaves out, from the same clap
/// tree: values of positional arguments (clap-rs/clap#6295; `bkt
/// completions <Tab>` would list files) and the options of commands three
/// levels down (`bkt vm snapshot revert --<Tab>` would not offer --yes). The
/// lines use the script's own helper for "this subcommand is in use", so
/// `path` (the subcommand's words after `bkt`) is never empty.
fn fish_extra<'a>(cmd: &'a clap::Command, path: &mut Vec<&'a str>, script: &mut Vec<u8>) {
    let mut cond = String::new();
    for (i, name) in path.iter().enumerate() {
        cond += &match i {
            0 => format!("__fish_bkt_using_subcommand {name}"),
            _ => format!("; and __fish_seen_subcommand_from {name}"),
        };
    }
    let mut lines = String::new();
    for arg in cmd.get_positionals().filter(|a| !a.is_hide_set()) {
        let values: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| v.get_name().to_string())
            .collect();
        if values.is_empty() {
            continue;
        }
        let all = values.join(" ");
        for v in &values {
            lines += &format!(
                "complete -c bkt -n \"{cond}; and not __fish_seen_subcommand_from {all}\" -f -a \"{v}\"\n"
            );
        }
    }
    if path.len() >= 3 {
        for opt in cmd
            .get_arguments()
            .filter(|a| !a.is_positional() && !a.is_hide_set())
        {
            let mut line = format!("complete -c bkt -n \"{cond}\"");
            if let Some(short) = opt.get_short() {
                line += &format!(" -s {short}");
            }
            if let Some(long) = opt.get_long() {
                line += &format!(" -l {long}");
            }
            if let Some(help) = opt.get_help() {
                let help = help.to_string().replace('\\', "\\\\").replace('\'', "\\'");
                line += &format!(" -d '{help}'");
            }
            if opt.get_num_args().is_some_and(|n| n.takes_values()) {
                line += " -r";
            }
            lines += &line;
            lines.push('\n');
        }
    }
    script.extend_from_slice(lines.as_bytes());
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        path.push(sub.get_name());
        fish_extra(sub, path, script);
        path.pop();
    }
}

/// One man page: its file name (`bkt-vm-create.1`) and its roff source.
pub struct Page {
    pub file_name: String,
    pub roff: String,
}

/// Every page: bkt.1 first, then each command's, a parent before its
/// subcommands. `bkt help` is no command of its own and has none.
pub fn pages() -> Vec<Page> {
    let mut top = Cli::command().disable_help_subcommand(true);
    // Gives each subcommand its display name (bkt-vm-create) and bin name.
    top.build();
    let source = format!("bkt {}", top.get_version().unwrap_or_default());
    let mut pages = Vec::new();
    add_pages(&top, &source, &mut pages);
    pages
}

fn add_pages(cmd: &clap::Command, source: &str, pages: &mut Vec<Page>) {
    pages.push(page(cmd, source));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        add_pages(sub, source, pages);
    }
}

/// clap_mangen's page, but for the parts it renders poorly: the NAME line
/// (the top command's about starts with `bkt:`), and the after-help text,
/// which it prints as one filled EXTRA section where example commands get
/// hyphenated. Its "Examples:", "Files:" and "Environment:" blocks become
/// sections of those names with their lines kept; a plain paragraph becomes
/// NOTES. The footer names bkt and its version on every page.
fn page(cmd: &clap::Command, source: &str) -> Page {
    let name = cmd.get_display_name().unwrap_or(cmd.get_name()).to_string();
    let man = Man::new(cmd.clone())
        .title(name.to_uppercase())
        .source(source);
    // The parts each start with roff's definition of the apostrophe
    // string; the page needs it once, before its title.
    let mut roff = Roff::new().render();
    roff.push_str(&render(|w| man.render_title(w)));
    roff.push_str(&name_section(cmd, &name));
    roff.push_str(&render(|w| man.render_synopsis_section(w)));
    roff.push_str(&render(|w| man.render_description_section(w)));
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        roff.push_str(&render(|w| man.render_options_section(w)));
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        roff.push_str(&render(|w| man.render_subcommands_section(w)));
    }
    if let Some(after) = cmd.get_after_long_help().or(cmd.get_after_help()) {
        roff.push_str(&after_help_sections(&after.to_string()));
    }
    if cmd.get_version().is_some() {
        roff.push_str(&render(|w| man.render_version_section(w)));
    }
    Page {
        file_name: format!("{name}.1"),
        roff,
    }
}

/// The roff of one part, without the apostrophe definition.
fn render(part: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> String {
    let mut buf = Vec::new();
    part(&mut buf).expect("writing to a Vec cannot fail");
    let text = String::from_utf8(buf).expect("clap's text is UTF-8");
    let preamble = Roff::new().render();
    text.strip_prefix(&preamble).unwrap_or(&text).to_string()
}

fn name_section(cmd: &clap::Command, name: &str) -> String {
    let about = cmd.get_about().map(|a| a.to_string()).unwrap_or_default();
    let prefix = format!("{}: ", cmd.get_name());
    let about = about.strip_prefix(&prefix).unwrap_or(&about);
    let mut roff = Roff::new();
    roff.control("SH", ["NAME"])
        .text([roman(format!("{name} - {about}"))]);
    render(|w| roff.to_writer(w))
}

/// The after-help text as man sections, in the order man-pages(7) gives
/// them: ENVIRONMENT, FILES, NOTES, EXAMPLES.
fn after_help_sections(text: &str) -> String {
    let mut sections: Vec<(String, Vec<&str>, bool)> = Vec::new();
    for block in text.split("\n\n") {
        let mut lines = block.lines();
        let first = lines.next().unwrap_or_default();
        let body: Vec<&str> = lines.collect();
        match first.strip_suffix(':') {
            Some(title)
                if !title.contains(' ')
                    && !body.is_empty()
                    && body.iter().all(|l| l.starts_with("  ")) =>
            {
                let body = body.iter().map(|l| &l[2..]).collect();
                sections.push((title.to_uppercase(), body, true));
            }
            _ => sections.push((
                "NOTES".to_string(),
                block.lines().map(str::trim).collect(),
                false,
            )),
        }
    }
    let rank = |title: &str| {
        ["ENVIRONMENT", "FILES", "NOTES", "EXAMPLES"]
            .iter()
            .position(|t| *t == title)
            .unwrap_or(usize::MAX)
    };
    sections.sort_by_key(|(title, _, _)| rank(title));
    let mut roff = Roff::new();
    let mut last = String::new();
    for (title, lines, keep_lines) in sections {
        if title == last {
            roff.control("PP", []);
        } else {
            roff.control("SH", [title.as_str()]);
        }
        if keep_lines {
            // No filling, so no hyphenation: commands read as typed.
            roff.control("nf", []);
            for line in lines {
                roff.text([roman(line)]);
            }
            roff.control("fi", []);
        } else {
            roff.text([roman(lines.join(" "))]);
        }
        last = title;
    }
    render(|w| roff.to_writer(w))
}

#[cfg(test)]
mod tests {
    // why: tests read fixtures and set up the files and processes they look at.
    #![allow(clippy::disallowed_methods, clippy::disallowed_types)]

    use super::*;

    /// Every command a user can type, as its words after `bkt`, with its
    /// clap definition (clap's own `help` subcommands left out).
    fn commands() -> Vec<(Vec<String>, clap::Command)> {
        fn walk(cmd: &clap::Command, path: &[String], out: &mut Vec<(Vec<String>, clap::Command)>) {
            out.push((path.to_vec(), cmd.clone()));
            for sub in cmd
                .get_subcommands()
                .filter(|s| s.get_name() != "help" && !s.is_hide_set())
            {
                let mut p = path.to_vec();
                p.push(sub.get_name().to_string());
                walk(sub, &p, out);
            }
        }
        let mut top = Cli::command();
        top.build();
        let mut out = Vec::new();
        walk(&top, &[], &mut out);
        out
    }

    fn script(shell: Shell) -> String {
        String::from_utf8(completion_script(shell)).unwrap()
    }

    /// Complete each line in a real bash the way `complete -F` does: the
    /// script's function called with the command, the word at the cursor
    /// and the one before, COMP_WORDS and COMP_CWORD set. Each answer is
    /// COMPREPLY's words, then `compopt ...` for each option the function
    /// asked readline for (directory names, file names). The first answer
    /// is `complete -p bkt`: what the script registered.
    fn bash_complete(lines: &[&str], cwd: &Path) -> Vec<Vec<String>> {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(&completion_script(Shell::Bash)).unwrap();
        let driver = r#"
            compopt() { asked+=("compopt $*"); }
            source "$1" || exit 1
            complete -p bkt; echo '--'
            while IFS= read -r line; do
                read -ra COMP_WORDS <<<"$line"
                [[ $line == *' ' ]] && COMP_WORDS+=('')
                COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
                COMP_LINE=$line COMP_POINT=${#line} COMPREPLY=() asked=()
                _bkt bkt "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
                for w in "${COMPREPLY[@]}" "${asked[@]}"; do printf '%s\n' "$w"; done
                echo '--'
            done"#;
        let mut child = std::process::Command::new("bash")
            .args(["--norc", "--noprofile", "-c", driver, "bash"])
            .arg(file.path())
            .current_dir(cwd)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let mut answers: Vec<Vec<String>> = text
            .split_terminator("--\n")
            .map(|a| a.lines().map(String::from).collect())
            .collect();
        assert_eq!(answers.len(), lines.len() + 1, "{text}");
        assert_eq!(
            answers.remove(0),
            ["complete -o bashdefault -o default -o nosort -F _bkt bkt"]
        );
        answers
    }

    #[test]
    fn bash_answers_as_at_the_tab_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Win11.iso"), "").unwrap();
        std::fs::create_dir(dir.path().join("isos")).unwrap();
        let lines = [
            "bkt ",
            "bkt vm sn",
            "bkt vm snapshot ",
            "bkt vm snapshot re",
            "bkt vm snapshot revert w s --",
            "bkt vm create --virt-type ",
            "bkt vm create --virt-type q",
            "bkt vm create --vi",
            "bkt completions ",
            "bkt completions f",
            "bkt vm connect w --share ",
            "bkt vm create --iso ",
            "bkt vm create --unattended --password-file W",
        ];
        let got = bash_complete(&lines, dir.path());
        let want: [&[&str]; 13] = [
            &[
                "-h",
                "-V",
                "--help",
                "--version",
                "vm",
                "completions",
                "man",
                "help",
            ],
            &["snapshot"],
            &[
                "-c",
                "-v",
                "-h",
                "-V",
                "--connect",
                "--verbose",
                "--help",
                "--version",
                "create",
                "list",
                "revert",
                "delete",
                "help",
            ],
            &["revert"],
            &["--yes", "--connect", "--verbose", "--help", "--version"],
            &["kvm", "qemu"],
            &["qemu"],
            &[
                "--virtio-iso",
                "--virt-type",
                "--virtio-url",
                "--virtio-sha256",
            ],
            &["-h", "-V", "--help", "--version", "bash", "zsh", "fish"],
            &["fish"],
            // Nothing of its own: readline adds the directories.
            &["compopt -o plusdirs"],
            &["isos", "Win11.iso", "compopt -o filenames"],
            &["Win11.iso", "compopt -o filenames"],
        ];
        for ((line, got), want) in lines.iter().zip(&got).zip(want) {
            let mut got = got.clone();
            let mut want: Vec<String> = want.iter().map(|w| w.to_string()).collect();
            if line.ends_with("--iso ") {
                // compgen -f lists in directory order.
                got.sort();
                want.sort();
            }
            assert_eq!(got, want, "at `{line}`");
        }
    }

    /// At `bkt PATH <Tab>` bash offers exactly that command's options, the
    /// values of its arguments, and its subcommands: for every command.
    #[test]
    fn bash_offers_every_command_and_option() {
        let cmds = commands();
        let lines: Vec<String> = cmds
            .iter()
            .map(|(path, _)| {
                format!(
                    "bkt {}",
                    path.iter().map(|w| format!("{w} ")).collect::<String>()
                )
            })
            .collect();
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let got = bash_complete(&lines, Path::new("/"));
        for ((line, got), (_, cmd)) in lines.iter().zip(got).zip(&cmds) {
            let mut want: Vec<String> = Vec::new();
            for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
                want.extend(arg.get_short().map(|s| format!("-{s}")));
                want.extend(arg.get_long().map(|l| format!("--{l}")));
                if arg.is_positional() {
                    want.extend(
                        arg.get_possible_values()
                            .iter()
                            .map(|v| v.get_name().to_string()),
                    );
                }
            }
            want.extend(cmd.get_subcommands().map(|s| s.get_name().to_string()));
            let mut got = got;
            got.sort();
            want.sort();
            assert_eq!(got, want, "at `{line}`");
        }
        let paths: Vec<String> = cmds.iter().map(|(p, _)| p.join(" ")).collect();
        assert!(
            paths.contains(&"vm snapshot revert".to_string()),
            "{paths:?}"
        );
    }

    /// zsh and fish cannot be counted on to be installed; their scripts
    /// must at least name every command and every option.
    #[test]
    fn zsh_and_fish_name_every_command_and_option() {
        let zsh = script(Shell::Zsh);
        let fish = script(Shell::Fish);
        assert!(zsh.starts_with("#compdef bkt\n"), "{zsh}");
        for (path, cmd) in commands() {
            if let Some(name) = path.last() {
                assert!(zsh.contains(&format!("'{name}:")), "zsh: no {name}");
                assert!(
                    fish.contains(&format!("-f -a \"{name}\"")),
                    "fish: no {name}"
                );
            }
            for long in cmd.get_arguments().filter_map(|a| a.get_long()) {
                let offered = [format!("--{long}["), format!("--{long}=[")];
                assert!(
                    offered.iter().any(|o| zsh.contains(o)),
                    "zsh: no --{long} in {path:?}"
                );
                assert!(
                    fish.contains(&format!("-l {long}")),
                    "fish: no --{long} in {path:?}"
                );
            }
        }
        assert!(zsh.contains(":VIRT_TYPE:((kvm\\:"), "{zsh}");
        assert!(
            zsh.contains(":PATH:_files -/' \\"),
            "--share completes directories"
        );
    }

    /// What `fish_extra` adds, with the helper it relies on still there.
    #[test]
    fn fish_gets_argument_values_and_deep_options() {
        let fish = script(Shell::Fish);
        assert!(
            fish.contains("\nfunction __fish_bkt_using_subcommand\n"),
            "{fish}"
        );
        for line in [
            r#"complete -c bkt -n "__fish_bkt_using_subcommand completions; and not __fish_seen_subcommand_from bash zsh fish" -f -a "zsh""#,
            r#"complete -c bkt -n "__fish_bkt_using_subcommand vm; and __fish_seen_subcommand_from create; and not __fish_seen_subcommand_from windows" -f -a "windows""#,
            r#"complete -c bkt -n "__fish_bkt_using_subcommand vm; and __fish_seen_subcommand_from snapshot; and __fish_seen_subcommand_from revert" -s y -l yes -d 'Do not ask for confirmation'"#,
            r#"complete -c bkt -n "__fish_bkt_using_subcommand vm; and __fish_seen_subcommand_from snapshot; and __fish_seen_subcommand_from create" -l description -d 'What this state is (shown by `list`)' -r"#,
            r#"complete -c bkt -n "__fish_bkt_using_subcommand vm; and __fish_seen_subcommand_from connect" -l share -d 'Share a host directory into Windows (RDP drive redirection)' -r -f -a "(__fish_complete_directories)""#,
        ] {
            assert!(fish.lines().any(|l| l == line), "missing {line}");
        }
        // Exactly the options of `snapshot revert`, and nothing for its
        // arguments (they have no fixed values).
        let revert: Vec<&str> = fish
            .lines()
            .filter(|l| l.contains("; and __fish_seen_subcommand_from revert\""))
            .collect();
        let cond = "complete -c bkt -n \"__fish_bkt_using_subcommand vm; and \
                    __fish_seen_subcommand_from snapshot; and __fish_seen_subcommand_from revert\"";
        assert_eq!(
            revert,
            [
                format!("{cond} -s y -l yes -d 'Do not ask for confirmation'"),
                format!("{cond} -s c -l connect -d 'libvirt connection URI' -r"),
                format!(
                    "{cond} -s v -l verbose -d 'Print every external command, shell-quoted, before it runs'"
                ),
                // --connect has more to say under --help.
                format!("{cond} -s h -l help -d 'Print help (see more with \\'--help\\')'"),
                format!("{cond} -s V -l version -d 'Print version'"),
            ]
        );
        // Three levels down only a flag or a free value: fish_extra writes
        // no value lists or path hints for options there.
        for (path, cmd) in commands().iter().filter(|(p, _)| p.len() >= 3) {
            for arg in cmd.get_arguments().filter(|a| !a.is_positional()) {
                assert!(
                    arg.get_possible_values().is_empty(),
                    "{path:?} {arg}: extend fish_extra"
                );
            }
        }
    }

    fn page_of(name: &str) -> String {
        pages()
            .into_iter()
            .find(|p| p.file_name == name)
            .unwrap_or_else(|| panic!("no page {name}"))
            .roff
    }

    /// The text of one section, from its `.SH` line up to the next.
    fn section(page: &str, title: &str) -> String {
        let start = page
            .find(&format!("\n.SH {title}\n"))
            .unwrap_or_else(|| panic!("no {title} in\n{page}"));
        let rest = &page[start + 1..];
        let end = rest[1..].find("\n.SH ").map_or(rest.len(), |e| e + 2);
        rest[..end].to_string()
    }

    #[test]
    fn one_page_per_command() {
        let names: Vec<String> = pages().into_iter().map(|p| p.file_name).collect();
        assert_eq!(
            names,
            [
                "bkt.1",
                "bkt-vm.1",
                "bkt-vm-create.1",
                "bkt-vm-start.1",
                "bkt-vm-stop.1",
                "bkt-vm-config.1",
                "bkt-vm-status.1",
                "bkt-vm-connect.1",
                "bkt-vm-run.1",
                "bkt-vm-apps.1",
                "bkt-vm-snapshot.1",
                "bkt-vm-snapshot-create.1",
                "bkt-vm-snapshot-list.1",
                "bkt-vm-snapshot-revert.1",
                "bkt-vm-snapshot-delete.1",
                "bkt-vm-doctor.1",
                "bkt-vm-download.1",
                "bkt-vm-iso-info.1",
                "bkt-vm-enable-rdp.1",
                "bkt-vm-ip.1",
                "bkt-vm-destroy.1",
                "bkt-completions.1",
                "bkt-man.1",
            ]
        );
        let mut want: Vec<String> = commands()
            .iter()
            .map(|(path, _)| {
                let mut words = vec!["bkt".to_string()];
                words.extend(path.iter().cloned());
                format!("{}.1", words.join("-"))
            })
            .collect();
        let mut names = names;
        names.sort();
        want.sort();
        assert_eq!(names, want, "a command without a page, or a page of none");
    }

    #[test]
    fn pages_read_as_man_pages() {
        let version = env!("CARGO_PKG_VERSION");
        let preamble = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";
        for page in pages() {
            assert!(page.roff.starts_with(preamble), "{}", page.file_name);
            assert_eq!(page.roff.matches(".ds Aq").count(), 2, "{}", page.file_name);
            assert!(!page.roff.contains(".SH EXTRA"), "{}", page.file_name);
        }
        let top = page_of("bkt.1");
        assert!(top.starts_with(&format!(
            "{preamble}.TH BKT 1  \"bkt {version}\" \n.SH NAME\n"
        )));
        assert_eq!(
            section(&top, "NAME"),
            ".SH NAME\nbkt \\- tools for a bootc desktop\n"
        );
        assert!(section(&top, "SUBCOMMANDS").contains("\nbkt\\-completions(1)\n"));
        assert!(!top.contains("bkt\\-help"), "{top}");

        let connect = page_of("bkt-vm-connect.1");
        assert!(connect.contains(&format!(".TH BKT-VM-CONNECT 1  \"bkt {version}\" \n")));
        assert_eq!(
            section(&connect, "NAME"),
            ".SH NAME\nbkt\\-vm\\-connect \\- Open the VM\\*(Aqs desktop: Remote Desktop (RDP), or SPICE when RDP can\\*(Aqt\n"
        );
        assert_eq!(
            section(&connect, "ENVIRONMENT"),
            ".SH ENVIRONMENT\n.nf\n\
             BKT_VM_RDP_PASSWORD   the Windows password (instead of the prompt)\n\
             BKT_VM_RDP_CLIENT     the RDP client to use (name or path)\n.fi\n"
        );
        assert_eq!(
            section(&connect, "EXAMPLES"),
            ".SH EXAMPLES\n.nf\n\
             bkt vm connect windows\n\
             bkt vm connect windows \\-\\-user anna \\-\\-fullscreen \\-\\-share ~/Shared\n\
             bkt vm connect windows \\-\\-spice            # Windows Setup, or troubleshooting\n.fi\n"
        );
        let titles: Vec<&str> = connect
            .lines()
            .filter_map(|l| l.strip_prefix(".SH "))
            .collect();
        assert_eq!(
            titles,
            [
                "NAME",
                "SYNOPSIS",
                "DESCRIPTION",
                "OPTIONS",
                "ENVIRONMENT",
                "EXAMPLES",
                "VERSION"
            ]
        );

        let vm = page_of("bkt-vm.1");
        assert!(
            section(&vm, "OPTIONS").contains(
                "May also be specified with the \\fBLIBVIRT_DEFAULT_URI\\fR environment variable."
            ),
            "{vm}"
        );
        assert_eq!(
            section(&vm, "FILES"),
            ".SH FILES\n.nf\n~/.config/bootc/vms.json   what bkt knows about its VMs (BKT_VM_MANIFEST overrides)\n.fi\n"
        );
        let completions = page_of("bkt-completions.1");
        assert!(
            section(&completions, "NOTES").contains("add `fpath=(~/.zfunc $fpath)` to ~/.zshrc"),
            "{completions}"
        );
        assert_eq!(
            section(&page_of("bkt-vm-ip.1"), "VERSION"),
            format!(".SH VERSION\nv{version}\n")
        );
    }

    #[test]
    fn after_help_blocks_become_sections() {
        let text = "Examples:\n  bkt a --b\n  bkt c\n\n\
                    A plain paragraph\nover two lines.\n\n\
                    Environment:\n  X   what x is\n\n\
                    Note: not a heading\n  even if indented\n\n\
                    Odd heading:\n  kept as notes";
        assert_eq!(
            after_help_sections(text),
            ".SH ENVIRONMENT\n.nf\nX   what x is\n.fi\n\
             .SH NOTES\nA plain paragraph over two lines.\n\
             .PP\nNote: not a heading even if indented\n\
             .PP\nOdd heading: kept as notes\n\
             .SH EXAMPLES\n.nf\nbkt a \\-\\-b\nbkt c\n.fi\n"
        );
    }
}
