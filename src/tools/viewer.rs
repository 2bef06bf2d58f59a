//! SPICE viewers: `virt-viewer` attaches through libvirt by name;
//! `remote-viewer` needs the display URI that `virsh domdisplay` prints.

use crate::exec::Cmd;

/// `virt-viewer --connect URI --attach NAME`: the viewer asks libvirt for the
/// display itself, so it works whatever address SPICE listens on.
pub fn virt_viewer(uri: &str, name: &str) -> Cmd {
    Cmd::new("virt-viewer").args(["--connect", uri, "--attach", name])
}

/// `remote-viewer DISPLAY_URI`
pub fn remote_viewer(display: &str, title: &str) -> Cmd {
    Cmd::new("remote-viewer").args(["--title", title, display])
}

/// The TCP port of a `spice://HOST:PORT` display URI (none for a display
/// on a unix socket).
pub fn spice_port(uri: &str) -> Option<u16> {
    let rest = uri.strip_prefix("spice://")?;
    let hostport = rest.split(['/', '?']).next()?;
    hostport.rsplit_once(':')?.1.parse().ok()
}

/// The first `spice://` (or other) URI `virsh domdisplay` printed.
pub fn parse_domdisplay(out: &str) -> Option<String> {
    out.lines()
        .map(str::trim)
        .find(|l| l.contains("://"))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv() {
        assert_eq!(
            virt_viewer("qemu:///system", "windows").display(),
            "virt-viewer --connect qemu:///system --attach windows"
        );
        assert_eq!(
            remote_viewer("spice://127.0.0.1:5900", "windows").display(),
            "remote-viewer --title windows spice://127.0.0.1:5900"
        );
    }

    #[test]
    fn spice_ports() {
        let out = include_str!("../../fixtures/virsh/domdisplay-spice.txt");
        assert_eq!(spice_port(&parse_domdisplay(out).unwrap()), Some(5900));
        assert_eq!(spice_port("spice://[::1]:5901"), Some(5901));
        assert_eq!(
            spice_port("spice://127.0.0.1:5902?tls-port=5903"),
            Some(5902)
        );
        assert_eq!(spice_port("spice+unix:///run/x.sock"), None);
        assert_eq!(spice_port("vnc://127.0.0.1:5900"), None);
    }

    #[test]
    fn domdisplay() {
        let out = include_str!("../../fixtures/virsh/domdisplay-spice.txt");
        assert_eq!(
            parse_domdisplay(out).as_deref(),
            Some("spice://127.0.0.1:5900")
        );
        assert_eq!(parse_domdisplay("\n"), None);
    }
}
