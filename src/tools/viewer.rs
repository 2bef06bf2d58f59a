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
    spice_addr(uri).map(|(_, port)| port)
}

/// The host and TCP port of a `spice://HOST:PORT` display URI, the host
/// without brackets (none for a display on a unix socket).
pub fn spice_addr(uri: &str) -> Option<(String, u16)> {
    let rest = uri.strip_prefix("spice://")?;
    let hostport = rest.split(['/', '?']).next()?;
    let (host, port) = hostport.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), port.parse().ok()?))
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
    fn a_display_address_for_the_tunnel() {
        // virsh 11.3.0, domdisplay --type spice of a VM listening on the
        // host's loopback.
        let out = crate::tools::fixture("virsh/domdisplay-spice.txt");
        let uri = parse_domdisplay(&out).unwrap();
        assert_eq!(spice_addr(&uri), Some(("127.0.0.1".into(), 5900)));
        assert_eq!(spice_addr("spice://[::1]:5901"), Some(("::1".into(), 5901)));
        assert_eq!(spice_addr("spice+unix:///run/x.sock"), None);
        assert_eq!(spice_addr("spice://h:x"), None);
    }

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
