//! `bkt vm status [NAME] [--json]`: every VM in one table.
//!
//! The cost is fixed whatever the number of VMs: one virsh process asks for
//! the `default` network's DHCP leases and every domain's stats, and the
//! manifest's MAC of each VM bkt made finds its lease. A running VM found no
//! other way (made by hand, or with no lease there) costs one more batched
//! `domifaddr` process for all such VMs together. Never one call per VM.

use std::collections::BTreeMap;
use std::net::IpAddr;

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

use crate::manifest::VmEntry;
use crate::names::{Uri, VmName};
use crate::tools::virsh::{self, DomState, DomStats};
use crate::ui::Ui;
use crate::units;
use crate::units::AutoSave;
use crate::vm::checks::resources;
use crate::vm::ctx::{Ctx, HostSize, PortState};
use crate::vm::power::save;

/// One row of the status, as printed and as JSON.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VmStatus {
    pub name: String,
    /// libvirt's state, or `missing` when only the manifest has the VM.
    pub state: String,
    /// Whether bkt created it (it is in the manifest).
    pub managed: bool,
    pub vcpus: Option<u32>,
    pub memory_bytes: Option<u64>,
    pub disk_allocated_bytes: Option<u64>,
    pub disk_capacity_bytes: Option<u64>,
    pub ip: Option<String>,
    /// What a connect to the Remote Desktop port at `ip` found just now.
    pub rdp_port: Option<PortState>,
    pub rdp_enabled: Option<bool>,
    /// The size of the saved image of a VM saved to disk (when readable).
    pub saved_bytes: Option<u64>,
    /// bkt's auto-save setting (`15m`, `off`), for the VMs bkt made.
    pub auto_save: Option<String>,
    pub notes: String,
}

/// The auto-save setting as typed (`off` for VMs made before bkt saved).
fn auto_save(e: &VmEntry) -> String {
    e.auto_save
        .map_or(AutoSave::Off, AutoSave::from_secs)
        .to_string()
}

