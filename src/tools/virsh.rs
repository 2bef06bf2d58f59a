//! `virsh`: argv builders for the calls `bkt vm` makes and parsers of their
//! output. Every call pins `LC_ALL=C` (virsh translates its tables) and the
//! connection URI. Recorded outputs live in `fixtures/virsh/`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use anyhow::{Context, Result, anyhow, bail};

use crate::exec::Cmd;

/// A virsh invocation against one connection URI.
#[derive(Debug, Clone)]
pub struct Virsh {
    pub uri: String,
    /// The `PATH` virsh runs with, when libvirt's own ssh (`qemu+ssh://`)
    /// must find bkt's `ssh` first: the one that goes through bkt's
    /// connection (see `tools::ssh::through_master`).
    path: Option<String>,
}

impl Virsh {
    pub fn new(uri: &str) -> Self {
        Virsh {
            uri: uri.to_string(),
            path: None,
        }
    }

    /// The same connection, its ssh found on `path` first.
    pub fn with_path(mut self, path: String) -> Self {
        self.path = Some(path);
        self
    }

    /// Any libvirt client (virsh, virt-install) on this connection: with
    /// the `PATH` that sends libvirt's ssh through bkt's connection.
    pub fn client(&self, cmd: Cmd) -> Cmd {
        match &self.path {
            Some(p) => cmd.env("PATH", p.clone()),
            None => cmd,
        }
    }

    /// `virsh -c URI ARGS...`
    pub fn cmd<I, S>(&self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.client(Cmd::new("virsh"))
            .env("LC_ALL", "C")
            .arg("-c")
            .arg(self.uri.clone())
            .args(args)
    }

    /// `virsh -q -c URI ARGS...` for output parsed as a table.
    pub fn quiet<I, S>(&self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.client(Cmd::new("virsh"))
            .env("LC_ALL", "C")
            .arg("-q")
            .arg("-c")
            .arg(self.uri.clone())
            .args(args)
    }

    pub fn version(&self) -> Cmd {
        self.cmd(["version"])
    }

    /// The host's memory and CPUs, as libvirt sees them (on whatever
    /// machine it runs).
    pub fn nodeinfo(&self) -> Cmd {
        self.cmd(["nodeinfo"])
    }

    /// `domstats` for every domain at once, one call whatever the number of
    /// VMs.
    pub fn domstats(&self) -> Cmd {
        self.cmd(DOMSTATS)
    }

    /// One virsh process that runs several commands: each part's after an
    /// `echo` of its mark, the line `@@bkt KEY` that [`split_batch`] cuts
    /// the output at. virsh runs `;`-separated commands in turn whatever
    /// each one does (an `echo` always prints, so every mark is there once
    /// virsh is connected), and exits with the status of the last one.
    ///
    /// A key is a word ([`is_batch_key`]: a part's name, a validated VM name,
    /// a UUID) and no two parts share one: virsh's command syntax takes it
    /// as it is, and a mark is known by it.
    pub fn batch<K, C>(&self, parts: impl IntoIterator<Item = (K, C)>) -> Cmd
    where
        K: AsRef<str>,
        C: AsRef<str>,
    {
        let parts: Vec<(K, C)> = parts.into_iter().collect();
        debug_assert!(
            parts
                .iter()
                .enumerate()
                .all(|(i, (k, _))| is_batch_key(k.as_ref())
                    && parts[..i].iter().all(|(o, _)| o.as_ref() != k.as_ref())),
            "batch keys must be distinct words"
        );
        let script = parts
            .iter()
            .map(|(key, commands)| {
                format!("echo {BATCH_MARK} {}; {}", key.as_ref(), commands.as_ref())
            })
            .collect::<Vec<_>>()
            .join("; ");
        self.cmd([script])
    }

    /// Everything `status` asks libvirt, in one [`Virsh::batch`]: the DHCP
    /// leases of the `default` network, the VMs saved to disk (their
    /// memory in a managed save image), then every domain's stats
    /// ([`parse_status_batch`] reads them). Last, a failed `domstats` fails
    /// the call, while a connection without a `default` network just prints
    /// no leases (its error goes to stderr). With `node`, the host's
    /// `nodeinfo` comes first: over ssh, one libvirt connection less.
    pub fn status_batch(&self, node: bool) -> Cmd {
        let domstats = DOMSTATS.join(" ");
        let node = node.then_some((NODE_PART, "nodeinfo"));
        self.batch(node.into_iter().chain([
            (LEASES_PART, "net-dhcp-leases default"),
            (SAVED_PART, "list --all --name --with-managed-save"),
            (DOMSTATS_PART, domstats.as_str()),
        ]))
    }

    pub fn domstate(&self, name: &str) -> Cmd {
        self.cmd(["domstate", "--reason", name])
    }

    pub fn list_names(&self) -> Cmd {
        self.quiet(["list", "--all", "--name"])
    }

    /// The lease addresses of several running domains in one
    /// [`Virsh::batch`], each domain's table under its name. Names are
    /// validated before they get here.
    pub fn batch_domifaddr(&self, names: &[String]) -> Cmd {
        self.batch(
            names
                .iter()
                .map(|n| (n, format!("domifaddr --source lease {n}"))),
        )
    }

    /// `domifaddr NAME --source lease|agent|arp`
    pub fn domifaddr(&self, name: &str, source: AddrSource) -> Cmd {
        self.cmd(["domifaddr", name, "--source", source.as_str()])
    }

    pub fn domdisplay(&self, name: &str) -> Cmd {
        self.cmd(["domdisplay", "--type", "spice", name])
    }

    /// The domain's events as they happen, until ended: its graphics
    /// events, and its lifecycle to know when QEMU started afresh
    /// ([`crate::tools::console_events`]).
    pub fn domain_events(&self, name: &str) -> Cmd {
        self.cmd(["event", "--domain", name, "--all", "--loop"])
    }

    pub fn resume(&self, name: &str) -> Cmd {
        self.cmd(["resume", name])
    }

    pub fn dompmwakeup(&self, name: &str) -> Cmd {
        self.cmd(["dompmwakeup", name])
    }

    /// A disk snapshot of a shut-off domain (internal, in the qcow2).
    /// virsh refuses an empty `--description`, so none is passed then.
    pub fn snapshot_create(&self, name: &str, snap: &str, description: &str) -> Cmd {
        let mut args = vec!["snapshot-create-as", "--domain", name, "--name", snap];
        if !description.is_empty() {
            args.extend(["--description", description]);
        }
        args.push("--atomic");
        self.cmd(args)
    }

    pub fn snapshot_revert(&self, name: &str, snap: &str) -> Cmd {
        self.cmd(["snapshot-revert", name, snap])
    }

    pub fn snapshot_delete(&self, name: &str, snap: &str) -> Cmd {
        self.cmd(["snapshot-delete", name, snap])
    }

    pub fn snapshot_names(&self, name: &str) -> Cmd {
        self.cmd(["snapshot-list", name, "--name"])
    }

    pub fn snapshot_current(&self, name: &str) -> Cmd {
        self.cmd(["snapshot-current", name, "--name"])
    }

    /// Ask the guest agent for a sign of life.
    /// `virsh qemu-agent-command NAME JSON --timeout SECONDS`: one command
    /// to the guest agent, its JSON answer on stdout.
    pub fn agent_command(&self, name: &str, json: &str, timeout_secs: u32) -> Cmd {
        self.cmd([
            "qemu-agent-command".to_string(),
            name.to_string(),
            json.to_string(),
            "--timeout".to_string(),
            timeout_secs.to_string(),
        ])
    }

    pub fn agent_ping(&self, name: &str) -> Cmd {
        self.cmd([
            "qemu-agent-command",
            name,
            r#"{"execute":"guest-ping"}"#,
            "--timeout",
            "3",
        ])
    }

    pub fn domcapabilities(&self, virt_type: &str) -> Cmd {
        self.cmd([
            "domcapabilities",
            "--virttype",
            virt_type,
            "--arch",
            "x86_64",
            "--machine",
            "q35",
        ])
    }

    pub fn pool_dumpxml(&self, pool: &str) -> Cmd {
        self.cmd(["pool-dumpxml", pool])
    }

    pub fn net_info(&self, net: &str) -> Cmd {
        self.cmd(["net-info", net])
    }

    pub fn net_start(&self, net: &str) -> Cmd {
        self.cmd(["net-start", net])
    }

    pub fn net_autostart(&self, net: &str) -> Cmd {
        self.cmd(["net-autostart", net])
    }

    pub fn dumpxml(&self, name: &str) -> Cmd {
        self.cmd(["dumpxml", "--inactive", name])
    }

    pub fn start(&self, name: &str) -> Cmd {
        self.cmd(["start", name])
    }

    pub fn shutdown(&self, name: &str) -> Cmd {
        self.cmd(["shutdown", name, "--mode", "acpi"])
    }

    pub fn destroy(&self, name: &str) -> Cmd {
        self.cmd(["destroy", name])
    }

    /// `virsh define /dev/stdin`, the XML on stdin: the domain `create`
    /// renders with virt-install, defined by us so that a failed start leaves
    /// a domain we can undefine with its NVRAM (virt-install's own rollback
    /// undefines it and leaves the NVRAM file behind).
    pub fn define_stdin(&self, xml: &str) -> Cmd {
        self.cmd(["define", "/dev/stdin"]).input(xml)
    }

    /// The first start of a new domain: `--reset-nvram` gives it pristine
    /// UEFI variables even if a stale `<name>_VARS.fd` of an earlier domain of
    /// that name is still there.
    pub fn start_fresh(&self, id: &str) -> Cmd {
        self.cmd(["start", id, "--reset-nvram"])
    }

    /// Make libvirt look at a pool's directory again (files put there
    /// over ssh become its volumes).
    pub fn pool_refresh(&self, pool: &str) -> Cmd {
        self.cmd(["pool-refresh", pool])
    }

