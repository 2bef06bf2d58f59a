//! Finding a guest on the network: its IPv4 address (lease, then guest
//! agent, then ARP) and whether Remote Desktop answers on it.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::tools::virsh::{self, AddrSource};
use crate::ui::Spinner;
use crate::vm::Ctx;

pub const RDP_PORT: u16 = 3389;
/// How long one probe of the port waits for an answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// How often waits poll: our overhead past the moment the guest is ready is
/// at most this.
pub const POLL: Duration = Duration::from_millis(500);

/// What a TCP connect to the guest's port found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PortState {
    /// Something accepted the connection.
    Open,
    /// The guest answered with a reset: it is up, nothing listens.
    Refused,
    /// Nothing came back in time: still booting, or a firewall drops it.
    NoAnswer,
}

impl PortState {
    pub fn label(self) -> &'static str {
        match self {
            PortState::Open => "answers",
            PortState::Refused => "refused",
            PortState::NoAnswer => "no answer",
        }
    }
}

/// One TCP connect with a short timeout.
pub fn probe(ip: &str, port: u16, timeout: Duration) -> PortState {
    let Ok(addr) = ip.parse::<IpAddr>() else {
        return PortState::NoAnswer;
    };
    match TcpStream::connect_timeout(&SocketAddr::new(addr, port), timeout) {
        Ok(_) => PortState::Open,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => PortState::Refused,
        Err(_) => PortState::NoAnswer,
    }
}

/// Probe several addresses at once: a few threads share the list (no
/// external processes, and no thread per address for hundreds of VMs).
pub fn probe_all(ips: &[String], port: u16, timeout: Duration) -> Vec<PortState> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    const WORKERS: usize = 16;
    let next = AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<PortState>> = ips
        .iter()
        .map(|_| std::sync::Mutex::new(PortState::NoAnswer))
        .collect();
    std::thread::scope(|s| {
        for _ in 0..WORKERS.min(ips.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(ip) = ips.get(i) else { break };
                    let st = probe(ip, port, timeout);
                    if let Ok(mut r) = results[i].lock() {
                        *r = st;
                    }
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| m.into_inner().unwrap_or(PortState::NoAnswer))
        .collect()
}

/// One pass over the sources, in order; the first IPv4 address wins. A
/// source that cannot answer (no agent in the guest) is skipped.
pub fn find_ip(ctx: &Ctx, name: &str) -> Option<(String, AddrSource)> {
    for source in AddrSource::ALL {
        if let Some(ip) = ip_from(ctx, name, source) {
            return Some((ip, source));
        }
    }
    None
}

fn ip_from(ctx: &Ctx, name: &str, source: AddrSource) -> Option<String> {
    let out = ctx.virsh.domifaddr(name, source).run().ok()?;
    virsh::parse_domifaddr(&out.stdout)
        .into_iter()
        .find(|a| a.ipv4)
        .map(|a| a.addr)
}

pub const WAITING_FOR_IP: &str = "waiting for an IP address (lease, guest agent, ARP)";

/// Poll [`find_ip`] until an address shows up or `deadline` passes.
pub fn wait_ip(
    ctx: &Ctx,
    name: &str,
    deadline: Instant,
    spinner: &Spinner,
) -> Result<Option<(String, AddrSource)>> {
    let mut said = false;
    loop {
        if let Some(found) = find_ip(ctx, name) {
            return Ok(Some(found));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        // Only a real wait is announced.
        if !said {
            spinner.set_message(WAITING_FOR_IP);
            said = true;
        }
        std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
    }
}

/// How often a wait for the port asks libvirt again for the address: right
/// after a start, libvirt reports the previous boot's lease, and the guest
/// may come up with another one.
pub const REFRESH_IP: Duration = Duration::from_secs(5);

/// Poll the port until it answers or `deadline` passes, following the
/// address if `refresh` reports a new one. Returns the address and the last
/// state seen.
pub fn wait_port(
    ip: &str,
    port: u16,
    deadline: Instant,
    spinner: &Spinner,
    refresh: &mut dyn FnMut() -> Option<String>,
) -> (String, PortState) {
    let mut ip = ip.to_string();
    let mut said = false;
    let mut refreshed = Instant::now();
    loop {
        let started = Instant::now();
        let st = probe(&ip, port, PROBE_TIMEOUT);
        if st == PortState::Open || Instant::now() >= deadline {
            return (ip, st);
        }
        if !said {
            spinner.set_message(&format!("waiting for Remote Desktop on {ip}:{port}"));
            said = true;
        }
        if refreshed.elapsed() >= REFRESH_IP {
            refreshed = Instant::now();
            if let Some(new) = refresh().filter(|n| *n != ip) {
                ip = new;
                spinner.set_message(&format!("waiting for Remote Desktop on {ip}:{port}"));
            }
        }
        let next = started + POLL;
        std::thread::sleep(
            next.saturating_duration_since(Instant::now())
                .min(deadline.saturating_duration_since(Instant::now())),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_tells_open_from_refused() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(probe("127.0.0.1", port, PROBE_TIMEOUT), PortState::Open);
        drop(l);
        assert_eq!(probe("127.0.0.1", port, PROBE_TIMEOUT), PortState::Refused);
        assert_eq!(probe("not an ip", port, PROBE_TIMEOUT), PortState::NoAnswer);
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p2 = l.local_addr().unwrap().port();
        let got = probe_all(&["127.0.0.1".into(), "127.0.0.1".into()], p2, PROBE_TIMEOUT);
        assert_eq!(got, [PortState::Open, PortState::Open]);
    }
}
