//! `Ctx`: what every command works against, and the one door to the
//! outside world. libvirt through [`Virsh`] (argv built in `tools`, run by
//! [`Ctx::libvirt`] and its kin), the machine that runs libvirt through
//! [`Host`], this machine through [`Local`], bkt's manifest through its
//! handle ([`ManifestFile`]), and what the command says through its [`Ui`].
//! Commands touch no file, process, socket, clock or environment variable
//! themselves, and clippy.toml's disallowed-methods keeps it so: only the
//! modules here (and exec.rs, settings.rs, download.rs) may. A second host
//! (ssh) is one more implementation of [`Host`]. Unit tests build a `Ctx`
//! around a fake host and a fake libvirt (`fake.rs`: `Fake::new()`).

// why: the door: Ctx runs libvirt's clients and holds the Host, Local and manifest handles.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[cfg(test)]
pub mod fake;
pub mod host;
mod libvirt;
pub mod local;
pub mod manifest;
pub mod ssh;

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};

use crate::exec::ExecError;
use crate::names::{Uri, VmName};
use crate::settings::Settings;
use crate::tools::virsh::{self, DomState, DomStats, DomainXml, Virsh};
use crate::ui::{HintExt, Ui};

pub use host::{Host, HostSize, Kind, LeftBehind, LocalHost, OwnTunnel, PortState};
pub use local::{Local, Media};
pub use manifest::ManifestFile;

pub struct Ctx {
    pub uri: Uri,
    pub virsh: Virsh,
    pub manifest: ManifestFile,
    pub host: Box<dyn Host>,
    pub local: Local,
    /// Where the command's words go (stdout, stderr; a record in tests).
    pub ui: Ui,
    /// What runs libvirt's clients (processes; a table in unit tests).
    runner: Box<dyn libvirt::Runner>,
}

impl Ctx {
    /// The context of a command on `uri`: the host is this machine, or
    /// the one a `qemu+ssh://` URI names, reached over ssh; another
    /// machine named any other way is refused, with the URI to use.
    pub fn new(uri: Uri, settings: Settings) -> Result<Ctx> {
        // Before anything is probed, read or started: on such a URI the
        // host would be taken for this machine.
        if let Some(fix) = uri.remote_without_ssh() {
            return Err(anyhow!(
                "{uri} names another machine, which bkt reaches only over ssh"
            ))
            .hint(format!("use {fix}"));
        }
        let manifest = settings.manifest().context(
            "cannot find the manifest: neither BKT_VM_MANIFEST, XDG_CONFIG_HOME nor HOME is set",
        )?;
        let (virsh, host): (Virsh, Box<dyn Host>) = match uri.ssh() {
            Some(target) => {
                let h = ssh::SshHost::new(target.clone(), uri.as_str(), settings.path.as_deref())?;
                (h.virsh().clone(), Box::new(h))
            }
            None => (
                Virsh::new(uri.as_str()),
                Box::new(LocalHost::new(&settings)),
            ),
        };
        Ok(Ctx {
            virsh,
            uri,
            manifest: ManifestFile::new(manifest),
            host,
            local: Local::new(settings),
            ui: Ui::terminal(),
            runner: Box::new(libvirt::Processes),
        })
    }

    /// Be ready for the command's calls (over ssh: log in once, the host
    /// unreachable said here with its fix).
    pub fn open(&self) -> Result<()> {
        self.host.open()
    }

    /// The state of a domain (by name or UUID), or None when libvirt has no
    /// such domain.
    pub fn domstate(&self, id: &str) -> Result<Option<(DomState, String)>> {
        match self.try_libvirt(&self.virsh.domstate(id)) {
            Ok(out) => Ok(Some(virsh::parse_domstate(&out.stdout)?)),
            Err(e) if virsh::is_no_domain(e.stderr()) => Ok(None),
            Err(e) => Err(self.libvirt_error(e)),
        }
    }

    /// The domain's state, or an error naming the VMs that do exist.
    pub fn require(&self, name: &VmName) -> Result<(DomState, String)> {
        match self.domstate(name)? {
            Some(s) => Ok(s),
            None => Err(self.unknown_vm(name)),
        }
    }

    /// "no VM named X" with the names that exist, for every command.
    pub fn unknown_vm(&self, name: &str) -> anyhow::Error {
        let names = self
            .try_libvirt_out(&self.virsh.list_names())
            .map(|s| virsh::parse_names(&s))
            .unwrap_or_default();
        let known = if names.is_empty() {
            "there are none".to_string()
        } else {
            format!("the VMs there are: {}", names.join(", "))
        };
        anyhow!("no VM named {name:?} on {} ({known})", self.uri)
    }

    /// The domain's persistent definition, parsed.
    pub fn domain_xml(&self, name: &str) -> Result<DomainXml> {
        let xml = self
            .libvirt_out(&self.virsh.dumpxml(name))
            .with_context(|| format!("cannot read {name}'s definition"))?;
        virsh::parse_domain_xml(&xml)
    }

    /// `virsh domstats` for every domain (one call).
    pub fn domstats(&self) -> Result<Vec<DomStats>> {
        let out = self
            .libvirt_out(&self.virsh.domstats())
            .context("cannot list the VMs")?;
        virsh::parse_domstats(&out)
    }

    /// The images directory of the connection: the `default` pool's path,
    /// else the standard one for system or session.
    pub fn images_dir(&self) -> PathBuf {
        if let Ok(xml) = self.try_libvirt_out(&self.virsh.pool_dumpxml("default"))
            && let Ok(p) = virsh::parse_pool_path(&xml)
        {
            return PathBuf::from(p);
        }
        self.libvirt_dir(
            None,
            ".local/share/libvirt/images",
            "/var/lib/libvirt/images",
        )
    }