    /// The UUIDs of the active storage pools, one a line.
    pub fn pool_uuids(&self) -> Cmd {
        self.quiet(["pool-list", "--uuid"])
    }

    /// Several pools' definitions in one [`Virsh::batch`], each under its
    /// UUID: UUIDs are safe words in virsh's command syntax, where a pool's
    /// name need not be.
    pub fn batch_pool_dumpxml(&self, uuids: &[String]) -> Cmd {
        self.batch(uuids.iter().map(|u| (u, format!("pool-dumpxml {u}"))))
    }

    /// A new qcow2 volume of `bytes` in `pool`, made by libvirt on its
    /// host; it refuses a name the pool already has.
    pub fn vol_create_qcow2(&self, pool: &str, volume: &str, bytes: u64) -> Cmd {
        self.cmd(["vol-create-as", pool, volume])
            .arg(bytes.to_string())
            .args(["--format", "qcow2"])
    }

    /// A new volume in `pool` from its XML ([`volume_xml`]), made by
    /// libvirt on its host (as libvirt's user, so in a directory the ssh
    /// user cannot write).
    pub fn vol_create_stdin(&self, pool: &str, xml: &str) -> Cmd {
        self.cmd(["vol-create", pool, "/dev/stdin"]).input(xml)
    }

    /// Fill a volume with what arrives on stdin, sent by libvirt over its
    /// own connection (fed by [`Cmd::run_feeding`]).
    pub fn vol_upload_stdin(&self, pool: &str, volume: &str) -> Cmd {
        self.cmd(["vol-upload", "--pool", pool, volume, "/dev/stdin"])
    }

    /// A volume's definition (format, capacity, allocation), by path.
    pub fn vol_dumpxml(&self, path: &str) -> Cmd {
        self.cmd(["vol-dumpxml", path])
    }

    pub fn list_uuids(&self) -> Cmd {
        self.quiet(["list", "--all", "--uuid"])
    }

    /// The live and the persistent definition of several domains in one
    /// [`Virsh::batch`], each domain's under its UUID. UUIDs are safe words
    /// in virsh's command syntax, whatever the domains are named.
    pub fn batch_dumpxml(&self, uuids: &[String]) -> Cmd {
        self.batch(
            uuids
                .iter()
                .map(|u| (u, format!("dumpxml {u}; dumpxml --inactive {u}"))),
        )
    }

    /// Delete a storage volume by its path, through libvirt, so the pool
    /// forgets it too.
    /// Delete a volume named by its pool (one bkt did not make: shown, not
    /// run).
    pub fn vol_delete_in_pool(&self, pool: &str, volume: &str) -> Cmd {
        self.cmd(["vol-delete", "--pool", pool, volume])
    }

    pub fn vol_delete(&self, path: &str) -> Cmd {
        self.cmd(["vol-delete", path])
    }

    pub fn capabilities(&self) -> Cmd {
        self.cmd(["capabilities"])
    }

    /// `virsh change-media`: put `source` in drive `target`, or eject it, in
    /// the persistent definition and, with `live`, in the running VM.
    pub fn change_media(&self, name: &str, target: &str, source: Option<&str>, live: bool) -> Cmd {
        let mut args = vec!["change-media", name, target];
        match source {
            Some(s) => args.extend([s, "--update"]),
            None => args.push("--eject"),
        }
        args.push("--config");
        if live {
            args.push("--live");
        }
        self.cmd(args)
    }

    /// Remove a drive from the persistent definition (a SATA CD-ROM cannot
    /// be unplugged from a running VM).
    pub fn detach_disk_config(&self, name: &str, target: &str) -> Cmd {
        self.cmd(["detach-disk", name, target, "--config"])
    }

    pub fn send_key(&self, name: &str, key: &str) -> Cmd {
        self.cmd(["send-key", name, key])
    }

    pub fn screenshot(&self, name: &str, file: &str) -> Cmd {
        self.cmd(["screenshot", name, "--file", file])
    }

    /// Save the running VM's memory to disk and stop it; the next `start`
    /// restores it where it was.
    pub fn managedsave(&self, name: &str) -> Cmd {
        self.cmd(["managedsave", name])
    }

    /// Discard a saved VM's memory (it boots afresh at the next start).
    pub fn managedsave_remove(&self, name: &str) -> Cmd {
        self.cmd(["managedsave-remove", name])
    }

    pub fn dominfo(&self, name: &str) -> Cmd {
        self.cmd(["dominfo", name])
    }

    /// Set the guest's clock from the host's, through the guest agent.
    pub fn domtime_sync(&self, name: &str) -> Cmd {
        self.cmd(["domtime", name, "--sync"])
    }

    /// Undefine with everything libvirt keeps for the domain. Never
    /// `--remove-all-storage`: it also deletes CD-ROM images that sit in a
    /// storage pool, the user's Windows ISO included.
    pub fn undefine(&self, name: &str) -> Cmd {
        self.cmd([
            "undefine",
            name,
            "--nvram",
            "--tpm",
            "--snapshots-metadata",
            "--checkpoints-metadata",
            "--managed-save",
        ])
    }
}

/// What a [`Virsh::batch`] echoes before each part: `@@bkt KEY`.
pub const BATCH_MARK: &str = "@@bkt";

/// Whether `key` can name a part of a [`Virsh::batch`]: a word of ASCII
/// letters, digits, '.', '_' and '-' (a VM name, a UUID), which virsh's
/// command syntax takes as it is.
pub fn is_batch_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The key of a line that is a mark: exactly `@@bkt KEY`, nothing before
/// or after. A line that merely holds the mark, or names no word, is data.
fn batch_mark_key(line: &str) -> Option<&str> {
    line.strip_prefix(BATCH_MARK)?
        .strip_prefix(' ')
        .filter(|key| is_batch_key(key))
}

/// Split the output of a [`Virsh::batch`] at its marks: each part's key
/// and what its commands printed (maybe nothing), in the order virsh ran
/// them. Empty output (virsh did not connect, and said why on stderr) has
/// no parts. An error when the output does not start with a mark, or when
/// a mark comes twice: the keys of a batch differ, so a second one is a
/// part's output holding a line like it, and where that part ends is not
/// known.
pub fn split_batch(out: &str) -> Result<Vec<(&str, &str)>> {
    let mut parts: Vec<(&str, &str)> = Vec::new();
    // Where the current part's output starts.
    let mut start = 0;
    let mut at = 0;
    for line in out.split_inclusive('\n') {
        let next = at + line.len();
        if let Some(key) = batch_mark_key(line.strip_suffix('\n').unwrap_or(line)) {
            if parts.iter().any(|(k, _)| *k == key) {
                bail!(
                    "virsh printed the mark {:?} twice: the output of a command holds a line \
                     like it, so where that output ends is not known",
                    line.trim_end()
                );
            }
            if let Some((_, piece)) = parts.last_mut() {
                *piece = &out[start..at];
            }
            parts.push((key, ""));
            start = next;
        } else if parts.is_empty() {
            bail!(
                "virsh printed {:?} before the first mark (\"{BATCH_MARK} KEY\") it was asked \
                 to echo",
                line.trim_end()
            );
        }
        at = next;
    }
    if let Some((_, piece)) = parts.last_mut() {
        *piece = &out[start..];
    }
    Ok(parts)
}

/// The pieces of [`split_batch`]'s `parts` for exactly `keys`, in this
/// order; an error naming the first mark that is missing or unexpected.
pub fn batch_pieces<'a, const N: usize>(
    parts: &[(&str, &'a str)],
    keys: [&str; N],
) -> Result<[&'a str; N]> {
    let echoed: Vec<&str> = parts.iter().map(|(k, _)| *k).collect();
    if let Some(i) = (0..N.max(echoed.len())).find(|&i| echoed.get(i) != keys.get(i)) {
        let echoed = echoed.join(", ");
        return Err(match keys.get(i) {
            Some(key) => anyhow!(
                "virsh did not echo the mark \"{BATCH_MARK} {key}\" where it was asked to \
                 (it echoed: {echoed})"
            ),
            None => anyhow!(
                "virsh echoed a mark it was not asked to: \"{BATCH_MARK} {}\" (it echoed: \
                 {echoed})",
                parts[i].0
            ),
        });
    }
    Ok(std::array::from_fn(|i| parts[i].1))
}
const NODE_PART: &str = "node";
const LEASES_PART: &str = "leases";
const SAVED_PART: &str = "saved";
const DOMSTATS_PART: &str = "domstats";
const DOMSTATS: [&str; 6] = [
    "domstats",
    "--raw",
    "--state",
    "--vcpu",
    "--balloon",
    "--block",
];

/// Where libvirt looks for a guest's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrSource {
    /// The DHCP lease libvirt's dnsmasq handed out.
    Lease,
    /// The QEMU guest agent inside the guest.
    Agent,
    /// The host's ARP table.
    Arp,
}

impl AddrSource {
    pub const ALL: [AddrSource; 3] = [AddrSource::Lease, AddrSource::Agent, AddrSource::Arp];

    pub fn as_str(self) -> &'static str {
        match self {
            AddrSource::Lease => "lease",
            AddrSource::Agent => "agent",
            AddrSource::Arp => "arp",
        }
    }
}

/// The state of a domain, from `domstats` (`state.state`) or `domstate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DomState {
    NoState,
    Running,
    Blocked,
    Paused,
    ShuttingDown,
    ShutOff,
    Crashed,
    Suspended,
}

impl DomState {
    /// From libvirt's `virDomainState` number.
    pub fn from_code(code: u32) -> DomState {
        match code {
            1 => DomState::Running,
            2 => DomState::Blocked,
            3 => DomState::Paused,
            4 => DomState::ShuttingDown,
            5 => DomState::ShutOff,
            6 => DomState::Crashed,
            7 => DomState::Suspended,
            _ => DomState::NoState,
        }
    }

