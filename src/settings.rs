//! What `bkt` takes from its environment, read once as it starts: the
//! user's directories, the desktop session, and the `BKT_VM_*` overrides
//! (tests pin the host's size, a mirror replaces a download URL). Nothing
//! else in `bkt` reads the environment.

// why: the environment is read here once, at start, into Settings.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// Everything `bkt` reads from its environment.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub home: Option<PathBuf>,
    /// `PATH`: where libvirt's ssh is looked up (a `qemu+ssh://` host's
    /// connection puts bkt's own `ssh` before it).
    pub path: Option<String>,
    xdg_config: Option<PathBuf>,
    /// `$NO_COLOR` is set: no colours, even on a terminal.
    pub no_color: bool,
    /// `$DISPLAY` / `$WAYLAND_DISPLAY` are set (a graphical session).
    pub display: bool,
    pub wayland: bool,
    /// `BKT_VM_MANIFEST`: the manifest's path.
    manifest: Option<PathBuf>,
    /// The pins of the subprocess tests, apart from the user's settings.
    pub hooks: TestHooks,
    /// `BKT_VM_RDP_CLIENT`: the RDP client to use.
    pub rdp_client: Option<String>,
    /// `BKT_VM_RDP_PORT` (default 3389): the guest's Remote Desktop port,
    /// for guests whose Remote Desktop listens elsewhere, and for tests
    /// (a listener on a port the kernel picks stands in for the guest, so
    /// nothing else on the machine, like an xrdp on 3389, is in the way).
    pub rdp_port: u16,
    /// `$XDG_RUNTIME_DIR`: where the idle watcher keeps its lock and state.
    pub runtime_dir: Option<PathBuf>,
    /// The desktop's scale in percent: `BKT_VM_SCALE`, else `GDK_SCALE`
    /// (a whole factor), else `QT_SCALE_FACTOR`, for RemoteApp windows.
    pub scale: Option<u32>,
    /// `$XDG_DATA_HOME` (else `~/.local/share`): where menu entries and
    /// their icons go.
    pub data_home: Option<PathBuf>,
    /// `$XDG_DATA_DIRS` (else `/usr/local/share:/usr/share`): where the
    /// shared-mime-info database is.
    pub data_dirs: Vec<PathBuf>,
    pub download: Download,
}

/// Test hooks: what the subprocess tests (tests/it, which run bkt with
/// fake programs on PATH) pin about the machine, since a subprocess can
/// only be told through its environment. Never set by users; unit tests
/// replace the machine with the fake host (`vm/ctx/fake.rs`) instead. Read
/// here, in one place ([`TestHooks::from_vars`]).
#[derive(Debug, Clone, Default)]
pub struct TestHooks {
    /// `BKT_VM_HOST_MEMORY` / `BKT_VM_HOST_CPUS`: the host's size, as given.
    pub host_memory: Option<String>,
    pub host_cpus: Option<String>,
    /// `BKT_VM_KVM_DEVICE`, else `/dev/kvm`.
    pub kvm_device: PathBuf,
    /// `BKT_VM_SWTPM_DIR`: where libvirt keeps TPM state.
    pub swtpm_dir: Option<PathBuf>,
    /// `BKT_VM_SAVE_DIR`: where libvirt keeps the memory of saved VMs.
    pub save_dir: Option<PathBuf>,
    /// `BKT_VM_ETC`, else `/etc`: the user database QEMU's user is found in.
    pub etc: PathBuf,
    /// `BKT_VM_NOW`: the clock, in seconds since 1970, for tests of the
    /// idle watcher's decisions.
    pub now: Option<u64>,
}

impl TestHooks {
    /// The hooks from a source of variables (unset or empty: unset).
    pub fn from_vars(var: impl Fn(&str) -> Option<OsString>) -> TestHooks {
        let get = |k: &str| var(k).filter(|v| !v.is_empty());
        let path = |k: &str| get(k).map(PathBuf::from);
        let text = |k: &str| get(k).map(|v| v.to_string_lossy().into_owned());
        TestHooks {
            host_memory: text("BKT_VM_HOST_MEMORY"),
            host_cpus: text("BKT_VM_HOST_CPUS"),
            kvm_device: path("BKT_VM_KVM_DEVICE").unwrap_or_else(|| PathBuf::from("/dev/kvm")),
            swtpm_dir: path("BKT_VM_SWTPM_DIR"),
            save_dir: path("BKT_VM_SAVE_DIR"),
            etc: path("BKT_VM_ETC").unwrap_or_else(|| PathBuf::from("/etc")),
            now: text("BKT_VM_NOW").and_then(|v| v.parse().ok()),
        }
    }
}

