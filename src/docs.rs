//! `bkt completions`: shell completion scripts made from the clap
//! definitions in `cli.rs`, so they offer what `--help` lists and cannot
//! drift from it.

use std::io::{self, Write};

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::{Cli, Shell};
use crate::ui::HintExt;

/// `bkt completions SHELL`: the script on stdout.
pub fn completions(shell: Shell) -> Result<()> {
    print_stdout(&completion_script(shell))
        .context("cannot print the completion script")
        .hint("redirect it into the file your shell reads (`bkt completions --help` says which)")
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

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use super::*;

    /// Every command a user can type, as its words after `bkt`, with its
    /// clap definition (clap's own `help` subcommands left out).
    fn commands() -> Vec<(Vec<String>, clap::Command)> {
        fn walk(cmd: &clap::Command, path: &[String], out: &mut Vec<(Vec<String>, clap::Command)>) {
            out.push((path.to_vec(), cmd.clone()));
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
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
        fs::write(dir.path().join("Win11.iso"), "").unwrap();
        fs::create_dir(dir.path().join("isos")).unwrap();
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
                format!("{cond} -s h -l help -d 'Print help'"),
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
}
