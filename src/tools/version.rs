//! `PROGRAM --version`, and the version number in what it prints (on
//! stdout or stderr, depending on the program).

use crate::exec::Cmd;

/// `PROGRAM --version`, untranslated.
pub fn cmd(program: &str) -> Cmd {
    Cmd::new(program).env("LC_ALL", "C").arg("--version")
}

/// [`cmd`] as a shell command line for another machine (over ssh): fails
/// (status 1, nothing printed) when the program is not installed there,
/// else prints what it printed on stdout and stderr.
pub fn script(program: &str) -> String {
    let p = crate::exec::shell_quote(program);
    format!("command -v {p} >/dev/null || exit 1; LC_ALL=C {p} --version 2>&1; true")
}

/// The first `x.y` or `x.y.z` in the output of [`cmd`].
pub fn parse(out: &str) -> Option<String> {
    let re = regex::Regex::new(r"\b(\d+\.\d+(?:\.\d+)?)\b").expect("static regex");
    out.lines()
        .find_map(|l| re.captures(l).map(|c| c[1].to_string()))
}

#[cfg(test)]
mod tests {
    // why: tests read fixtures and set up the files and processes they look at.
    #![allow(clippy::disallowed_methods, clippy::disallowed_types)]

    use super::*;

    fn fx(n: &str) -> String {
        std::fs::read_to_string(format!("{}/fixtures/tools/{n}", env!("CARGO_MANIFEST_DIR")))
            .unwrap()
    }

    #[test]
    fn versions_of_tools() {
        assert_eq!(parse(&fx("swtpm-version.txt")).as_deref(), Some("0.7.1"));
        assert_eq!(
            parse(&fx("virt-install-version.txt")).as_deref(),
            Some("4.1.0")
        );
        assert_eq!(
            parse(&fx("qemu-img-version.txt")).as_deref(),
            Some("10.0.2")
        );
        assert_eq!(parse("no digits"), None);
        assert_eq!(cmd("swtpm").display(), "swtpm --version");
        assert_eq!(
            script("swtpm"),
            "command -v swtpm >/dev/null || exit 1; LC_ALL=C swtpm --version 2>&1; true"
        );
    }
}
