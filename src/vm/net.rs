//! Finding a guest on the network: its IPv4 address (lease, then guest
//! agent, then ARP) and whether Remote Desktop answers on it (probed from
//! the host, through `Ctx`).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::tools::virsh::{self, AddrSource};
use crate::ui::Spinner;
use crate::vm::ctx::Ctx;
use crate::vm::ctx::PortState;
use crate::vm::wait::poll_until;

/// How long one probe of the port waits for an answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// How often waits poll: our overhead past the moment the guest is ready is
/// at most this.
pub const POLL: Duration = Duration::from_millis(500);

/// One pass over the sources, in order; the first IPv4 address wins. A
/// source that cannot answer (no agent in the guest) is skipped; one that
/// answers something that is not an address is an error (the guest agent
/// says what the guest wants it to).
pub fn find_ip(ctx: &Ctx, name: &str) -> Result<Option<(IpAddr, AddrSource)>> {
    for source in AddrSource::ALL {
        if let Some(ip) = ip_from(ctx, name, source)? {
            return Ok(Some((ip, source)));
        }
    }
    Ok(None)
}

fn ip_from(ctx: &Ctx, name: &str, source: AddrSource) -> Result<Option<IpAddr>> {
    let Ok(out) = ctx.try_libvirt(&ctx.virsh.domifaddr(name, source)) else {
        return Ok(None);
    };
    Ok(virsh::parse_domifaddr(&out.stdout)?
        .into_iter()
        .find(IpAddr::is_ipv4))
}

pub const WAITING_FOR_IP: &str = "waiting for an IP address (lease, guest agent, ARP)";

/// Wait for [`find_ip`] to find an address, until `deadline`.
pub fn wait_ip(
    ctx: &Ctx,
    name: &str,
    deadline: Instant,
    spinner: &Spinner,
) -> Result<Option<(IpAddr, AddrSource)>> {
    poll_until(Some(deadline), POLL, spinner, WAITING_FOR_IP, || {
        find_ip(ctx, name)
    })
}

/// How often a wait for the port asks libvirt again for the address: right
/// after a start, libvirt reports the previous boot's lease, and the guest
/// may come up with another one.
pub const REFRESH_IP: Duration = Duration::from_secs(5);

/// Wait for the guest's `port` to answer, until `deadline`, following the
/// address when libvirt reports a new one. Returns the address and the last
/// state seen.
pub fn wait_port(
    ctx: &Ctx,
    name: &str,
    ip: IpAddr,
    port: u16,
    deadline: Instant,
    spinner: &Spinner,
) -> Result<(IpAddr, PortState)> {
    let mut ip = ip;
    let mut last = PortState::NoAnswer;
    let mut refreshed = Instant::now();
    let waiting = |ip: IpAddr| format!("waiting for Remote Desktop on {ip}:{port}");
    let open = poll_until(Some(deadline), POLL, spinner, &waiting(ip), || {
        last = ctx.host.probe(&ip.to_string(), port, PROBE_TIMEOUT);
        if last == PortState::Open {
            return Ok(Some(()));
        }
        if refreshed.elapsed() >= REFRESH_IP {
            refreshed = Instant::now();
            if let Some((new, _)) = find_ip(ctx, name)?.filter(|(n, _)| *n != ip) {
                ip = new;
                spinner.set_message(&waiting(ip));
            }
        }
        Ok(None)
    })?;
    let state = if open.is_some() {
        PortState::Open
    } else {
        last
    };
    Ok((ip, state))
}