/// Combine libvirt's view, the manifest and the lease addresses.
pub fn merge(
    stats: &[DomStats],
    entries: &[VmEntry],
    addrs: &BTreeMap<String, Vec<IpAddr>>,
) -> Vec<VmStatus> {
    let by_name: BTreeMap<&str, &VmEntry> = entries.iter().map(|e| (e.name.as_str(), e)).collect();
    let mut rows: Vec<VmStatus> = stats
        .iter()
        .map(|d| {
            let entry = by_name.get(d.name.as_str()).copied();
            let disks: Vec<&virsh::BlockStat> = match entry {
                Some(e) if !e.disk.is_empty() => {
                    d.blocks.iter().filter(|b| b.path == e.disk).collect()
                }
                _ => d.blocks.iter().filter(|b| !b.is_media()).collect(),
            };
            let (used, size) = if disks.is_empty() {
                (None, None)
            } else {
                (
                    Some(disks.iter().map(|b| b.used()).sum()),
                    Some(disks.iter().map(|b| b.capacity).sum()),
                )
            };
            let ip = addrs
                .get(&d.name)
                .and_then(|a| a.iter().find(|x| x.is_ipv4()).or_else(|| a.first()))
                .map(|a| a.to_string());
            VmStatus {
                name: d.name.clone(),
                state: d.state.label().to_string(),
                managed: entry.is_some_and(|e| !e.creating),
                vcpus: Some(d.vcpus),
                memory_bytes: Some(d.memory_kib * 1024),
                disk_allocated_bytes: used,
                disk_capacity_bytes: size,
                ip,
                rdp_port: None,
                rdp_enabled: entry.map(|e| e.rdp_enabled),
                saved_bytes: None,
                auto_save: entry.map(auto_save),
                notes: match entry {
                    Some(e) if e.creating => "(being created)".into(),
                    Some(e) => e.notes.clone(),
                    None => "(not in manifest)".into(),
                },
            }
        })
        .collect();
    for e in entries {
        if !stats.iter().any(|d| d.name == e.name) {
            rows.push(VmStatus {
                name: e.name.clone(),
                state: if e.creating { "creating" } else { "missing" }.into(),
                managed: true,
                vcpus: None,
                memory_bytes: None,
                disk_allocated_bytes: None,
                disk_capacity_bytes: None,
                ip: None,
                rdp_port: None,
                rdp_enabled: Some(e.rdp_enabled),
                saved_bytes: None,
                auto_save: Some(auto_save(e)),
                notes: if e.creating {
                    "(being created)".into()
                } else {
                    format!(
                        "(libvirt has no such VM; `bkt vm destroy {}` forgets it)",
                        e.name
                    )
                },
            });
        }
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    rows
}

/// Render the table. RDP shows what its Remote Desktop port did when the VM has an
/// address, else whether the manifest says Remote Desktop was enabled.
pub fn table(rows: &[VmStatus]) -> String {
    let header = [
        "NAME",
        "STATE",
        "CPUS",
        "MEMORY",
        "DISK (used/size)",
        "IP",
        "RDP",
        "AUTO-SAVE",
        "NOTES",
    ];
    let cells: Vec<[String; 9]> = rows
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                match r.saved_bytes {
                    Some(b) => format!("{} ({})", r.state, units::human(b)),
                    None => r.state.clone(),
                },
                r.vcpus.map_or("-".into(), |v| v.to_string()),
                r.memory_bytes.map_or("-".into(), units::human),
                match (r.disk_allocated_bytes, r.disk_capacity_bytes) {
                    (Some(u), Some(s)) => format!("{}/{} GiB", units::gib(u), units::gib(s)),
                    _ => "-".into(),
                },
                r.ip.clone().unwrap_or_else(|| "-".into()),
                match (r.rdp_port, r.rdp_enabled) {
                    (Some(p), _) => p.label().into(),
                    (None, Some(true)) => "on".into(),
                    (None, Some(false)) => "off".into(),
                    (None, None) => "-".into(),
                },
                r.auto_save.clone().unwrap_or_else(|| "-".into()),
                r.notes.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for c in &cells {
        for (w, v) in widths.iter_mut().zip(c.iter()) {
            *w = (*w).max(v.chars().count());
        }
    }
    let line = |vals: Vec<&str>| -> String {
        let mut s = String::new();
        for (i, v) in vals.iter().enumerate() {
            if i + 1 == vals.len() {
                s.push_str(v);
            } else {
                s.push_str(&format!("{v:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for c in &cells {
        out.push_str(&line(c.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// The addresses of the running VMs whose manifest MAC holds a lease on
/// the `default` network, and the running VMs left to ask libvirt about:
/// those bkt did not make, and those with no such lease (not yet, or a NIC
/// moved to another network), where only libvirt knows where to look.
/// Names that are not valid VM names are left out: they would not survive
/// virsh's command syntax.
pub fn addrs_by_lease(
    stats: &[DomStats],
    entries: &[VmEntry],
    leases: &[virsh::Lease],
) -> (BTreeMap<String, Vec<IpAddr>>, Vec<String>) {
    let mut found = BTreeMap::new();
    let mut ask = Vec::new();
    let running = stats
        .iter()
        .filter(|d| d.state == DomState::Running)
        .filter(|d| d.name.parse::<VmName>().is_ok());
    for d in running {
        let mac = entries
            .iter()
            .find(|e| e.name == d.name)
            .and_then(|e| e.mac.as_deref());
        let addrs: Vec<IpAddr> = leases
            .iter()
            .filter(|l| mac.is_some_and(|m| l.mac.eq_ignore_ascii_case(m)))
            .map(|l| l.addr)
            .collect();
        if addrs.is_empty() {
            ask.push(d.name.clone());
        } else {
            found.insert(d.name.clone(), addrs);
        }
    }
    (found, ask)
}

/// The rows, and libvirt's numbers they came from. One virsh process in
/// the common case (every running VM made by bkt and holding a lease), one
/// more for the others.
pub fn collect(ctx: &Ctx) -> Result<(Vec<VmStatus>, Vec<DomStats>, Option<HostSize>)> {
    let out = ctx
        .libvirt_out(&ctx.virsh.status_batch(ctx.uri.ssh().is_some()))
        .context("cannot list the VMs")?;
    let batch = virsh::parse_status_batch(&out)?;
    let m = ctx.manifest.load()?;
    let entries: Vec<VmEntry> = m.vms.into_iter().filter(|e| e.is_on(&ctx.uri)).collect();
    let (mut addrs, ask) = addrs_by_lease(&batch.domstats, &entries, &batch.leases);
    if !ask.is_empty() {
        // A domain that stopped since domstats makes its part fail; virsh
        // goes on with the rest, so read what it printed either way.
        if let Ok(out) = ctx.try_libvirt_unchecked(&ctx.virsh.batch_domifaddr(&ask)) {
            addrs.extend(virsh::parse_batch_domifaddr(&out.stdout));
        }
    }
    let stats = batch.domstats;
    let mut rows = merge(&stats, &entries, &addrs);
    for r in rows
        .iter_mut()
        .filter(|r| r.state == DomState::ShutOff.label() && batch.saved.contains(&r.name))
    {
        r.state = "saved".into();
        r.saved_bytes = save::image(ctx, &r.name).1;
    }
    // Whether Remote Desktop answers: in-process connects, all at once.
    let ips: Vec<String> = rows.iter().filter_map(|r| r.ip.clone()).collect();
    if !ips.is_empty() {
        let states = ctx
            .host
            .probe_all(&ips, ctx.local.settings.rdp_port, STATUS_PROBE_TIMEOUT);
        let mut it = states.into_iter();
        for r in rows.iter_mut().filter(|r| r.ip.is_some()) {
            r.rdp_port = it.next();
        }
    }
    let host = batch
        .node
        .map(|(memory_bytes, cpus)| HostSize { memory_bytes, cpus });
    Ok((rows, stats, host))
}

/// status waits this long at most for the Remote Desktop port, whatever
/// the VM count (the probes run in parallel). A guest that answers does so within a few
/// milliseconds, even under software emulation; one whose firewall drops
/// the probe costs the whole wait.
const STATUS_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(150);

/// Show every VM: state, size, address, and what bkt knows about it.
#[derive(Debug, Args)]
#[command(
    long_about = "Show every VM on the connection: state, vCPUs, memory, disk use, \
    IP address, whether Remote Desktop is on, and notes.\n\n\
    VMs that bkt did not create are shown as unmanaged; VMs in bkt's manifest that \
    libvirt no longer has are shown as missing."
)]
pub struct StatusArgs {
    /// Show only this VM.
    pub name: Option<VmName>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(ctx: &Ctx, args: StatusArgs) -> Result<()> {
    let (name, json) = (args.name.as_ref(), args.json);
    let (mut rows, stats, host) = collect(ctx)?;
    // Over ssh the host's size came with the batch; else it is read now.
    let host = match host {
        Some(h) => h,
        None => ctx.host_size()?,
    };
    let warnings = resources::warnings(&stats, &host, None, &|d| ctx.host.free_space(d));
    if let Some(n) = name {
        rows.retain(|r| r.name == n.as_str());
        if rows.is_empty() {
            return Err(ctx.unknown_vm(n));
        }
    }
    say(&ctx.ui, &ctx.uri, &rows, &warnings, json)
}

/// The rows as a `--json` document (with the URI and the warnings), else
/// the table on stdout and the warnings on stderr.
fn say(ui: &Ui, uri: &Uri, rows: &[VmStatus], warnings: &[String], json: bool) -> Result<()> {
    if json {
        #[derive(Serialize)]
        struct Doc<'a> {
            uri: &'a str,
            vms: &'a [VmStatus],
            warnings: &'a [String],
        }
        let doc = Doc {
            uri: uri.as_str(),
            vms: rows,
            warnings,
        };
        ui.json(&doc)?;
    } else if rows.is_empty() {
        ui.line(format_args!(
            "No VMs on {uri}. Create one with: bkt vm create windows --iso PATH"
        ));
    } else {
        ui.text(table(rows));
        resources::print(ui, warnings);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    // why: tests read fixtures and set up the files and processes they look at.
    #![allow(clippy::disallowed_methods, clippy::disallowed_types)]

    use super::*;

    fn entry(name: &str, disk: &str, notes: &str) -> VmEntry {
        serde_json::from_value(serde_json::json!({
            "name": name, "type": "windows11", "disk": disk, "created": "2026-01-25",
            "rdp_enabled": true, "notes": notes, "uri": "qemu:///system"
        }))
        .unwrap()
    }

    fn batch(name: &str) -> virsh::StatusBatch {
        let p = format!("{}/fixtures/virsh/{name}", env!("CARGO_MANIFEST_DIR"));
        virsh::parse_status_batch(&std::fs::read_to_string(&p).unwrap()).unwrap()
    }

    fn with_mac(name: &str, mac: Option<&str>) -> VmEntry {
        VmEntry {
            mac: mac.map(String::from),
            ..entry(name, "/d.qcow2", "")
        }
    }

    #[test]
    fn a_running_vm_bkt_made_is_found_by_its_mac() {
        let b = batch("status-batch-running.txt");
        let lease: Vec<IpAddr> = vec!["192.168.122.4".parse().unwrap()];
        for mac in ["52:54:00:b4:b3:60", "52:54:00:B4:B3:60"] {
            let entries = [with_mac("off", None), with_mac("tiny", Some(mac))];
            let (found, ask) = addrs_by_lease(&b.domstats, &entries, &b.leases);
            assert_eq!(found, BTreeMap::from([("tiny".to_string(), lease.clone())]));
            assert!(ask.is_empty(), "{ask:?}");
        }
    }

    #[test]
    fn running_vms_the_leases_cannot_place_are_left_to_libvirt() {
        let running = batch("status-batch-running.txt");
        // Made by hand (no entry), an entry without a MAC, another MAC.
        for entries in [
            vec![],
            vec![with_mac("tiny", None)],
            vec![with_mac("tiny", Some("52:54:00:00:00:01"))],
            vec![with_mac("off", Some("52:54:00:b4:b3:60"))],
        ] {
            let (found, ask) = addrs_by_lease(&running.domstats, &entries, &running.leases);
            assert!(found.is_empty(), "{entries:?}");
            assert_eq!(ask, ["tiny"], "{entries:?}");
        }
        // Just started, no lease yet.
        let booting = batch("status-batch-booting.txt");
        let entries = [with_mac("tiny", Some("52:54:00:b4:b3:60"))];
        let (found, ask) = addrs_by_lease(&booting.domstats, &entries, &booting.leases);
        assert!(found.is_empty());
        assert_eq!(ask, ["tiny"]);
    }

    #[test]
    fn shut_off_vms_keep_no_address_though_their_lease_does() {
        let b = batch("status-batch-shutoff.txt");
        assert!(!b.leases.is_empty());
        let entries = [with_mac("tiny", Some("52:54:00:b4:b3:60"))];
        let (found, ask) = addrs_by_lease(&b.domstats, &entries, &b.leases);
        assert!(found.is_empty() && ask.is_empty());
    }

    #[test]
    fn a_name_virsh_could_not_take_is_never_asked_about() {
        let mut b = batch("status-batch-running.txt");
        for d in b.domstats.iter_mut() {
            d.name = format!("{}; destroy x", d.name);
        }
        let (found, ask) = addrs_by_lease(&b.domstats, &[], &b.leases);
        assert!(found.is_empty() && ask.is_empty());
    }

    #[test]
    fn merges_libvirt_manifest_and_leases() {
        let stats = virsh::parse_domstats(include_str!(
            "../../../fixtures/virsh/domstats-running-and-shutoff.txt"
        ))
        .unwrap();
        let entries = vec![
            entry(
                "t1",
                "/var/lib/libvirt/images/t1.qcow2",
                "For Bambu Studio slicer",
            ),
            entry("gone", "/var/lib/libvirt/images/gone.qcow2", ""),
        ];
        let mut addrs = BTreeMap::new();
        addrs.insert(
            "t1".to_string(),
            virsh::parse_domifaddr(include_str!("../../../fixtures/virsh/domifaddr-lease.txt"))
                .unwrap(),
        );
        let rows = merge(&stats, &entries, &addrs);
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["gone", "t1", "t2"]);
        assert_eq!(rows[0].state, "missing");
        assert_eq!(rows[1].state, "running");
        assert!(rows[1].managed);
        assert_eq!(rows[1].ip.as_deref(), Some("192.168.122.4"));
        // Only the disk counts, not the ISO.
        assert_eq!(rows[1].disk_capacity_bytes, Some(8589934592));
        assert_eq!(rows[2].state, "shut off");
        assert!(!rows[2].managed);
        assert_eq!(rows[2].notes, "(not in manifest)");
        assert_eq!(
            table(&rows),
            "NAME  STATE     CPUS  MEMORY  DISK (used/size)  IP             RDP  AUTO-SAVE  NOTES\n\
             gone  missing   -     -       -                 -              on   off        (libvirt has no such VM; `bkt vm destroy gone` forgets it)\n\
             t1    running   1     2 GiB   0/8 GiB           192.168.122.4  on   off        For Bambu Studio slicer\n\
             t2    shut off  2     1 GiB   0/4 GiB           -              -    -          (not in manifest)\n"
        );
    }

    /// Two VMs as `virsh domstats` and the manifest describe them, one
    /// with an address.
    fn two_rows() -> Vec<VmStatus> {
        let stats = virsh::parse_domstats(include_str!(
            "../../../fixtures/virsh/domstats-running-and-shutoff.txt"
        ))
        .unwrap();
        let entries = [entry("t1", "/var/lib/libvirt/images/t1.qcow2", "slicer")];
        let addrs = BTreeMap::from([(
            "t1".to_string(),
            virsh::parse_domifaddr(include_str!("../../../fixtures/virsh/domifaddr-lease.txt"))
                .unwrap(),
        )]);
        merge(&stats, &entries, &addrs)
    }

    /// What status says of `rows` on qemu:///system.
    fn said(rows: &[VmStatus], warnings: &[String], json: bool) -> crate::ui::Said {
        let ui = Ui::capture();
        let uri: Uri = "qemu:///system".parse().unwrap();
        say(&ui, &uri, rows, warnings, json).unwrap();
        ui.said()
    }

    #[test]
    fn says_the_table_on_stdout_and_each_warning_on_stderr() {
        let warnings = ["t1 and t2 use 3 vCPUs, more than half of the host's 2 cores".into()];
        let said = said(&two_rows(), &warnings, false);
        assert_eq!(
            said.out,
            "NAME  STATE     CPUS  MEMORY  DISK (used/size)  IP             RDP  AUTO-SAVE  NOTES\n\
             t1    running   1     2 GiB   0/8 GiB           192.168.122.4  on   off        slicer\n\
             t2    shut off  2     1 GiB   0/4 GiB           -              -    -          (not in manifest)\n"
        );
        assert_eq!(
            said.err,
            "⚠ t1 and t2 use 3 vCPUs, more than half of the host's 2 cores\n"
        );
    }

    #[test]
    fn says_how_to_make_a_vm_when_there_is_none() {
        let said = said(&[], &[], false);
        assert_eq!(
            said.out,
            "No VMs on qemu:///system. Create one with: bkt vm create windows --iso PATH\n"
        );
        assert_eq!(said.err, "");
    }

    #[test]
    fn json_is_one_document_on_stdout_with_the_warnings_in_it() {
        let said = said(&two_rows(), &["a warning".to_string()], true);
        assert_eq!(said.err, "", "nothing beside the document");
        assert!(said.out.ends_with("}\n"), "{}", said.out);
        let doc: serde_json::Value = serde_json::from_str(&said.out).unwrap();
        assert_eq!(doc["uri"], "qemu:///system");
        assert_eq!(doc["warnings"], serde_json::json!(["a warning"]));
        let names: Vec<&str> = doc["vms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["t1", "t2"]);
        assert_eq!(doc["vms"][0]["ip"], "192.168.122.4");
    }
}