/// The settings of downloads.
#[derive(Debug, Clone, Default)]
pub struct Download {
    /// `BKT_VM_VIRTIO_URL` / `BKT_VM_GUEST_TOOLS_URL`: mirrors.
    pub virtio_url: Option<String>,
    pub guest_tools_url: Option<String>,
    /// `BKT_VM_DOWNLOAD_TIMEOUT` (seconds, default 30).
    pub timeout: Duration,
    /// `BKT_VM_DOWNLOAD_RETRIES` (default 3).
    pub retries: u32,
    /// `BKT_VM_DOWNLOAD_CAP`: a size cap below the built-in ones (tests).
    pub cap: Option<u64>,
    /// `$XDG_CACHE_HOME/bkt/vm`, else `~/.cache/bkt/vm`.
    pub cache_dir: Option<PathBuf>,
    /// `BKT_VM_MS_WWW_URL`, `BKT_VM_MS_VLSCPPE_URL`, `BKT_VM_MS_OVDF_URL`:
    /// base URLs standing in for www.microsoft.com, vlscppe.microsoft.com
    /// and ov-df.microsoft.com (tests point them at a local server).
    pub ms_www_url: Option<String>,
    pub ms_vlscppe_url: Option<String>,
    pub ms_ovdf_url: Option<String>,
    /// `BKT_VM_CA_FILE`: PEM certificates that downloads trust instead of
    /// the built-in roots (a company CA, the tests' CA); certificates are
    /// still checked.
    pub ca_file: Option<PathBuf>,
    /// `LC_ALL`, else `LC_MESSAGES`, else `LANG`: the language of the
    /// Windows ISO when none is given.
    pub locale: Option<String>,
}

/// Take a variable out of the process environment (a secret no child may
/// inherit): its value, if it was set.
///
/// # Safety
/// It changes the process environment: no other thread may exist yet.
pub unsafe fn take_var(key: &str) -> Option<OsString> {
    let v = std::env::var_os(key);
    // SAFETY: the caller guarantees that this is the only thread.
    unsafe { std::env::remove_var(key) };
    v
}

impl Settings {
    /// Read the process environment.
    pub fn from_env() -> Settings {
        Settings::from_vars(|k| std::env::var_os(k))
    }

    /// The settings from any source of variables (an unset or empty one
    /// counts as unset).
    pub fn from_vars(var: impl Fn(&str) -> Option<OsString>) -> Settings {
        let get = |k: &str| var(k).filter(|v| !v.is_empty());
        let path = |k: &str| get(k).map(PathBuf::from);
        let text = |k: &str| get(k).map(|v| v.to_string_lossy().into_owned());
        let home = path("HOME");
        let xdg_cache = path("XDG_CACHE_HOME").or_else(|| home.as_ref().map(|h| h.join(".cache")));
        let xdg_config =
            path("XDG_CONFIG_HOME").or_else(|| home.as_ref().map(|h| h.join(".config")));
        Settings {
            no_color: get("NO_COLOR").is_some(),
            display: get("DISPLAY").is_some(),
            wayland: get("WAYLAND_DISPLAY").is_some(),
            manifest: path("BKT_VM_MANIFEST"),
            hooks: TestHooks::from_vars(&var),
            rdp_client: text("BKT_VM_RDP_CLIENT"),
            rdp_port: text("BKT_VM_RDP_PORT")
                .and_then(|v| v.parse().ok())
                .filter(|&p| p != 0)
                .unwrap_or(crate::tools::rdp::DEFAULT_PORT),
            runtime_dir: path("XDG_RUNTIME_DIR"),
            data_home: path("XDG_DATA_HOME")
                .or_else(|| home.as_ref().map(|h| h.join(".local").join("share"))),
            data_dirs: text("XDG_DATA_DIRS")
                .unwrap_or_else(|| "/usr/local/share:/usr/share".into())
                .split(':')
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .collect(),
            scale: text("BKT_VM_SCALE")
                .and_then(|v| v.parse().ok())
                .or_else(|| {
                    ["GDK_SCALE", "QT_SCALE_FACTOR"].into_iter().find_map(|k| {
                        let f: f64 = text(k)?.parse().ok()?;
                        (f.is_finite() && f > 0.0).then(|| (f * 100.0).round() as u32)
                    })
                }),
            download: Download {
                virtio_url: text("BKT_VM_VIRTIO_URL"),
                guest_tools_url: text("BKT_VM_GUEST_TOOLS_URL"),
                timeout: Duration::from_secs(
                    text("BKT_VM_DOWNLOAD_TIMEOUT")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(30),
                ),
                retries: text("BKT_VM_DOWNLOAD_RETRIES")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(3),
                cap: text("BKT_VM_DOWNLOAD_CAP").and_then(|v| v.parse().ok()),
                cache_dir: xdg_cache.as_ref().map(|c| c.join("bkt").join("vm")),
                ms_www_url: text("BKT_VM_MS_WWW_URL"),
                ms_vlscppe_url: text("BKT_VM_MS_VLSCPPE_URL"),
                ms_ovdf_url: text("BKT_VM_MS_OVDF_URL"),
                ca_file: path("BKT_VM_CA_FILE"),
                locale: text("LC_ALL")
                    .or_else(|| text("LC_MESSAGES"))
                    .or_else(|| text("LANG")),
            },
            path: text("PATH"),
            home,
            xdg_config,
        }
    }