    /// From the words `virsh domstate` prints.
    pub fn from_words(words: &str) -> Option<DomState> {
        Some(match words {
            "no state" => DomState::NoState,
            "running" => DomState::Running,
            "idle" | "blocked" => DomState::Blocked,
            "paused" => DomState::Paused,
            "in shutdown" => DomState::ShuttingDown,
            "shut off" => DomState::ShutOff,
            "crashed" => DomState::Crashed,
            "pmsuspended" => DomState::Suspended,
            _ => return None,
        })
    }

    pub fn label(self) -> &'static str {
        match self {
            DomState::NoState => "no state",
            DomState::Running => "running",
            DomState::Blocked => "blocked",
            DomState::Paused => "paused",
            DomState::ShuttingDown => "in shutdown",
            DomState::ShutOff => "shut off",
            DomState::Crashed => "crashed",
            DomState::Suspended => "suspended",
        }
    }

    /// Whether QEMU is running for this domain (anything but off).
    pub fn is_active(self) -> bool {
        !matches!(self, DomState::ShutOff | DomState::NoState)
    }
}

/// What `bkt` reads from `virsh dominfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomInfo {
    /// The domain has a managed save image: its memory saved to disk by
    /// `managedsave`, restored by the next start.
    pub managed_save: bool,
    /// The memory it uses now (what a save writes, at most).
    pub used_memory_kib: u64,
}

/// The host's memory in bytes and its CPUs, from `virsh nodeinfo`
/// (`CPU(s):  2`, `Memory size:  24684096 KiB`).
pub fn parse_nodeinfo(out: &str) -> Result<(u64, u32)> {
    let field = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(str::trim)
            .ok_or_else(|| anyhow!("virsh nodeinfo printed no \"{key}\" line"))
    };
    let cpus = field("CPU(s):")?;
    let cpus = cpus
        .parse()
        .map_err(|_| anyhow!("virsh nodeinfo: unexpected \"CPU(s): {cpus}\""))?;
    let mem = field("Memory size:")?;
    let kib: u64 = mem
        .strip_suffix(" KiB")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| anyhow!("virsh nodeinfo: unexpected \"Memory size: {mem}\""))?;
    Ok((kib * 1024, cpus))
}

pub fn parse_dominfo(out: &str) -> Result<DomInfo> {
    let field = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(str::trim)
            .ok_or_else(|| anyhow!("virsh dominfo printed no \"{key}\" line"))
    };
    let managed_save = match field("Managed save:")? {
        "yes" => true,
        "no" => false,
        other => bail!("virsh dominfo: unexpected \"Managed save: {other}\""),
    };
    let used = field("Used memory:")?;
    let used_memory_kib = used
        .strip_suffix(" KiB")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| anyhow!("virsh dominfo: unexpected \"Used memory: {used}\""))?;
    Ok(DomInfo {
        managed_save,
        used_memory_kib,
    })
}

/// The file name ending for the image `virsh screenshot` wrote, from the
/// MIME type it names (`..., with type of image/png`): QEMU picks PNG or
/// PPM.
pub fn screenshot_extension(out: &str) -> Option<&'static str> {
    let mime = out.rsplit_once("with type of ")?.1.trim();
    match mime {
        "image/png" => Some("png"),
        "image/x-portable-pixmap" => Some("ppm"),
        _ => None,
    }
}

/// The guest agent is not there (not installed, not started yet, or the
/// guest is not running it).
pub fn is_no_agent(stderr: &str) -> bool {
    stderr.contains("Guest agent is not responding")
        || stderr.contains("guest agent is not connected")
}

/// Output of `virsh domstate --reason NAME`, e.g. `shut off (shutdown)`.
pub fn parse_domstate(out: &str) -> Result<(DomState, String)> {
    let line = out.trim();
    let (words, reason) = match line.split_once(" (") {
        Some((w, r)) => (w, r.trim_end_matches(')')),
        None => (line, ""),
    };
    let state = DomState::from_words(words)
        .with_context(|| format!("unexpected `virsh domstate` output: {line:?}"))?;
    Ok((state, reason.to_string()))
}

/// One block device from `domstats --block`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockStat {
    pub name: String,
    pub path: String,
    pub allocation: u64,
    pub capacity: u64,
    pub physical: u64,
}

impl BlockStat {
    /// Bytes the image takes on the host. A running QEMU reports the
    /// highest written offset as allocation (0 on a fresh disk); the file's
    /// own size is the better figure then.
    pub fn used(&self) -> u64 {
        if self.allocation > 0 {
            self.allocation
        } else {
            self.physical
        }
    }

    /// Install media, not a disk the VM owns: CD-ROM images are ISOs.
    pub fn is_media(&self) -> bool {
        self.path.to_ascii_lowercase().ends_with(".iso")
    }
}

/// One domain's record in `virsh domstats --raw --state --vcpu --balloon --block`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomStats {
    pub name: String,
    pub state: DomState,
    pub vcpus: u32,
    /// `balloon.maximum`, KiB.
    pub memory_kib: u64,
    pub blocks: Vec<BlockStat>,
}

/// Parse `virsh domstats --raw ...` (all domains, one record each).
pub fn parse_domstats(out: &str) -> Result<Vec<DomStats>> {
    let mut doms = Vec::new();
    let mut cur: Option<(String, BTreeMap<String, String>)> = None;
    let finish = |name: String, kv: BTreeMap<String, String>| -> Result<DomStats> {
        let num = |k: &str| -> u64 { kv.get(k).and_then(|v| v.parse().ok()).unwrap_or(0) };
        let count = num("block.count");
        let blocks = (0..count)
            .map(|i| BlockStat {
                name: kv
                    .get(&format!("block.{i}.name"))
                    .cloned()
                    .unwrap_or_default(),
                path: kv
                    .get(&format!("block.{i}.path"))
                    .cloned()
                    .unwrap_or_default(),
                allocation: num(&format!("block.{i}.allocation")),
                capacity: num(&format!("block.{i}.capacity")),
                physical: num(&format!("block.{i}.physical")),
            })
            .collect();
        let state_code = kv
            .get("state.state")
            .with_context(|| format!("domstats for {name:?} has no state.state"))?
            .parse()
            .with_context(|| format!("domstats for {name:?}: bad state.state"))?;
        Ok(DomStats {
            state: DomState::from_code(state_code),
            vcpus: num("vcpu.current") as u32,
            memory_kib: num("balloon.maximum"),
            blocks,
            name,
        })
    };
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("Domain: ") {
            if let Some((name, kv)) = cur.take() {
                doms.push(finish(name, kv)?);
            }
            let name = rest.trim().trim_matches('\'').to_string();
            cur = Some((name, BTreeMap::new()));
        } else if let Some((k, v)) = line.trim().split_once('=') {
            match cur.as_mut() {
                Some((_, kv)) => {
                    kv.insert(k.to_string(), v.to_string());
                }
                None => bail!("unexpected `virsh domstats` output: {line:?} before any Domain:"),
            }
        }
    }
    if let Some((name, kv)) = cur.take() {
        doms.push(finish(name, kv)?);
    }
    Ok(doms)
}

/// What `ipv4 192.168.122.4/24` (the protocol and address columns) says:
/// None for any other protocol word, an error when the address column is
/// not an address of that protocol with a prefix length. libvirt passes on
/// what the guest agent answers as it is, and the guest runs whatever its
/// user installed: the text reaches the user only escaped.
fn ifaddr(proto: &str, cidr: &str) -> Result<Option<IpAddr>> {
    let v4 = match proto {
        "ipv4" => true,
        "ipv6" => false,
        _ => return Ok(None),
    };
    // Windows's agent writes a link-local IPv6 address with its zone
    // (`fe80::1%12`), which an IpAddr does not keep.
    let zone_ok = |z: &str| {
        !z.is_empty()
            && z.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    };
    cidr.split_once('/')
        .filter(|(_, prefix)| prefix.parse::<u8>().is_ok())
        .and_then(|(addr, _)| match addr.split_once('%') {
            Some((a, zone)) if !v4 && zone_ok(zone) => a.parse::<IpAddr>().ok(),
            Some(_) => None,
            None => addr.parse::<IpAddr>().ok(),
        })
        .filter(|a| a.is_ipv4() == v4)
        .map(Some)
        .ok_or_else(|| not_an_address(cidr))
}

/// The error for an address column that holds something else.
pub fn not_an_address(text: &str) -> anyhow::Error {
    anyhow!(
        "the guest gave something that is not an address: \"{}\"",
        crate::ui::escaped(text)
    )
}

/// A row of `domifaddr`: `vnet3  52:54:00:b4:b3:60  ipv4  192.168.122.4/24`.
/// The protocol and the address are the last two words: the interface
/// name before them is the guest's with `--source agent`, and Windows's
/// have spaces (`Ethernet Instance 0`).
fn parse_ifaddr_row(line: &str) -> Result<Option<IpAddr>> {
    match line.split_whitespace().collect::<Vec<_>>()[..] {
        [_, _, .., proto, cidr] => ifaddr(proto, cidr),
        _ => Ok(None),
    }
}

/// Parse `virsh domifaddr NAME [--source lease|agent|arp]`: every address,
/// or an error when a row's address is not one.
pub fn parse_domifaddr(out: &str) -> Result<Vec<IpAddr>> {
    let mut addrs = Vec::new();
    for line in out.lines() {
        addrs.extend(parse_ifaddr_row(line)?);
    }
    Ok(addrs)
}

/// Parse the output of [`Virsh::batch_domifaddr`]: each domain's addresses.
/// A row that holds no address is left out: these are DHCP leases (the
/// network's, not the guest's word), and one odd row must not hide every
/// other VM's.
/// Output that is not the batch's (no marks) gives no addresses, as a
/// failed call does.
pub fn parse_batch_domifaddr(out: &str) -> BTreeMap<String, Vec<IpAddr>> {
    let parts = split_batch(out).unwrap_or_default();
    parts
        .into_iter()
        .map(|(name, table)| {
            let addrs = table.lines().filter_map(|l| parse_ifaddr_row(l).ok()?);
            (name.to_string(), addrs.collect())
        })
        .collect()
}

