//! `bkt vm`: one module per user-facing command, and what they share.

pub mod access;
pub mod connect;
pub mod create;
pub mod destroy;
pub mod doctor;
pub mod enable_rdp;
pub mod media;
pub mod net;
pub mod preflight;
pub mod resources;
pub mod snapshot;
pub mod start;
pub mod status;
pub mod stop;
pub mod unattended;

use std::path::PathBuf;
use std::sync::LazyLock;

use anyhow::{Context, Result, anyhow, bail};
use regex::Regex;

use crate::cli::{Global, SnapshotCommand, VmCommand};
use crate::exec::ExecError;
use crate::manifest;
use crate::tools::virsh::{self, DomState, Virsh};
use crate::ui::HintExt;

/// What every command works against.
pub struct Ctx {
    pub uri: String,
    pub virsh: Virsh,
    pub manifest: PathBuf,
}

impl Ctx {
    pub fn new(global: &Global) -> Result<Ctx> {
        Ok(Ctx {
            uri: global.uri.clone(),
            virsh: Virsh::new(&global.uri),
            manifest: manifest::path()?,
        })
    }

    /// The state of a domain, or None when libvirt has no such domain.
    pub fn domstate(&self, name: &str) -> Result<Option<(DomState, String)>> {
        match self.virsh.domstate(name).run() {
            Ok(out) => Ok(Some(virsh::parse_domstate(&out.stdout)?)),
            Err(e) if virsh::is_no_domain(e.stderr()) => Ok(None),
            Err(e) => Err(libvirt_error(e)),
        }
    }

    /// The domain's state, or an error naming the VMs that do exist.
    pub fn require(&self, name: &str) -> Result<(DomState, String)> {
        validate_name(name)?;
        match self.domstate(name)? {
            Some(s) => Ok(s),
            None => Err(self.unknown_vm(name)),
        }
    }

    /// "no VM named X" with the names that exist, for every command.
    pub fn unknown_vm(&self, name: &str) -> anyhow::Error {
        let names = self
            .virsh
            .list_names()
            .stdout()
            .map(|s| virsh::parse_names(&s))
            .unwrap_or_default();
        let known = if names.is_empty() {
            "there are none".to_string()
        } else {
            format!("the VMs there are: {}", names.join(", "))
        };
        anyhow!("no VM named {name:?} on {} ({known})", self.uri)
    }
}

/// libvirt's VM names as `bkt` accepts them: safe in a file name, a virsh
/// command string and a shell, and short enough for every tool.
static NAME_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$").expect("static regex"));

pub fn name_is_valid(name: &str) -> bool {
    NAME_RE.is_match(name)
}

