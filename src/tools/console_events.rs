//! libvirt's graphics events as `virsh event --all --loop` prints them: a
//! line per SPICE (or VNC) channel that connects, is initialized, or
//! disconnects, with the address family and address of each end; and the
//! domain's lifecycle, since a QEMU that ends takes its channels along
//! without a disconnect each. A console libvirt hands over by fd (`virt-viewer --attach`,
//! virt-manager's console: libvirt's `openGraphicsFD`) has no TCP
//! connection to see in the kernel's table; its channels are in these
//! events, and asking for them taints nothing (unlike QEMU's `info spice`
//! through `qemu-monitor-command`).

/// What happened to one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Connect,
    Initialize,
    Disconnect,
}

/// One event: the phase and the client's end (`unix`, `ipv4`, `ipv6`;
/// its address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub phase: Phase,
    pub family: String,
    pub remote: String,
}

/// One line of `virsh event --event graphics`:
/// `event 'graphics' for domain 'NAME': PHASE local[FAMILY NODE SERVICE]
/// remote[FAMILY NODE SERVICE] AUTH` (with `--timestamp`, a time before
/// it). None for any other line.
pub fn parse_line(line: &str) -> Option<Event> {
    let (_, rest) = line.split_once("event 'graphics' for domain '")?;
    let (_, rest) = rest.split_once("': ")?;
    let (phase, rest) = rest.split_once(' ')?;
    let phase = match phase {
        "connect" => Phase::Connect,
        "initialize" => Phase::Initialize,
        "disconnect" => Phase::Disconnect,
        _ => return None,
    };
    let (_, remote) = rest.split_once(" remote[")?;
    let (remote, _) = remote.split_once(']')?;
    let mut words = remote.split(' ');
    let family = words.next()?.to_string();
    let node = words.next().unwrap_or_default();
    let service = words.next().unwrap_or_default();
    Some(Event {
        phase,
        family,
        remote: match service {
            "" => node.to_string(),
            s => format!("{node}:{s}"),
        },
    })
}

/// Whether the line says the domain started or stopped (a QEMU begins or
/// ends: no channel of before is open).
fn started_or_stopped(line: &str) -> bool {
    line.split_once("event 'lifecycle' for domain '")
        .and_then(|(_, rest)| rest.split_once("': "))
        .is_some_and(|(_, what)| what.starts_with("Started ") || what.starts_with("Stopped "))
}

/// The channels open after these events: each connect opens one, each
/// disconnect closes one, a start or stop of the domain closes all. Never
/// below none: a stream started after a channel connected sees its
/// disconnect alone.
pub fn open_channels(text: &str) -> usize {
    text.lines().fold(0usize, |open, line| {
        if started_or_stopped(line) {
            return 0;
        }
        match parse_line(line).map(|e| e.phase) {
            Some(Phase::Connect) => open + 1,
            Some(Phase::Disconnect) => open.saturating_sub(1),
            Some(Phase::Initialize) | None => open,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::fixture;

    #[test]
    fn a_console_handed_over_by_fd_opens_channels_until_it_closes() {
        // virt-viewer 11.0 --attach: eight SPICE channels over socketpairs.
        let attach = fixture("virsh/event-graphics-attach.txt");
        let close = fixture("virsh/event-graphics-close.txt");
        let events: Vec<Event> = attach.lines().filter_map(parse_line).collect();
        assert_eq!(events.len(), 16, "every line is one event");
        assert_eq!(
            events[0],
            Event {
                phase: Phase::Connect,
                family: "unix".into(),
                remote: "localhost".into()
            }
        );
        assert_eq!(events[1].phase, Phase::Initialize);
        assert_eq!(open_channels(&attach), 8);
        assert_eq!(open_channels(&format!("{attach}{close}")), 0);
        // A stream that missed the connects: no channel, never fewer.
        assert_eq!(open_channels(&format!("{close}{attach}")), 8);
    }

    #[test]
    fn a_viewer_over_tcp_is_in_the_events_too() {
        let tcp = fixture("virsh/event-graphics-tcp.txt");
        assert_eq!(
            parse_line(tcp.lines().next().unwrap()),
            Some(Event {
                phase: Phase::Connect,
                family: "IPv4".into(),
                remote: "127.0.0.1:38714".into()
            })
        );
        let first_two: String = tcp.lines().take(2).map(|l| format!("{l}\n")).collect();
        assert_eq!(open_channels(&first_two), 1);
        assert_eq!(open_channels(&tcp), 0);
    }

    #[test]
    fn a_domain_that_stops_or_starts_has_no_channel_open() {
        let attach = fixture("virsh/event-graphics-attach.txt");
        let life = fixture("virsh/event-lifecycle-destroy-start.txt");
        assert_eq!(open_channels(&format!("{attach}{life}")), 0);
        // Started: the channels of a console that opens after count again.
        assert_eq!(open_channels(&format!("{attach}{life}{attach}")), 8);
        for line in life.lines() {
            assert_eq!(parse_line(line), None, "{line}");
        }
        assert_eq!(parse_line("events received: 3"), None);
    }
}