/// One DHCP lease of a libvirt network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Lower case, as libvirt prints it.
    pub mac: String,
    pub addr: IpAddr,
}

/// Parse `virsh net-dhcp-leases NET`. A row is `EXPIRY-DATE EXPIRY-TIME
/// MAC PROTOCOL ADDRESS/PREFIX HOSTNAME CLIENT-ID`, `-` for an empty field.
/// A row whose address is not one is left out, as in
/// [`parse_batch_domifaddr`].
pub fn parse_leases(out: &str) -> Vec<Lease> {
    out.lines()
        .filter_map(
            |line| match line.split_whitespace().collect::<Vec<_>>()[..] {
                [_date, _time, mac, proto, cidr, _host, _client] => Some(Lease {
                    mac: mac.to_ascii_lowercase(),
                    addr: ifaddr(proto, cidr).ok()??,
                }),
                _ => None,
            },
        )
        .collect()
}

/// What [`Virsh::status_batch`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusBatch {
    /// The host's memory (bytes) and CPUs, when `nodeinfo` was asked.
    pub node: Option<(u64, u32)>,
    /// Empty when the connection has no active `default` network.
    pub leases: Vec<Lease>,
    /// The VMs saved to disk.
    pub saved: Vec<String>,
    pub domstats: Vec<DomStats>,
}

/// Split the output of [`Virsh::status_batch`] at its marks and parse each
/// part.
pub fn parse_status_batch(out: &str) -> Result<StatusBatch> {
    let unexpected = || {
        let first = out.lines().next().unwrap_or_default();
        format!("unexpected output of virsh, not the marks it was asked to echo: {first:?}")
    };
    let parts = split_batch(out).with_context(unexpected)?;
    let (node, rest) = match parts.split_first() {
        Some(((NODE_PART, node), rest)) => (Some(*node), rest),
        _ => (None, &parts[..]),
    };
    let [leases, saved, domstats] =
        batch_pieces(rest, [LEASES_PART, SAVED_PART, DOMSTATS_PART]).with_context(unexpected)?;
    Ok(StatusBatch {
        node: node.map(parse_nodeinfo).transpose()?,
        leases: parse_leases(leases),
        saved: parse_names(saved),
        domstats: parse_domstats(domstats)?,
    })
}

/// The versions `virsh version` reports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Versions {
    pub libvirt: String,
    pub hypervisor: String,
}

/// Parse `virsh version`.
pub fn parse_version(out: &str) -> Versions {
    let mut v = Versions::default();
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("Running against daemon:") {
            v.libvirt = rest.trim().to_string();
        } else if let Some(rest) = line.strip_prefix("Using library: libvirt") {
            if v.libvirt.is_empty() {
                v.libvirt = rest.trim().to_string();
            }
        } else if let Some(rest) = line.strip_prefix("Running hypervisor:") {
            v.hypervisor = rest.trim().to_string();
        }
    }
    v
}

/// What `domcapabilities` says about UEFI Secure Boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecureBoot {
    /// The loader libvirt will pick for Secure Boot with enrolled keys, when
    /// one is listed.
    pub loader: Option<String>,
    /// Whether the loader supports `secure='yes'`.
    pub secure: bool,
    /// Whether a listed firmware has Microsoft's keys enrolled (`.ms.` or
    /// `secboot` builds), which Windows needs.
    pub enrolled_keys: bool,
}

/// Parse `virsh domcapabilities ...` XML for Secure Boot support.
pub fn parse_domcaps_secure_boot(xml: &str) -> Result<SecureBoot> {
    let doc = roxmltree::Document::parse(xml).context("domcapabilities is not XML")?;
    let loader = doc.descendants().find(|n| n.has_tag_name("loader"));
    let Some(loader) = loader.filter(|l| l.attribute("supported") == Some("yes")) else {
        return Ok(SecureBoot {
            loader: None,
            secure: false,
            enrolled_keys: false,
        });
    };
    let values: Vec<String> = loader
        .children()
        .filter(|n| n.has_tag_name("value"))
        .filter_map(|n| n.text().map(str::to_string))
        .collect();
    let secure = loader
        .children()
        .filter(|n| n.has_tag_name("enum") && n.attribute("name") == Some("secure"))
        .flat_map(|e| e.children().filter(|n| n.has_tag_name("value")))
        .any(|v| v.text() == Some("yes"));
    let keyed = |p: &String| {
        let f = p.rsplit('/').next().unwrap_or(p);
        f.contains(".ms.") || f.contains("secboot") || f.contains("enrolled")
    };
    let ms = values.iter().find(|p| {
        let f = p.rsplit('/').next().unwrap_or(p);
        f.contains(".ms.")
    });
    let pick = ms.or_else(|| values.iter().find(|p| keyed(p)));
    Ok(SecureBoot {
        loader: pick.cloned(),
        secure,
        enrolled_keys: pick.is_some(),
    })
}

/// The target path of a storage pool, from `virsh pool-dumpxml POOL`.
pub fn parse_pool_path(xml: &str) -> Result<String> {
    let doc = roxmltree::Document::parse(xml).context("pool-dumpxml is not XML")?;
    doc.descendants()
        .find(|n| n.has_tag_name("target"))
        .and_then(|t| t.children().find(|n| n.has_tag_name("path")))
        .and_then(|p| p.text())
        .map(|s| s.trim().to_string())
        .context("pool XML has no <target><path>")
}

/// A raw volume of `bytes` named `name`, with file mode `mode` (0644: the
/// ssh user reads it back to check it).
pub fn volume_xml(name: &str, bytes: u64, mode: u32) -> String {
    let name = name
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<volume>\n  <name>{name}</name>\n  <capacity unit='bytes'>{bytes}</capacity>\n  \
         <allocation unit='bytes'>0</allocation>\n  <target>\n    <format type='raw'/>\n    \
         <permissions>\n      <mode>{mode:04o}</mode>\n    </permissions>\n  </target>\n</volume>\n"
    )
}

/// Each pool's name and target path in the output of
/// [`Virsh::batch_pool_dumpxml`] (a pool gone in between printed nothing).
pub fn parse_batch_pool_dumpxml(out: &str) -> Result<Vec<(String, String)>> {
    let mut pools = Vec::new();
    for (_, xml) in split_batch(out)? {
        if xml.trim().is_empty() {
            continue;
        }
        let doc = roxmltree::Document::parse(xml).context("pool-dumpxml is not XML")?;
        let name = doc
            .root_element()
            .children()
            .find(|n| n.has_tag_name("name"))
            .and_then(|n| n.text())
            .context("pool XML has no <name>")?;
        pools.push((name.trim().to_string(), parse_pool_path(xml)?));
    }
    Ok(pools)
}

/// Whether `virsh net-info NET` says the network is active.
pub fn parse_net_active(out: &str) -> Option<bool> {
    net_info_flag(out, "Active")
}

/// Whether `virsh net-info` says the network starts with the host.
pub fn parse_net_autostart(out: &str) -> Option<bool> {
    net_info_flag(out, "Autostart")
}

fn net_info_flag(out: &str, key: &str) -> Option<bool> {
    out.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim() == "yes")
    })
}

/// Where a disk's data lives (`<disk type=...>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskKind {
    /// A file (`path` is its name).
    File,
    /// A block device (`path` is the device node).
    Block,
    /// A volume of a storage pool, named by pool and volume.
    Volume { pool: String, volume: String },
    /// Anything else (network, directory, NVMe, ...).
    Other(String),
}

/// What a `<disk>` is to the guest (`device=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskDevice {
    Disk,
    Cdrom,
    Floppy,
    Lun,
    Other(String),
}

impl DiskDevice {
    fn parse(device: &str) -> DiskDevice {
        match device {
            "disk" => DiskDevice::Disk,
            "cdrom" => DiskDevice::Cdrom,
            "floppy" => DiskDevice::Floppy,
            "lun" => DiskDevice::Lun,
            other => DiskDevice::Other(other.to_string()),
        }
    }
}

/// A disk or CD-ROM in a domain's XML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomDisk {
    pub device: DiskDevice,
    pub path: String,
    pub target: String,
    pub kind: DiskKind,
    /// `<shareable/>`: meant to be used by several domains at once.
    pub shareable: bool,
}

/// What `bkt` needs to know from a domain's XML (`virsh dumpxml`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DomainXml {
    pub name: String,
    pub uuid: String,
    pub disks: Vec<DomDisk>,
    pub nvram: Option<String>,
    pub tpm_emulator: bool,
    /// `tpm-crb` / `tpm-tis`, and the emulated TPM version.
    pub tpm_model: String,
    pub tpm_version: String,
    /// UEFI with Secure Boot: the loader is `secure='yes'` or the firmware
    /// feature `secure-boot` is enabled.
    pub uefi_secure_boot: bool,
    pub macs: Vec<String>,
}

