//! bkt itself, started as the detached idle watcher of a VM.

use crate::exec::Cmd;

/// `setsid BKT vm watch NAME --connect URI`: in a session of its own,
/// without a controlling terminal, so that nothing the terminal does
/// (Ctrl-C, closing it, a child that reads from it) reaches the watcher.
pub fn detached(bkt: &str, uri: &str, name: &str) -> Cmd {
    Cmd::new("setsid").args([bkt, "vm", "watch", name, "--connect", uri])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv() {
        assert_eq!(
            detached("/usr/bin/bkt", "qemu:///session", "win").display(),
            "setsid /usr/bin/bkt vm watch win --connect qemu:///session"
        );
    }
}