    /// The active storage pool whose directory is `dir` (libvirt makes
    /// volumes there), if any: two virsh processes whatever the number of
    /// pools.
    pub fn pool_holding(&self, dir: &std::path::Path) -> Result<Option<String>> {
        let uuids = virsh::parse_names(
            &self
                .libvirt_out(&self.virsh.pool_uuids())
                .context("listing the storage pools")?,
        );
        if uuids.is_empty() {
            return Ok(None);
        }
        // A pool gone in between fails its dumpxml (and, last, the run):
        // what the others printed still counts.
        let out = self
            .libvirt_unchecked(&self.virsh.batch_pool_dumpxml(&uuids))
            .context("reading the storage pools")?;
        let pools = virsh::parse_batch_pool_dumpxml(&out.stdout)?;
        if pools.is_empty() && !out.status.success() {
            return Err(anyhow!(
                "virsh could not read any of the storage pools: {}",
                out.stderr.trim()
            ));
        }
        let want = dir.to_string_lossy();
        Ok(pools
            .into_iter()
            .find(|(_, path)| path.trim_end_matches('/') == want.trim_end_matches('/'))
            .map(|(name, _)| name))
    }

    /// One of libvirt's directories: `given` (a test's override), else the
    /// session's under the home (`session`), else the system's (`system`).
    /// On a host reached over ssh, the host's: no local override, and the
    /// remote user's home for a `/session` URI (unknown: a relative path,
    /// which every remote file operation refuses).
    fn libvirt_dir(&self, given: Option<&PathBuf>, session: &str, system: &str) -> PathBuf {
        let remote = self.uri.ssh().is_some();
        if let (Some(d), false) = (given, remote) {
            return d.clone();
        }
        if !self.uri.is_session() {
            return PathBuf::from(system);
        }
        let home = if remote {
            self.host.home()
        } else {
            self.local.settings.home.clone()
        };
        match home {
            Some(h) => h.join(session),
            None if remote => PathBuf::from(session),
            None => PathBuf::from(system),
        }
    }

    /// Where libvirt keeps each VM's swtpm state (`<dir>/<uuid>`).
    pub fn swtpm_dir(&self) -> PathBuf {
        self.libvirt_dir(
            self.local.settings.hooks.swtpm_dir.as_ref(),
            ".config/libvirt/qemu/swtpm",
            "/var/lib/libvirt/swtpm",
        )
    }

    /// Where libvirt keeps the memory of VMs saved to disk
    /// (`<dir>/<name>.save`, written by `virsh managedsave`).
    pub fn save_dir(&self) -> PathBuf {
        self.libvirt_dir(
            self.local.settings.hooks.save_dir.as_ref(),
            ".config/libvirt/qemu/save",
            "/var/lib/libvirt/qemu/save",
        )
    }

    /// A context on `qemu:///system` with nothing from the environment, for
    /// unit tests of functions that take one.
    #[cfg(test)]
    pub fn for_tests() -> Ctx {
        let settings = Settings::from_vars(|k| {
            (k == "BKT_VM_MANIFEST").then(|| "/nonexistent/vms.json".into())
        });
        Ctx::new("qemu:///system".parse().expect("a URI"), settings).expect("a context")
    }

    /// The size of the machine that runs libvirt.
    pub fn host_size(&self) -> Result<HostSize> {
        self.host.size()
    }
}

/// The user bkt logs in as on a host over ssh may not use libvirt there:
/// polkit (libvirt's socket is open to all, polkit lets the libvirt group
/// in) says "authentication unavailable" when no rule allows it; a
/// socket closed by its mode says "Permission denied".
fn remote_access(stderr: &str, t: &crate::names::SshTarget, uri: &Uri) -> Option<(String, String)> {
    let denied = stderr.contains("authentication unavailable")
        || stderr.contains("authentication failed")
        || (stderr.contains("Failed to connect socket") && stderr.contains("Permission denied"));
    if !denied {
        return None;
    }
    let user = t.user.clone().unwrap_or_else(|| "your ssh user".into());
    let who = t.user.clone().unwrap_or_else(|| "$USER".into());
    let port = t.port.map(|p| format!(" -p {p}")).unwrap_or_default();
    let root = uri.with_ssh_user("root").unwrap_or_else(|| uri.to_string());
    Some((
        format!("{user} may not use libvirt on {}", t.host),
        format!(
            "add {user} to the libvirt group there (`ssh{port} {} sudo usermod -aG libvirt {who}`; \
             it counts from the next login), or connect as root: --connect '{root}'",
            t.destination()
        ),
    ))
}

/// Turn a failed libvirt call (virsh, virt-install) on `uri` into an error
/// with advice for the usual causes: [`Ctx::libvirt_error`].
fn libvirt_error_on(e: ExecError, uri: Option<&Uri>) -> anyhow::Error {
    let stderr = e.stderr().to_string();
    if matches!(e, ExecError::NotFound { .. }) {
        return crate::tools::program_error(e);
    }
    // libvirt's own ssh (qemu+ssh://) failing: said as ssh's failure,
    // before the local causes below match its "Permission denied".
    let target = uri.and_then(|u| u.ssh().cloned());
    if let Some((what, fix)) = crate::tools::ssh::virsh_failure(&stderr, target.as_ref()) {
        return Err::<(), _>(anyhow::Error::new(e).context(what))
            .hint(fix)
            .unwrap_err();
    }
    if let (Some(t), Some(uri)) = (&target, uri)
        && let Some((what, fix)) = remote_access(&stderr, t, uri)
    {
        return Err::<(), _>(anyhow::Error::new(e).context(what))
            .hint(fix)
            .unwrap_err();
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
