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
    fn domdisplay() {
        let out = include_str!("../../fixtures/virsh/domdisplay-spice.txt");
        assert_eq!(
            parse_domdisplay(out).as_deref(),
            Some("spice://127.0.0.1:5900")
        );
        assert_eq!(parse_domdisplay("\n"), None);
    }
}