/// Parse a domain's XML.
pub fn parse_domain_xml(xml: &str) -> Result<DomainXml> {
    let doc = roxmltree::Document::parse(xml).context("domain XML is not XML")?;
    let root = doc.root_element();
    let mut d = DomainXml {
        name: root
            .children()
            .find(|n| n.has_tag_name("name"))
            .and_then(|n| n.text())
            .unwrap_or_default()
            .to_string(),
        uuid: root
            .children()
            .find(|n| n.has_tag_name("uuid"))
            .and_then(|n| n.text())
            .unwrap_or_default()
            .to_string(),
        ..Default::default()
    };
    for n in root.descendants() {
        if n.has_tag_name("disk") {
            let src = n.children().find(|c| c.has_tag_name("source"));
            let attr = |a: &str| src.and_then(|s| s.attribute(a)).unwrap_or_default();
            let path = src
                .and_then(|s| s.attribute("file").or_else(|| s.attribute("dev")))
                .unwrap_or_default();
            let target = n
                .children()
                .find(|c| c.has_tag_name("target"))
                .and_then(|t| t.attribute("dev"))
                .unwrap_or_default();
            let kind = match n.attribute("type").unwrap_or("file") {
                "file" => DiskKind::File,
                "block" => DiskKind::Block,
                "volume" => DiskKind::Volume {
                    pool: attr("pool").to_string(),
                    volume: attr("volume").to_string(),
                },
                other => DiskKind::Other(other.to_string()),
            };
            d.disks.push(DomDisk {
                device: DiskDevice::parse(n.attribute("device").unwrap_or("disk")),
                path: path.to_string(),
                target: target.to_string(),
                kind,
                shareable: n.children().any(|c| c.has_tag_name("shareable")),
            });
        } else if n.has_tag_name("nvram") {
            d.nvram = n.text().map(|t| t.trim().to_string());
        } else if n.has_tag_name("tpm") {
            d.tpm_model = n.attribute("model").unwrap_or_default().to_string();
            if let Some(b) = n.children().find(|c| c.has_tag_name("backend")) {
                d.tpm_emulator = b.attribute("type") == Some("emulator");
                d.tpm_version = b.attribute("version").unwrap_or_default().to_string();
            }
        } else if (n.has_tag_name("loader") && n.attribute("secure") == Some("yes"))
            || (n.has_tag_name("feature")
                && n.parent().is_some_and(|p| p.has_tag_name("firmware"))
                && n.attribute("name") == Some("secure-boot")
                && n.attribute("enabled") == Some("yes"))
        {
            d.uefi_secure_boot = true;
        } else if n.has_tag_name("mac")
            && n.parent().is_some_and(|p| p.has_tag_name("interface"))
            && let Some(a) = n.attribute("address")
        {
            d.macs.push(a.to_string());
        }
    }
    Ok(d)
}

/// Every domain definition in the output of [`Virsh::batch_dumpxml`] (a
/// running domain's live and persistent ones both). A domain that vanished
/// in between prints nothing on stdout; its error went to stderr.
pub fn parse_batch_dumpxml(out: &str) -> Result<Vec<DomainXml>> {
    let mut docs = Vec::new();
    for (_, xml) in split_batch(out)? {
        let mut cur = String::new();
        for line in xml.lines() {
            if cur.is_empty() && line.trim().is_empty() {
                continue;
            }
            cur.push_str(line);
            cur.push('\n');
            if line.trim_end() == "</domain>" {
                docs.push(parse_domain_xml(&cur)?);
                cur.clear();
            }
        }
    }
    Ok(docs)
}

/// The user and group QEMU runs as for `qemu:///system`: the DAC security
/// model's `<baselabel>` in `virsh capabilities` (`+64055:+64055`).
pub fn parse_dac_label(xml: &str) -> Result<Option<(u32, u32)>> {
    let doc = roxmltree::Document::parse(xml).context("virsh capabilities is not XML")?;
    let dac = doc.descendants().find(|n| {
        n.has_tag_name("secmodel")
            && n.children()
                .any(|c| c.has_tag_name("model") && c.text() == Some("dac"))
    });
    let Some(label) = dac
        .and_then(|m| m.children().find(|c| c.has_tag_name("baselabel")))
        .and_then(|l| l.text())
    else {
        return Ok(None);
    };
    let (u, g) = label
        .trim()
        .split_once(':')
        .with_context(|| format!("unexpected DAC label {label:?}"))?;
    let num = |s: &str| -> Result<u32> {
        s.trim_start_matches('+')
            .parse()
            .with_context(|| format!("unexpected DAC label {label:?}"))
    };
    Ok(Some((num(u)?, num(g)?)))
}

/// libvirt's "no such storage volume" error (a path no pool knows).
/// What `virsh vol-dumpxml` says of a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolInfo {
    pub format: String,
    pub capacity: u64,
    pub allocation: u64,
}

pub fn parse_vol_xml(xml: &str) -> Result<VolInfo> {
    let doc = roxmltree::Document::parse(xml).context("parsing the volume XML")?;
    let root = doc.root_element();
    let bytes = |tag: &str| -> Result<u64> {
        let n = root
            .children()
            .find(|n| n.has_tag_name(tag))
            .with_context(|| format!("the volume XML has no <{tag}>"))?;
        let unit = n.attribute("unit").unwrap_or("bytes");
        if unit != "bytes" {
            bail!("the volume's <{tag}> is in {unit}, not bytes");
        }
        n.text()
            .unwrap_or_default()
            .trim()
            .parse()
            .with_context(|| format!("the volume's <{tag}> is not a number"))
    };
    let format = root
        .children()
        .find(|n| n.has_tag_name("target"))
        .and_then(|t| t.children().find(|n| n.has_tag_name("format")))
        .and_then(|f| f.attribute("type"))
        .unwrap_or("unknown")
        .to_string();
    Ok(VolInfo {
        format,
        capacity: bytes("capacity")?,
        allocation: bytes("allocation")?,
    })
}

pub fn is_no_volume(stderr: &str) -> bool {
    stderr.contains("Storage volume not found")
}