    /// `$XDG_CONFIG_HOME` (else `~/.config`).
    pub fn config_home(&self) -> Option<&PathBuf> {
        self.xdg_config.as_ref()
    }

    /// The manifest: `$BKT_VM_MANIFEST`, else `$XDG_CONFIG_HOME/bootc/vms.json`.
    pub fn manifest(&self) -> Option<PathBuf> {
        self.manifest.clone().or_else(|| {
            self.xdg_config
                .as_ref()
                .map(|c| c.join("bootc").join("vms.json"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(vars: &[(&str, &str)]) -> Settings {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_vars(|k| {
            vars.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| OsString::from(v))
        })
    }

    #[test]
    fn directories_follow_xdg_then_home() {
        let s = from(&[("HOME", "/home/anna")]);
        assert_eq!(
            s.manifest().unwrap(),
            PathBuf::from("/home/anna/.config/bootc/vms.json")
        );
        assert_eq!(
            s.download.cache_dir.unwrap(),
            PathBuf::from("/home/anna/.cache/bkt/vm")
        );
        let s = from(&[
            ("HOME", "/home/anna"),
            ("XDG_CONFIG_HOME", "/c"),
            ("XDG_CACHE_HOME", "/k"),
            ("BKT_VM_MANIFEST", ""),
        ]);
        assert_eq!(s.manifest().unwrap(), PathBuf::from("/c/bootc/vms.json"));
        assert_eq!(s.download.cache_dir.unwrap(), PathBuf::from("/k/bkt/vm"));
        let s = from(&[("BKT_VM_MANIFEST", "/m.json")]);
        assert_eq!(s.manifest().unwrap(), PathBuf::from("/m.json"));
        assert_eq!(from(&[]).manifest(), None);
    }

    #[test]
    fn overrides_and_their_defaults() {
        let s = from(&[]);
        assert_eq!(s.hooks.kvm_device, PathBuf::from("/dev/kvm"));
        assert_eq!(s.hooks.etc, PathBuf::from("/etc"));
        assert_eq!(s.download.timeout, Duration::from_secs(30));
        assert_eq!(s.download.retries, 3);
        assert!(!s.display && !s.wayland);
        assert_eq!(s.rdp_port, 3389);
        assert_eq!(from(&[("BKT_VM_RDP_PORT", "0")]).rdp_port, 3389);
        let s = from(&[
            ("BKT_VM_DOWNLOAD_TIMEOUT", "2"),
            ("BKT_VM_DOWNLOAD_RETRIES", "0"),
            ("BKT_VM_DOWNLOAD_CAP", "1024"),
            ("DISPLAY", ":0"),
            ("WAYLAND_DISPLAY", ""),
            ("BKT_VM_RDP_CLIENT", "xfreerdp"),
            ("BKT_VM_RDP_PORT", "43389"),
        ]);
        assert_eq!(s.download.timeout, Duration::from_secs(2));
        assert_eq!(s.download.retries, 0);
        assert_eq!(s.download.cap, Some(1024));
        assert!(s.display && !s.wayland);
        assert_eq!(s.rdp_client.as_deref(), Some("xfreerdp"));
        assert_eq!(s.rdp_port, 43389);
    }

    #[test]
    fn microsoft_hosts_ca_and_locale() {
        let s = from(&[("LANG", "de_DE.UTF-8"), ("LC_MESSAGES", "fr_FR.UTF-8")]);
        assert_eq!(s.download.locale.as_deref(), Some("fr_FR.UTF-8"));
        let s = from(&[("LANG", "de_DE.UTF-8"), ("LC_ALL", "pl_PL")]);
        assert_eq!(s.download.locale.as_deref(), Some("pl_PL"));
        assert_eq!(from(&[]).download.locale, None);
        let s = from(&[
            ("BKT_VM_MS_WWW_URL", "https://127.0.0.1:1/www"),
            ("BKT_VM_MS_VLSCPPE_URL", "https://127.0.0.1:1/v"),
            ("BKT_VM_MS_OVDF_URL", "https://127.0.0.1:1/o"),
            ("BKT_VM_CA_FILE", "/t/ca.pem"),
        ]);
        assert_eq!(
            s.download.ms_www_url.as_deref(),
            Some("https://127.0.0.1:1/www")
        );
        assert_eq!(
            s.download.ms_vlscppe_url.as_deref(),
            Some("https://127.0.0.1:1/v")
        );
        assert_eq!(
            s.download.ms_ovdf_url.as_deref(),
            Some("https://127.0.0.1:1/o")
        );
        assert_eq!(s.download.ca_file, Some(PathBuf::from("/t/ca.pem")));
    }
}
