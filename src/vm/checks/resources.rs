//! Resource warnings shared by `create`, `start` and `status`: the running
//! VMs against half the host, the disks' room to grow against the free space
//! where they live, and disks that are nearly full.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::tools::virsh::DomStats;
use crate::ui::Ui;
use crate::units::human;
use crate::vm::ctx::HostSize;

/// A disk at or above this share of its size is "nearly full".
const NEARLY_FULL: f64 = 0.90;

/// What another VM about to run would add.
#[derive(Debug, Clone, Copy, Default)]
pub struct Adding {
    pub memory_bytes: u64,
    pub vcpus: u32,
}

/// The warnings, as sentences. `free` tells the free bytes of a directory
/// (statvfs in production, a table in tests).
pub fn warnings(
    stats: &[DomStats],
    host: &HostSize,
    adding: Option<(&str, Adding)>,
    free: &dyn Fn(&Path) -> Option<u64>,
) -> Vec<String> {
    let mut out = Vec::new();
    let running: Vec<&DomStats> = stats
        .iter()
        .filter(|d| d.state.is_active() && adding.is_none_or(|(n, _)| n != d.name))
        .collect();
    let add = adding.map(|(_, a)| a).unwrap_or_default();
    let mem: u64 = running.iter().map(|d| d.memory_kib * 1024).sum::<u64>() + add.memory_bytes;
    let cpus: u32 = running.iter().map(|d| d.vcpus).sum::<u32>() + add.vcpus;
    let count = running.len() + usize::from(adding.is_some());
    let who = if adding.is_some() {
        format!(
            "with it, {count} running VM{}",
            if count == 1 { "" } else { "s" }
        )
    } else {
        format!("{count} running VM{}", if count == 1 { "" } else { "s" })
    };
    // A VM alone is judged by create's own resources check; these are about
    // VMs together.
    let together = !running.is_empty() || adding.is_none();
    if together && mem > host.memory_bytes / 2 {
        out.push(format!(
            "{who} use {} of memory, more than half of the host's {}",
            human(mem),
            human(host.memory_bytes)
        ));
    }
    if together && cpus > (host.cpus / 2).max(1) {
        out.push(format!(
            "{who} use {cpus} vCPUs, more than half of the host's {} cores",
            host.cpus
        ));
    }

    // Room to grow, per directory that holds disks.
    let mut growth: BTreeMap<PathBuf, u64> = BTreeMap::new();
    for d in stats {
        for b in d.blocks.iter().filter(|b| !b.is_media() && b.capacity > 0) {
            let dir = Path::new(&b.path)
                .parent()
                .unwrap_or(Path::new("/"))
                .to_path_buf();
            *growth.entry(dir).or_default() += b.capacity.saturating_sub(b.used());
            if b.used() as f64 >= NEARLY_FULL * b.capacity as f64 {
                out.push(format!(
                    "{}'s disk {} is {:.0}% full ({} of {}): free space inside Windows, or grow it",
                    d.name,
                    b.name,
                    100.0 * b.used() as f64 / b.capacity as f64,
                    human(b.used()),
                    human(b.capacity)
                ));
            }
        }
    }
    for (dir, grow) in growth {
        if let Some(f) = free(&dir)
            && f < grow
        {
            out.push(format!(
                "{} has {} free, but the disks in it can still grow by {}",
                dir.display(),
                human(f),
                human(grow)
            ));
        }
    }
    out
}

/// Print them on stderr, one `⚠` line each.
pub fn print(ui: &Ui, warnings: &[String]) {
    for w in warnings {
        ui.warn(w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::virsh::parse_domstats;
    use crate::units::gib_bytes;

    fn stats() -> Vec<DomStats> {
        parse_domstats(include_str!("../../../fixtures/virsh/domstats-three.txt")).unwrap()
    }

    #[test]
    fn quiet_when_there_is_room() {
        let host = HostSize {
            memory_bytes: gib_bytes(64),
            cpus: 16,
        };
        assert!(warnings(&stats(), &host, None, &|_| Some(gib_bytes(500))).is_empty());
    }

    #[test]
    fn memory_cpus_and_growth() {
        let host = HostSize {
            memory_bytes: gib_bytes(4),
            cpus: 2,
        };
        let add = Adding {
            memory_bytes: gib_bytes(2),
            vcpus: 2,
        };
        let w = warnings(&stats(), &host, Some(("new", add)), &|_| Some(gib_bytes(1)));
        assert_eq!(
            w,
            [
                "with it, 3 running VMs use 4.2 GiB of memory, more than half of the host's 4 GiB",
                "with it, 3 running VMs use 4 vCPUs, more than half of the host's 2 cores",
                "/var/lib/libvirt/images has 1 GiB free, but the disks in it can still grow by 12 GiB",
            ]
        );
        // A VM being started is not counted twice.
        let w = warnings(&stats(), &host, Some(("t1", add)), &|_| None);
        assert!(
            w[0].starts_with("with it, 2 running VMs use 2.2 GiB"),
            "{w:?}"
        );
    }

    #[test]
    fn nearly_full_disk() {
        let mut s = stats();
        let i = s.iter().position(|d| d.name == "t2").unwrap();
        s[i].blocks[0].allocation = s[i].blocks[0].capacity / 100 * 95;
        let host = HostSize {
            memory_bytes: gib_bytes(64),
            cpus: 16,
        };
        let w = warnings(&s, &host, None, &|_| None);
        assert_eq!(w.len(), 1);
        assert!(
            w[0].starts_with("t2's disk vda is 95% full (3.8 GiB of 4 GiB)"),
            "{w:?}"
        );
    }
}