/// One name a line, as `snapshot-list --name` and `list --name` print them.
pub fn parse_names(out: &str) -> Vec<String> {
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// libvirt's "not found" errors for a domain, across versions.
pub fn is_no_domain(stderr: &str) -> bool {
    stderr.contains("failed to get domain") || stderr.contains("Domain not found")
}

#[cfg(test)]
mod tests {
    // why: tests read fixtures and set up the files and processes they look at.
    #![allow(clippy::disallowed_methods, clippy::disallowed_types)]

    use super::*;

    fn fx(name: &str) -> String {
        let p = format!("{}/fixtures/virsh/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    #[test]
    fn argv_pins_locale_and_uri() {
        let v = Virsh::new("qemu:///system");
        assert_eq!(
            v.domstats().display(),
            "virsh -c qemu:///system domstats --raw --state --vcpu --balloon --block"
        );
        assert_eq!(
            v.list_names().display(),
            "virsh -q -c qemu:///system list --all --name"
        );
        assert_eq!(
            v.undefine("win").display(),
            "virsh -c qemu:///system undefine win --nvram --tpm --snapshots-metadata --checkpoints-metadata --managed-save"
        );
        assert!(!v.undefine("w").display().contains("remove-all-storage"));
        assert_eq!(
            v.batch_domifaddr(&["a".into(), "b".into()]).display(),
            "virsh -c qemu:///system 'echo @@bkt a; domifaddr --source lease a; echo @@bkt b; domifaddr --source lease b'"
        );
        assert_eq!(
            v.status_batch(false).display(),
            "virsh -c qemu:///system 'echo @@bkt leases; net-dhcp-leases default; echo @@bkt saved; list --all --name --with-managed-save; echo @@bkt domstats; domstats --raw --state --vcpu --balloon --block'"
        );
        // The recording was made with the script this builds.
        let script = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/record-status-fixtures.sh"
        ))
        .unwrap();
        let node = v.status_batch(true).arguments()[2].clone();
        assert!(
            script.contains(&format!("batch_node() {{ v \"{node}\"; }}")),
            "{node}"
        );
    }

    #[test]
    fn the_batch_over_ssh_brings_the_hosts_size_first() {
        let b = parse_status_batch(&fx("status-batch-node-running.txt")).unwrap();
        assert_eq!(b.node, Some((24684096 * 1024, 2)));
        assert_eq!(b.leases.len(), 1);
        assert_eq!(b.leases[0].mac, "52:54:00:b4:b3:60");
        assert_eq!(b.saved, Vec::<String>::new());
        let names: Vec<&str> = b.domstats.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["off", "tiny"]);
        // Without it, no size, the rest the same.
        let plain = parse_status_batch(&fx("status-batch-running.txt")).unwrap();
        assert_eq!(plain.node, None);
        assert!(parse_status_batch("@@bkt node\nCPU(s): 2\n@@bkt leases\n").is_err());
    }

    #[test]
    fn domstats_of_running_and_shut_off() {
        let d = parse_domstats(&fx("domstats-running-and-shutoff.txt")).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].name, "t2");
        assert_eq!(d[0].state, DomState::ShutOff);
        assert_eq!(d[0].vcpus, 2);
        assert_eq!(d[0].memory_kib, 1048576);
        assert_eq!(d[0].blocks.len(), 1);
        assert_eq!(d[0].blocks[0].capacity, 4294967296);
        assert_eq!(d[0].blocks[0].used(), 200704);
        assert_eq!(d[1].name, "t1");
        assert_eq!(d[1].state, DomState::Running);
        assert_eq!(d[1].memory_kib, 2097152);
        assert_eq!(d[1].blocks.len(), 2);
        assert!(d[1].blocks[0].is_media());
        assert!(!d[1].blocks[1].is_media());
        // A running, never-written disk reports allocation 0: fall back to the
        // file's size.
        assert_eq!(d[1].blocks[1].used(), 204800);
        assert_eq!(d[1].blocks[1].capacity, 8589934592);
    }

    #[test]
    fn domstats_with_no_domains_is_empty() {
        assert!(parse_domstats("").unwrap().is_empty());
        assert!(parse_domstats("\n").unwrap().is_empty());
    }

    #[test]
    fn domstats_garbage_is_an_error() {
        assert!(parse_domstats("state.state=1\n").is_err());
        assert!(parse_domstats("Domain: 'x'\n  vcpu.current=1\n").is_err());
    }

    #[test]
    fn domstate_with_reason() {
        assert_eq!(
            parse_domstate(&fx("domstate-reason-running.txt")).unwrap(),
            (DomState::Running, "booted".to_string())
        );
        assert_eq!(
            parse_domstate(&fx("domstate-reason-shutoff.txt")).unwrap(),
            (DomState::ShutOff, "unknown".to_string())
        );
        // After `virsh shutdown` and the guest powering itself off.
        assert_eq!(
            parse_domstate(&fx("domstate-reason-shutoff-shutdown.txt")).unwrap(),
            (DomState::ShutOff, "shutdown".to_string())
        );
        assert!(parse_domstate("sleeping (deeply)").is_err());
    }

    #[test]
    fn domifaddr_sources() {
        let lease = parse_domifaddr(&fx("domifaddr-lease.txt")).unwrap();
        assert_eq!(lease, [ip("192.168.122.4")]);
        assert!(
            parse_domifaddr(&fx("domifaddr-lease-none.txt"))
                .unwrap()
                .is_empty()
        );
        assert!(
            parse_domifaddr(&fx("domifaddr-arp.txt"))
                .unwrap()
                .is_empty()
        );
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn what_the_guest_agent_answers_is_an_address_or_an_error() {
        // Hand-typed, not recorded: virsh's layout for `--source agent`
        // (vshPrint " %-10s %-17s    %s"), with the names Windows gives
        // its interfaces, the second address of one under `-`, and a
        // link-local IPv6 address with its zone as Windows's agent writes it.
        let windows = " Name       MAC address          Protocol     Address\n\
            -------------------------------------------------------------------------------\n \
            Ethernet Instance 0 52:54:00:b4:b3:60    ipv6         fe80::5d2c:1ab1:4c1e:7b2e%12/64\n \
            -          -                    ipv4         192.168.122.4/24\n \
            Loopback Pseudo-Interface 1 -                    ipv4         127.0.0.1/8\n\n";
        assert_eq!(
            parse_domifaddr(windows).unwrap(),
            [
                ip("fe80::5d2c:1ab1:4c1e:7b2e"),
                ip("192.168.122.4"),
                ip("127.0.0.1")
            ]
        );
        // A hostile guest: an escape sequence where the address goes, a
        // word that is no address, an IPv6 address said to be IPv4, a zone
        // on IPv4, a zone that is more than a name.
        for (row, shown) in [
            (
                " eth0 52:54:00:b4:b3:60 ipv4 \x1b]0;owned\x07\x1b[2J/24",
                r#""\x1b]0;owned\x07\x1b[2J/24""#,
            ),
            (" eth0 - ipv4 localhost/8", r#""localhost/8""#),
            (" eth0 - ipv4 fd00::4/64", r#""fd00::4/64""#),
            (" eth0 - ipv4 1.2.3.4%1/24", r#""1.2.3.4%1/24""#),
            (
                " eth0 - ipv6 fe80::1%\u{202e}x/64",
                r#""fe80::1%\u{202e}x/64""#,
            ),
            (" eth0 - ipv4 192.168.122.4", r#""192.168.122.4""#),
            (" eth0 - ipv4 192.168.122.4/x", r#""192.168.122.4/x""#),
        ] {
            let err = parse_domifaddr(&format!("{}\n{row}\n", &windows[..windows.len() - 1]))
                .unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("the guest gave something that is not an address: {shown}"),
                "{row:?}"
            );
        }
    }

    #[test]
    fn address_sources() {
        let v = Virsh::new("qemu:///system");
        assert_eq!(
            v.domifaddr("w", AddrSource::Agent).display(),
            "virsh -c qemu:///system domifaddr w --source agent"
        );
        assert_eq!(
            parse_domifaddr(&fx("domifaddr-arp-tiny.txt")).unwrap()[0],
            ip("192.168.122.40")
        );
        // A failed call's stdout: one empty line (its error is on stderr).
        assert!(
            parse_domifaddr(&fx("domifaddr-agent-unavailable.txt"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn batch_domifaddr_splits_per_domain() {
        // `off` is shut off: its part failed (on stderr) and so did the
        // call (batch-domifaddr.code), and what it printed still counts.
        let m = parse_batch_domifaddr(&fx("batch-domifaddr.txt"));
        assert_eq!(m.len(), 2);
        assert_eq!(m["tiny"], [ip("192.168.122.4")]);
        assert!(m["off"].is_empty());
        // A lease row that is no address is left out, the others kept.
        let m = parse_batch_domifaddr(
            "@@bkt a\n vnet0 52:54:00:ab:cd:01 ipv4 \x1b[2J/24\n@@bkt b\n vnet1 52:54:00:ab:cd:02 ipv4 192.168.122.9/24\n",
        );
        assert!(m["a"].is_empty());
        assert_eq!(m["b"], [ip("192.168.122.9")]);
    }

    #[test]
    fn dhcp_leases() {
        assert_eq!(
            parse_leases(&fx("net-dhcp-leases-default.txt")),
            [Lease {
                mac: "52:54:00:b4:b3:60".into(),
                addr: ip("192.168.122.4"),
            }]
        );
        // An IPv6 lease, a MAC in capitals, and rows that are no lease.
        let out = " Expiry Time           MAC address         Protocol   IP address         Hostname   Client ID or DUID\n\
            ----------------------------------------------------------------------\n \
            2026-11-28 13:24:49   52:54:00:AB:CD:EF   ipv6       fd00::4/64         win        -\n \
            2026-11-28 13:24:49   52:54:00:ab:cd:01   ipx        10.0.0.1/8         -          -\n \
            2026-11-28 13:24:49   52:54:00:ab:cd:02   ipv4       192.168.122.9      -          -\n \
            2026-11-28 13:24:49   52:54:00:ab:cd:03   ipv4       192.168.122.9/x    -          -\n";
        assert_eq!(
            parse_leases(out),
            [Lease {
                mac: "52:54:00:ab:cd:ef".into(),
                addr: ip("fd00::4"),
            }]
        );
    }

    #[test]
    fn status_batch_at_every_moment() {
        let names = |b: &StatusBatch| -> Vec<(String, DomState)> {
            let mut v: Vec<_> = b
                .domstats
                .iter()
                .map(|d| (d.name.clone(), d.state))
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        let tiny_lease = parse_leases(&fx("net-dhcp-leases-default.txt"));
        assert_eq!(tiny_lease.len(), 1);

        let empty = parse_status_batch(&fx("status-batch-empty.txt")).unwrap();
        assert!(empty.leases.is_empty() && empty.domstats.is_empty());

        // Just started: running, no lease yet.
        let booting = parse_status_batch(&fx("status-batch-booting.txt")).unwrap();
        assert!(booting.leases.is_empty());
        let both = vec![
            ("off".to_string(), DomState::ShutOff),
            ("tiny".to_string(), DomState::Running),
        ];
        assert_eq!(names(&booting), both);

        let running = parse_status_batch(&fx("status-batch-running.txt")).unwrap();
        assert_eq!(running.leases, tiny_lease);
        assert_eq!(names(&running), both);
        let dom = |b: &StatusBatch, n: &str| b.domstats.iter().find(|d| d.name == n).cloned();
        assert_eq!(dom(&running, "off").unwrap().blocks[0].capacity, 4 << 30);
        assert_eq!(dom(&running, "tiny").unwrap().memory_kib, 256 << 10);

        // Shut off: the lease outlives the guest; so it does with the
        // network stopped.
        for f in [
            "status-batch-shutoff.txt",
            "status-batch-network-inactive.txt",
        ] {
            let b = parse_status_batch(&fx(f)).unwrap();
            assert_eq!(b.leases, tiny_lease, "{f}");
            assert_eq!(dom(&b, "tiny").unwrap().state, DomState::ShutOff, "{f}");
        }

        // No `default` network: its error went to stderr, the call succeeded.
        assert_eq!(fx("status-batch-no-network.code").trim(), "0");
        let none = parse_status_batch(&fx("status-batch-no-network.txt")).unwrap();
        assert!(none.leases.is_empty());
        assert_eq!(none.domstats.len(), 2);
    }

    #[test]
    fn status_batch_without_its_marks_is_an_error() {
        // No libvirtd: virsh printed nothing at all (and exited 1).
        assert_eq!(fx("status-batch-no-libvirtd.code").trim(), "1");
        let err = parse_status_batch(&fx("status-batch-no-libvirtd.txt")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unexpected output of virsh, not the marks it was asked to echo: \"\""
        );
        let running = fx("status-batch-running.txt");
        let (leases, stats) = running.split_once("@@bkt domstats\n").unwrap();
        assert!(parse_status_batch(leases).is_err(), "no domstats mark");
        assert!(parse_status_batch(stats).is_err(), "no leases mark");
        assert!(
            parse_status_batch(&running.replace("@@bkt saved\n", "")).is_err(),
            "no saved mark"
        );
        assert!(
            parse_status_batch(&format!("x{running}")).is_err(),
            "not at the start"
        );
        let first = stats.lines().find(|l| l.starts_with("Domain: ")).unwrap();
        let err = parse_status_batch(&running.replacen(first, "", 1)).unwrap_err();
        assert!(err.to_string().contains("before any Domain:"), "{err}");
    }

    #[test]
    fn version() {
        let v = parse_version(&fx("version.txt"));
        assert_eq!(v.libvirt, "11.3.0");
        assert_eq!(v.hypervisor, "QEMU 10.0.2");
    }

    #[test]
    fn secure_boot_from_domcapabilities() {
        let sb = parse_domcaps_secure_boot(&fx("domcapabilities-qemu-q35.xml")).unwrap();
        assert_eq!(
            sb,
            SecureBoot {
                loader: Some("/usr/share/OVMF/OVMF_CODE_4M.ms.fd".into()),
                secure: true,
                enrolled_keys: true
            }
        );
        let none = parse_domcaps_secure_boot(
            "<domainCapabilities><os supported='yes'><loader supported='yes'>\
             <value>/usr/share/OVMF/OVMF_CODE_4M.fd</value>\
             <enum name='secure'><value>no</value></enum></loader></os></domainCapabilities>",
        )
        .unwrap();
        assert!(!none.secure);
        assert!(!none.enrolled_keys);
    }

    #[test]
    fn pool_path() {
        assert_eq!(
            parse_pool_path(&fx("pool-dumpxml-images.xml")).unwrap(),
            "/var/lib/libvirt/images"
        );
    }

    #[test]
    fn net_info() {
        assert_eq!(
            parse_net_active(&fx("net-info-default-active.txt")),
            Some(true)
        );
        assert_eq!(
            parse_net_active(&fx("net-info-default-inactive.txt")),
            Some(false)
        );
        assert_eq!(parse_net_active("Name: default\n"), None);
        assert_eq!(
            parse_net_autostart(&fx("net-info-default-active.txt")),
            Some(false)
        );
        assert_eq!(parse_net_autostart("Autostart:      yes\n"), Some(true));
    }

    #[test]
    fn domain_xml() {
        let d = parse_domain_xml(&fx("dumpxml-windows-running.xml")).unwrap();
        assert_eq!(d.name, "t1");
        assert_eq!(d.disks.len(), 2);
        assert_eq!(d.disks[0].device, DiskDevice::Cdrom);
        assert_eq!(d.disks[0].path, "/tmp/win.iso");
        assert_eq!(d.disks[1].device, DiskDevice::Disk);
        assert_eq!(d.disks[1].path, "/var/lib/libvirt/images/t1.qcow2");
        assert_eq!(
            d.nvram.as_deref(),
            Some("/var/lib/libvirt/qemu/nvram/t1_VARS.fd")
        );
        assert!(d.tpm_emulator);
        assert_eq!(d.tpm_model, "tpm-crb");
        assert_eq!(d.tpm_version, "2.0");
        assert!(d.uefi_secure_boot);
        assert_eq!(d.macs.len(), 1);
        let plain =
            parse_domain_xml("<domain><name>x</name><os><type>hvm</type></os></domain>").unwrap();
        assert!(!plain.uefi_secure_boot && !plain.tpm_emulator);
    }

    #[test]
    fn snapshots() {
        assert_eq!(
            parse_names(&fx("snapshot-list-name.txt")),
            ["clean", "second"]
        );
        assert_eq!(parse_names(&fx("snapshot-current-name.txt")), ["second"]);
        let v = Virsh::new("qemu:///system");
        assert_eq!(
            v.snapshot_create("w", "clean", "fresh install").display(),
            "virsh -c qemu:///system snapshot-create-as --domain w --name clean --description 'fresh install' --atomic"
        );
        assert_eq!(
            v.snapshot_create("w", "clean", "").display(),
            "virsh -c qemu:///system snapshot-create-as --domain w --name clean --atomic"
        );
        let d = parse_domain_xml(&fx("dumpxml-windows-running.xml")).unwrap();
        assert_eq!(d.uuid.len(), 36);
    }

    #[test]
    fn not_found_errors() {
        assert!(is_no_domain(&fx("dominfo-nosuch.err")));
        assert!(is_no_domain(&fx("domstate-uuid-nosuch.txt")));
        assert!(is_no_volume(&fx("vol-delete-not-a-volume.txt")));
        assert!(!is_no_volume(&fx("define-name-taken.txt")));
    }

    #[test]
    fn batch_dumpxml_gives_every_definition() {
        let v = Virsh::new("qemu:///system");
        assert_eq!(
            v.batch_dumpxml(&["u1".into(), "u2".into()]).display(),
            "virsh -c qemu:///system 'echo @@bkt u1; dumpxml u1; dumpxml --inactive u1; echo @@bkt u2; dumpxml u2; dumpxml --inactive u2'"
        );
        // r1 running (live and persistent XML); a vanished UUID prints nothing.
        let docs = parse_batch_dumpxml(&fx("batch-dumpxml.txt")).unwrap();
        assert_eq!(docs.len(), 2);
        for d in &docs {
            assert_eq!(d.name, "r1");
            assert_eq!(d.uuid, "11111111-2222-4333-8444-555555555555");
            assert!(
                d.disks
                    .iter()
                    .any(|k| k.path == "/var/lib/libvirt/images/r1.qcow2"
                        && k.kind == DiskKind::File
                        && !k.shareable)
            );
        }
        assert!(parse_batch_dumpxml("").unwrap().is_empty());
    }

    #[test]
    fn disk_kinds_of_a_hand_made_domain() {
        let d = parse_domain_xml(&fx("dumpxml-hand.xml")).unwrap();
        let got: Vec<(&str, &DiskKind, bool)> = d
            .disks
            .iter()
            .map(|k| (k.path.as_str(), &k.kind, k.shareable))
            .collect();
        assert_eq!(
            got,
            [
                ("/var/lib/libvirt/images/hand.qcow2", &DiskKind::File, false),
                ("/srv/shared-disks/data.img", &DiskKind::File, true),
                ("/dev/loop7", &DiskKind::Block, false),
                (
                    "",
                    &DiskKind::Volume {
                        pool: "images".into(),
                        volume: "pooled.qcow2".into()
                    },
                    false
                ),
            ]
        );
    }

    #[test]
    fn qemu_user_from_capabilities() {
        assert_eq!(
            parse_dac_label(&fx("capabilities.xml")).unwrap(),
            Some((64055, 64055))
        );
        assert_eq!(parse_dac_label("<capabilities/>").unwrap(), None);
    }

    #[test]
    fn define_and_first_start() {
        let v = Virsh::new("qemu:///system");
        assert_eq!(
            v.define_stdin("<domain/>").display(),
            "virsh -c qemu:///system define /dev/stdin"
        );
        assert_eq!(
            v.start_fresh("11111111-2222-4333-8444-555555555555")
                .display(),
            "virsh -c qemu:///system start 11111111-2222-4333-8444-555555555555 --reset-nvram"
        );
        assert_eq!(
            parse_names(&fx("list-all-uuid.txt")),
            ["11111111-2222-4333-8444-555555555555"]
        );
    }
    #[test]
    fn managed_save_is_read_from_dominfo() {
        assert_eq!(
            parse_dominfo(&fx("dominfo-saved.txt")).unwrap(),
            DomInfo {
                managed_save: true,
                used_memory_kib: 262_144
            }
        );
        let running = parse_dominfo(&fx("dominfo-running.txt")).unwrap();
        assert!(!running.managed_save);
        assert_eq!(running.used_memory_kib, 2_097_152);
        assert!(parse_dominfo("Used memory: 1 KiB\n").is_err());
        assert!(parse_dominfo("Managed save:   maybe\nUsed memory: 1 KiB\n").is_err());
        assert!(parse_dominfo("Managed save: no\nUsed memory: lots\n").is_err());
        let (state, reason) = parse_domstate(&fx("domstate-reason-saved.txt")).unwrap();
        assert_eq!((state, reason.as_str()), (DomState::ShutOff, "saved"));
        let (state, reason) = parse_domstate(&fx("domstate-reason-restored.txt")).unwrap();
        assert_eq!((state, reason.as_str()), (DomState::Running, "restored"));
    }

    #[test]
    fn a_saved_vm_is_known_by_the_list_of_saved_ones() {
        // domstats says shut off (its state.reason 5, saved, is not read)...
        let stats = parse_domstats(&fx("domstats-saved.txt")).unwrap();
        assert_eq!(
            stats
                .iter()
                .map(|d| (d.name.as_str(), d.state))
                .collect::<Vec<_>>(),
            [("rec-tiny", DomState::ShutOff)]
        );
        // ...and the status batch's `list --all --name --with-managed-save`
        // names it, not the shut-off `rec-off` beside it.
        assert_eq!(
            parse_names(&fx("list-name-with-managed-save.txt")),
            ["rec-tiny"]
        );
    }

    #[test]
    fn save_and_clock_argv() {
        let v = Virsh::new("qemu:///session");
        assert_eq!(
            v.managedsave("win").display(),
            "virsh -c qemu:///session managedsave win"
        );
        assert_eq!(
            v.domtime_sync("win").display(),
            "virsh -c qemu:///session domtime win --sync"
        );
        assert!(is_no_agent(&fx("domtime-sync-no-agent.txt")));
        assert!(!is_no_agent(&fx("managedsave-not-running.txt")));
    }
    #[test]
    fn screenshot_type() {
        assert_eq!(screenshot_extension(&fx("screenshot.txt")), Some("png"));
        assert_eq!(
            screenshot_extension("Screenshot saved to /x, with type of image/x-portable-pixmap\n"),
            Some("ppm")
        );
        assert_eq!(screenshot_extension("Screenshot saved to /x\n"), None);
    }

    #[test]
    fn nodeinfo_gives_the_hosts_size() {
        let out = fx("nodeinfo.txt");
        assert_eq!(parse_nodeinfo(&out).unwrap(), (24_684_096 * 1024, 2));
        assert_eq!(
            parse_nodeinfo("CPU(s): 2\n").unwrap_err().to_string(),
            "virsh nodeinfo printed no \"Memory size:\" line"
        );
        assert_eq!(
            parse_nodeinfo("CPU(s): two\nMemory size: 1 KiB\n")
                .unwrap_err()
                .to_string(),
            "virsh nodeinfo: unexpected \"CPU(s): two\""
        );
    }

    #[test]
    fn a_new_volume_says_its_format_size_and_what_it_holds() {
        // virsh 11.3.0: vol-dumpxml of a volume vol-create-as made.
        let v = parse_vol_xml(&crate::tools::fixture("virsh/vol-dumpxml-qcow2.txt")).unwrap();
        assert_eq!(
            v,
            VolInfo {
                format: "qcow2".into(),
                capacity: 2147483648,
                allocation: 200704,
            }
        );
        let kib = "<volume><capacity unit='KiB'>1</capacity><allocation>0</allocation></volume>";
        assert!(parse_vol_xml(kib).unwrap_err().to_string().contains("KiB"));
        assert!(parse_vol_xml("<volume><capacity>1</capacity></volume>").is_err());
        assert!(
            parse_vol_xml("<volume><capacity>x</capacity><allocation>0</allocation></volume>")
                .is_err()
        );
    }

    #[test]
    fn the_pools_in_a_batch_give_their_names_and_directories() {
        // virsh 11.3.0: record-volume-fixtures.sh's pool, the `images`
        // pool, and a UUID no pool has (nothing printed for it).
        let pools = parse_batch_pool_dumpxml(&fx("batch-pool-dumpxml.txt")).unwrap();
        assert_eq!(
            pools,
            [
                (
                    "bkt-rec-20363".to_string(),
                    "/tmp/bkt-pool-rec.7WHi9D".to_string()
                ),
                ("images".to_string(), "/var/lib/libvirt/images".to_string()),
            ]
        );
        assert_eq!(
            parse_names(&fx("pool-list-uuid.txt")),
            [
                "d5445606-f22d-4f0d-b35a-d877984b71f1",
                "8d148f03-0318-400b-93d6-d578ba31d413"
            ]
        );
        let v = Virsh::new("qemu:///system");
        assert_eq!(
            v.batch_pool_dumpxml(&["U1".into(), "U2".into()]).display(),
            "virsh -c qemu:///system 'echo @@bkt U1; pool-dumpxml U1; echo @@bkt U2; pool-dumpxml U2'"
        );
        assert!(parse_batch_pool_dumpxml("@@bkt U\n<pool>").is_err());
    }

    #[test]
    fn a_volume_for_a_medium_is_what_the_recording_made_with_libvirt() {
        // scripts/record-volume-fixtures.sh gave libvirt this XML
        // (vol-create-stdin.txt is what virsh said).
        let script = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/record-volume-fixtures.sh"
        ))
        .unwrap();
        let (_, rest) = script.split_once("<<'XML'\n").unwrap();
        let (recorded, _) = rest.split_once("XML\n").unwrap();
        assert_eq!(
            volume_xml("bkt-media-0123456789abcdef-w.iso", 40960, 0o644),
            recorded
        );
        assert!(volume_xml("a&<b>", 1, 0o600).contains("<name>a&amp;&lt;b&gt;</name>"));
        assert!(volume_xml("x", 1, 0o600).contains("<mode>0600</mode>"));
        assert_eq!(
            Virsh::new("qemu:///system")
                .vol_upload_stdin("images", "m.iso")
                .display(),
            "virsh -c qemu:///system vol-upload --pool images m.iso /dev/stdin"
        );
    }

    #[test]
    fn a_batch_echoes_each_keys_mark_before_its_commands() {
        let v = Virsh::new("qemu:///system");
        assert_eq!(
            v.batch([("a", "list --name"), ("b-1.x", "nodeinfo; version")])
                .display(),
            "virsh -c qemu:///system 'echo @@bkt a; list --name; echo @@bkt b-1.x; nodeinfo; version'"
        );
        // The four batches bkt makes, as the fake virsh of tier 2 sees them.
        assert_eq!(
            v.status_batch(false).display(),
            "virsh -c qemu:///system 'echo @@bkt leases; net-dhcp-leases default; echo @@bkt saved; list --all --name --with-managed-save; echo @@bkt domstats; domstats --raw --state --vcpu --balloon --block'"
        );
        assert_eq!(
            v.status_batch(true).display(),
            "virsh -c qemu:///system 'echo @@bkt node; nodeinfo; echo @@bkt leases; net-dhcp-leases default; echo @@bkt saved; list --all --name --with-managed-save; echo @@bkt domstats; domstats --raw --state --vcpu --balloon --block'"
        );
        assert_eq!(
            v.batch_domifaddr(&["tiny".into(), "off".into()]).display(),
            "virsh -c qemu:///system 'echo @@bkt tiny; domifaddr --source lease tiny; echo @@bkt off; domifaddr --source lease off'"
        );
        // What virsh printed for it splits back into the keys' outputs.
        let out = fx("batch-domifaddr.txt");
        let parts = split_batch(&out).unwrap();
        let keys: Vec<&str> = parts.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["tiny", "off"]);
        assert!(parts[0].1.starts_with(" Name "), "{:?}", parts[0].1);
        assert_eq!(parts[1].1, "\n");
    }

    #[test]
    fn a_batch_splits_at_its_marks_only() {
        // An empty piece (a command that printed nothing on stdout), and a
        // last mark with no newline after it.
        assert_eq!(
            split_batch("@@bkt a\n@@bkt b\nx\ny\n@@bkt c").unwrap(),
            [("a", ""), ("b", "x\ny\n"), ("c", "")]
        );
        // Lines that hold the mark without being one are a command's output.
        let data =
            "@@bkt\n@@bktb x\n @@bkt c\nx @@bkt d\n@@bkt e f\n@@bkt g;\n@@bkt h \n@@bkt  i\n";
        assert_eq!(
            split_batch(&format!("@@bkt a\n{data}@@bkt z\n")).unwrap(),
            [("a", data), ("z", "")]
        );
        // virsh printed nothing at all: no parts (its exit status and
        // stderr say why).
        assert!(split_batch("").unwrap().is_empty());
    }

    #[test]
    fn a_batch_whose_output_is_not_its_marks_is_an_error() {
        assert_eq!(
            split_batch("error: failed to connect\n@@bkt a\n")
                .unwrap_err()
                .to_string(),
            "virsh printed \"error: failed to connect\" before the first mark (\"@@bkt KEY\") it \
             was asked to echo"
        );
        // A key's output holding a line just like another key's mark (a
        // domain named `@@bkt b` in a `list --name`): which one virsh echoed
        // is not known, so neither is taken.
        for out in [
            "@@bkt a\n@@bkt b\nx\n@@bkt b\n",
            "@@bkt a\n@@bkt a\n",
            "@@bkt a\nx\n@@bkt b\n@@bkt a\n",
        ] {
            let err = split_batch(out).unwrap_err().to_string();
            assert!(err.starts_with("virsh printed the mark \"@@bkt "), "{err}");
            assert!(err.contains("\" twice:"), "{err}");
        }
    }

    #[test]
    fn the_pieces_of_a_batch_are_exactly_its_keys() {
        let parts = split_batch("@@bkt a\n1\n@@bkt b\n@@bkt c\n3\n").unwrap();
        assert_eq!(
            batch_pieces(&parts, ["a", "b", "c"]).unwrap(),
            ["1\n", "", "3\n"]
        );
        assert_eq!(
            batch_pieces(&parts, ["a", "x", "c"])
                .unwrap_err()
                .to_string(),
            "virsh did not echo the mark \"@@bkt x\" where it was asked to (it echoed: a, b, c)"
        );
        assert_eq!(
            batch_pieces(&parts, ["a", "b", "c", "d"])
                .unwrap_err()
                .to_string(),
            "virsh did not echo the mark \"@@bkt d\" where it was asked to (it echoed: a, b, c)"
        );
        assert_eq!(
            batch_pieces(&parts, ["a", "b"]).unwrap_err().to_string(),
            "virsh echoed a mark it was not asked to: \"@@bkt c\" (it echoed: a, b, c)"
        );
        assert!(
            batch_pieces(&parts, ["c", "b", "a"]).is_err(),
            "out of order"
        );
        assert!(batch_pieces(&[], ["a"]).is_err(), "nothing printed");
        assert_eq!(batch_pieces(&[], []).unwrap(), [""; 0]);
    }

    #[test]
    fn a_status_batch_names_the_mark_it_misses() {
        let running = fx("status-batch-running.txt");
        let err = parse_status_batch(&running.replace("@@bkt saved\n", "")).unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "unexpected output of virsh, not the marks it was asked to echo: \"@@bkt leases\": \
             virsh did not echo the mark \"@@bkt saved\" where it was asked to (it echoed: \
             leases, domstats)"
        );
        // A saved VM named like a mark cannot pass for it.
        let fake = running.replace("@@bkt saved\n", "@@bkt saved\n@@bkt domstats\n");
        let err = parse_status_batch(&fake).unwrap_err();
        assert!(
            format!("{err:#}").contains("\"@@bkt domstats\" twice"),
            "{err:#}"
        );
    }

    #[test]
    fn a_piece_of_a_batch_may_hold_what_looks_like_a_mark() {
        // A definition whose description holds a line beginning with the
        // mark: part of that domain's XML, not a new piece.
        let xml = "<domain>\n  <name>d</name>\n  <description>x\n@@bkt: not a mark\n@@bkt\n\
                   </description>\n</domain>\n";
        let docs = parse_batch_dumpxml(&format!("@@bkt U1\n{xml}{xml}@@bkt U2\n")).unwrap();
        assert_eq!(docs.len(), 2);
        assert!(docs.iter().all(|d| d.name == "d"));
        // A pool's name that holds it is the pool's name.
        let pool = "<pool type='dir'>\n  <name>a@@bkt b</name>\n  <target>\n    \
                    <path>/p</path>\n  </target>\n</pool>\n";
        assert_eq!(
            parse_batch_pool_dumpxml(&format!("@@bkt U1\n{pool}")).unwrap(),
            [("a@@bkt b".to_string(), "/p".to_string())]
        );
        // Addresses of a domain that printed none are known to be none.
        let none = parse_batch_domifaddr("@@bkt a\n@@bkt b\n \n");
        assert_eq!(none.len(), 2);
        assert!(none.values().all(Vec::is_empty));
        assert!(parse_batch_domifaddr("not a batch\n").is_empty());
        // Text where the first mark should be is not a batch.
        assert!(parse_batch_dumpxml("<domain/>\n@@bkt U1\n").is_err());
        assert!(parse_batch_pool_dumpxml("x\n@@bkt U1\n").is_err());
    }
}