pub fn validate_name(name: &str) -> Result<()> {
    if name_is_valid(name) {
        Ok(())
    } else {
        bail!(
            "invalid VM name {name:?}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    }
}

/// Turn a failed virsh call into an error with advice for the usual causes.
pub fn libvirt_error(e: ExecError) -> anyhow::Error {
    let stderr = e.stderr().to_string();
    if matches!(e, ExecError::NotFound { .. }) {
        return crate::tools::program_error(e);
    }
    let hint = if stderr.contains("failed to connect to the hypervisor")
        || stderr.contains("Failed to connect socket")
    {
        Some(
            "libvirt is not reachable: start it (`sudo systemctl start libvirtd`, or \
             `virtqemud` on modular hosts) or check --connect / LIBVIRT_DEFAULT_URI",
        )
    } else if stderr.contains("Cannot access storage file") {
        Some("the VM's disk or an ISO it uses is gone; put it back or detach it (`virsh edit`)")
    } else if stderr.contains("network 'default' is not active") {
        Some("start libvirt's network: `virsh net-start default && virsh net-autostart default`")
    } else if stderr.contains("authentication") || stderr.contains("Permission denied") {
        Some(
            "add yourself to the libvirt group (`sudo usermod -aG libvirt $USER`, then log in again)",
        )
    } else {
        None
    };
    let err = anyhow::Error::new(e);
    match hint {
        Some(h) => Err::<(), _>(err).hint(h).unwrap_err(),
        None => err,
    }
}

/// Host resources, for defaults and limits.
#[derive(Debug, Clone, Copy)]
pub struct Host {
    pub memory_bytes: u64,
    pub cpus: u32,
}

impl Host {
    /// Read /proc/meminfo and the online CPUs. `BKT_VM_HOST_MEMORY` and
    /// `BKT_VM_HOST_CPUS` override them (tests pin the host's size).
    pub fn detect() -> Result<Host> {
        let memory_bytes = match std::env::var("BKT_VM_HOST_MEMORY") {
            Ok(v) => crate::units::parse_size(&v)?,
            Err(_) => {
                let info = std::fs::read_to_string("/proc/meminfo")
                    .context("cannot read /proc/meminfo")?;
                info.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                    .map(|kib| kib * 1024)
                    .context("no MemTotal in /proc/meminfo")?
            }
        };
        let cpus = match std::env::var("BKT_VM_HOST_CPUS") {
            Ok(v) => v.parse().context("BKT_VM_HOST_CPUS is not a number")?,
            Err(_) => std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1),
        };
        Ok(Host { memory_bytes, cpus })
    }
}

impl Ctx {
    /// The domain's persistent definition, parsed.
    pub fn domain_xml(&self, name: &str) -> Result<crate::tools::virsh::DomainXml> {
        let xml = self
            .virsh
            .dumpxml(name)
            .stdout()
            .map_err(libvirt_error)
            .with_context(|| format!("cannot read {name}'s definition"))?;
        crate::tools::virsh::parse_domain_xml(&xml)
    }

    /// `virsh domstats` for every domain (one call).
    pub fn domstats(&self) -> Result<Vec<crate::tools::virsh::DomStats>> {
        let out = self
            .virsh
            .domstats()
            .stdout()
            .map_err(libvirt_error)
            .context("cannot list the VMs")?;
        crate::tools::virsh::parse_domstats(&out)
    }
}

/// `bkt vm download`: both files, into the cache.
fn download_all(source: &crate::cli::DownloadArgs) -> Result<()> {
    use crate::download;
    let opts = download::Options {
        offline: source.offline,
        expected_sha256: source.virtio_sha256.clone(),
    };
    for (item, opts) in [
        (download::virtio(source.virtio_url.as_deref()), opts.clone()),
        (
            download::guest_tools(source.guest_tools_url.as_deref()),
            download::Options {
                expected_sha256: None,
                ..opts.clone()
            },
        ),
    ] {
        let f =
            download::fetch(&item, &opts).with_context(|| format!("getting the {}", item.what))?;
        let label = match item.kind {
            download::Kind::Iso => "virtio ISO",
            download::Kind::Exe => "guest tools",
        };
        crate::ui::Check::pass(
            label,
            format!(
                "{} ({}, sha256 {}…{})",
                f.path.display(),
                crate::units::human(f.size),
                &f.sha256[..16],
                if f.cached { ", cached" } else { "" }
            ),
        )
        .print();
    }
    Ok(())
}

/// Run one `bkt vm` command.
pub fn run(global: &Global, command: VmCommand) -> Result<()> {
    crate::exec::set_verbose(global.verbose);
    let ctx = Ctx::new(global)?;
    match command {
        VmCommand::Create(args) => create::run(&ctx, *args),
        VmCommand::Start { name } => start::run(&ctx, &name),
        VmCommand::Stop {
            name,
            timeout,
            force,
        } => stop::run(&ctx, &name, timeout, force),
        VmCommand::Status { name, json } => status::run(&ctx, name.as_deref(), json),
        VmCommand::Connect {
            name,
            rdp,
            spice,
            user,
            timeout,
            fullscreen,
            share,
        } => connect::run(
            &ctx,
            &name,
            &connect::Options {
                mode: if rdp {
                    connect::Mode::RdpOnly
                } else if spice {
                    connect::Mode::Spice
                } else {
                    connect::Mode::Auto
                },
                user,
                timeout: std::time::Duration::from_secs(timeout),
                fullscreen,
                share,
            },
        ),
        VmCommand::Ip { name, timeout } => connect::ip(&ctx, &name, timeout),
        VmCommand::Doctor { name, json } => doctor::run(&ctx, name.as_deref(), json),
        VmCommand::Download { source } => download_all(&source),
        VmCommand::EnableRdp { name, timeout } => enable_rdp::run(&ctx, &name, timeout),
        VmCommand::Snapshot { command } => match command {
            SnapshotCommand::Create {
                name,
                snap,
                description,
                yes,
            } => snapshot::create(&ctx, &name, &snap, &description, yes),
            SnapshotCommand::List { name, json } => snapshot::list(&ctx, &name, json),
            SnapshotCommand::Revert { name, snap, yes } => {
                snapshot::revert(&ctx, &name, &snap, yes)
            }
            SnapshotCommand::Delete { name, snap } => snapshot::delete(&ctx, &name, &snap),
        },
        VmCommand::Destroy {
            name,
            yes,
            keep_disk,
        } => destroy::run(&ctx, &name, yes, keep_disk),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["windows", "Win11", "w", "a.b_c-d", &"x".repeat(64)] {
            assert!(name_is_valid(ok), "{ok}");
        }
        for bad in [
            "",
            "-rf",
            ".hidden",
            "win 11",
            "a;b",
            "a/b",
            "ä",
            "$(x)",
            &"x".repeat(65),
        ] {
            assert!(!name_is_valid(bad), "{bad}");
        }
    }
}
