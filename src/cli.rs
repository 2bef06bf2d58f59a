//! The command line. Doc comments here are the `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum, ValueHint};

use crate::names::{SnapName, Uri, VmName};
use crate::tools::rdp::Share;
use crate::tools::virt_install::VirtType;
use crate::units::AutoSave;

/// bkt: tools for a bootc desktop.
#[derive(Debug, Parser)]
#[command(name = "bkt", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run Windows apps in a Windows 11 virtual machine on libvirt.
    #[command(
        long_about = "Run Windows apps in a Windows 11 virtual machine on libvirt.\n\n\
        One blessed path: `bkt vm create windows` makes a VM with the settings Windows 11 \
        needs (UEFI Secure Boot, TPM 2.0, VirtIO disk and network, QXL + SPICE) and walks \
        you through the steps only a human can do; start, stop, status and destroy run \
        its life afterwards.",
        after_help = "Examples:\n  \
        bkt vm create windows --iso ~/Downloads/Win11_24H2_English_x64.iso\n  \
        bkt vm start windows\n  \
        bkt vm connect windows\n  \
        bkt vm status\n  \
        bkt vm stop windows\n  \
        bkt vm destroy windows\n\n\
        Files:\n  \
        ~/.config/bootc/vms.json   what bkt knows about its VMs (BKT_VM_MANIFEST overrides)"
    )]
    Vm(Box<VmArgs>),

    /// Print a shell completion script (bash, zsh or fish) on stdout.
    #[command(
        long_about = "Print a shell completion script (bash, zsh or fish) on standard output.\n\n\
        Installed where the shell looks, it completes bkt's commands, options and their \
        values at the Tab key.",
        after_help = "Examples:\n  \
        mkdir -p ~/.local/share/bash-completion/completions && bkt completions bash > ~/.local/share/bash-completion/completions/bkt\n  \
        mkdir -p ~/.config/fish/completions && bkt completions fish > ~/.config/fish/completions/bkt.fish\n  \
        mkdir -p ~/.zfunc && bkt completions zsh > ~/.zfunc/_bkt\n\n\
        bash (with the bash-completion package) and fish find these files by themselves in the \
        next shell. zsh looks only in the directories of $fpath: add `fpath=(~/.zfunc $fpath)` \
        to ~/.zshrc, before `compinit` runs."
    )]
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: Shell,
    },

    /// Write the man pages, one per command (without DIR, print bkt.1).
    #[command(
        long_about = "Write the man pages, one per command (bkt.1, bkt-vm.1, bkt-vm-create.1, ...), \
        into DIR, made if missing, and print the path of each. Without DIR, print bkt.1 on \
        standard output.",
        after_help = "Examples:\n  \
        bkt man ~/.cargo/share/man/man1     # man looks there, next to ~/.cargo/bin\n  \
        bkt man | man -l -"
    )]
    Man {
        /// The directory to write the pages into.
        #[arg(value_name = "DIR", value_hint = ValueHint::DirPath)]
        dir: Option<PathBuf>,
    },
}

/// A setting that is on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

/// The shells `bkt completions` writes a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct VmArgs {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: VmCommand,
}

/// Options every `bkt vm` command takes.
#[derive(Debug, Args, Clone)]
pub struct Global {
    /// libvirt connection URI.
    ///
    /// qemu+ssh://[USER@]HOST[:PORT]/system runs every command against
    /// libvirt on that machine over one ssh login (?keyfile=PATH and
    /// ?known_hosts=PATH honoured; ssh never prompts, so the key must be
    /// loaded or named).
    #[arg(
        long = "connect",
        short = 'c',
        global = true,
        value_name = "URI",
        env = "LIBVIRT_DEFAULT_URI",
        default_value = "qemu:///system",
        hide_env_values = true
    )]
    pub uri: Uri,

    /// Print every external command, shell-quoted, before it runs.
    #[arg(long, short, global = true)]
    pub verbose: bool,
}

#[derive(Debug, Subcommand)]
pub enum VmCommand {
    /// Create a Windows 11 VM, start it, and guide you through Windows Setup.
    #[command(
        long_about = "Create a Windows 11 VM, start it, and guide you through Windows Setup.\n\n\
        Checks the host first (KVM, libvirt, the name, the tools, the ISO, Secure Boot \
        firmware, free space) and creates nothing if a check fails. The VM gets a sparse \
        qcow2 disk in libvirt's images directory, UEFI with Secure Boot and Microsoft keys, \
        a TPM 2.0, SMM, Hyper-V enlightenments, VirtIO disk and network, QXL video and SPICE \
        with clipboard sharing. If any step fails, what this run made is removed again, and \
        nothing else.\n\n\
        Without --yes on a terminal, you are asked for what the command line did not give \
        (name, sizes, ISOs), with the defaults filled in and the newest Win11*.iso and \
        virtio-win*.iso in ~/Downloads offered. When QEMU's user cannot read the ISOs \
        (a 0700 home), you are asked to let it in with an ACL (--yes does it).",
        after_help = "Examples:\n  \
        bkt vm create windows\n  \
        bkt vm create windows --iso ~/Win11.iso --virtio-iso ~/virtio-win.iso --yes\n  \
        bkt vm create windows --name work --memory 12G --cpus 6 --notes 'For Bambu Studio' --iso ~/Win11.iso --yes\n  \
        bkt vm create windows --iso ~/Win11.iso --dry-run"
    )]
    Create(Box<CreateArgs>),

    /// Start a VM (already running is fine).
    Start {
        /// The VM's name.
        name: VmName,
    },

    /// Shut a VM down gracefully (ACPI), waiting until it is off.
    #[command(
        long_about = "Shut a VM down gracefully (ACPI power button), waiting until it is off.\n\n\
        If the guest has not powered off after --timeout seconds, the VM is left running and \
        the command fails; --force powers it off at once, like pulling the plug.\n\n\
        --save writes the VM's memory to disk (libvirt's managed save) and frees it; `status` \
        shows the VM as saved, and `start` or `connect` restores it where it was."
    )]
    Stop {
        /// The VM's name.
        name: VmName,
        /// Seconds to wait for the guest to power off.
        #[arg(long, default_value_t = 180, value_name = "SECONDS")]
        timeout: u64,
        /// Power off at once instead (unsaved work in the guest is lost).
        #[arg(long, conflicts_with = "save")]
        force: bool,
        /// Save the VM's memory to disk instead of shutting Windows down:
        /// the host gets the memory back, and the next start or connect
        /// restores it where it was, in seconds.
        #[arg(long)]
        save: bool,
    },

    /// Show or change a VM's settings that bkt keeps (auto-save, share, clipboard).
    #[command(
        long_about = "Show or change the settings bkt keeps for a VM it made.\n\n\
        --auto-save TIME saves the VM to disk (its memory given back to the host) once nothing \
        has used it for TIME: no client bkt started is open, no Remote Desktop connection from \
        this machine, no SPICE viewer attached. `start` or `connect` restores it where it was. \
        A small watcher that `connect` starts after its client exits does this; it ends when \
        the VM stops. `off` turns it off.\n\n\
        --share is what `bkt vm run` (and the menu entries `apps --install` writes, which run \
        it) lets Windows see of this machine, read-write: `files` (the default) the directory \
        of each file opened and nothing else, `home` your whole home (a macro could then \
        change ~/.bashrc or read ~/.ssh), `none` no drive at all. `run --share` changes it for \
        one run.\n\n\
        --clipboard off keeps the clipboard to each side in `run` and `connect` over RDP \
        (FreeRDP gets -clipboard; Remmina, which cannot be told so, is refused; the SPICE \
        console shares it through the guest's SPICE agent all the same). It is on by default.",
        after_help = "Examples:\n  bkt vm config windows\n  bkt vm config windows --auto-save 30m\n  \
        bkt vm config windows --auto-save off\n  bkt vm config windows --share home\n  \
        bkt vm config windows --share none --clipboard off"
    )]
    Config {
        /// The VM's name.
        name: VmName,
        /// Save it to disk after this long unused (15m, 1h, 90s), or off.
        #[arg(long, value_name = "TIME")]
        auto_save: Option<AutoSave>,
        /// What `run` shares with Windows unless told otherwise.
        #[arg(long, value_enum, value_name = "WHAT")]
        share: Option<Share>,
        /// Share the clipboard with Windows over RDP (run and connect).
        #[arg(long, value_enum, value_name = "ON|OFF")]
        clipboard: Option<Switch>,
        /// Print JSON instead (without a change).
        #[arg(long, conflicts_with_all = ["auto_save", "share", "clipboard"])]
        json: bool,
    },

    /// The idle watcher `connect` starts (internal).
    #[command(hide = true)]
    Watch {
        name: VmName,
        /// Look once, act, and exit.
        #[arg(long)]
        once: bool,
    },

    /// Show every VM: state, size, address, and what bkt knows about it.
    #[command(
        long_about = "Show every VM on the connection: state, vCPUs, memory, disk use, \
        IP address, whether Remote Desktop is on, and notes.\n\n\
        VMs that bkt did not create are shown as unmanaged; VMs in bkt's manifest that \
        libvirt no longer has are shown as missing."
    )]
    Status {
        /// Show only this VM.
        name: Option<VmName>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },

    /// Open the VM's desktop: Remote Desktop (RDP), or SPICE when RDP can't.
    #[command(
        long_about = "Open the VM's desktop: Remote Desktop (RDP), or SPICE when RDP can't.\n\n\
        Starts the VM if it is off (resumes it if paused), waits for its IP address (DHCP \
        lease, then guest agent, then ARP) and for port 3389, then runs the first RDP client \
        found: FreeRDP 3 (sdl-freerdp3, xfreerdp3, wlfreerdp3), FreeRDP 2 (xfreerdp), Remmina. \
        If RDP is not available or the client cannot connect, it falls back to the SPICE viewer \
        (virt-viewer, or remote-viewer), saying why.\n\n\
        The password is never put on a command line: it is asked for without echo (or read \
        from BKT_VM_RDP_PASSWORD) and handed to FreeRDP on its standard input. It is never \
        written to disk. The user name is remembered in the manifest.",
        after_help = "Examples:\n  \
        bkt vm connect windows\n  \
        bkt vm connect windows --user anna --fullscreen --share ~/Shared\n  \
        bkt vm connect windows --spice            # Windows Setup, or troubleshooting\n\n\
        Environment:\n  \
        BKT_VM_RDP_PASSWORD   the Windows password (instead of the prompt)\n  \
        BKT_VM_RDP_CLIENT     the RDP client to use (name or path)"
    )]
    Connect {
        /// The VM's name.
        name: VmName,
        /// Use RDP only: fail instead of falling back to SPICE.
        #[arg(long, conflicts_with = "spice")]
        rdp: bool,
        /// Go straight to the SPICE viewer.
        #[arg(long)]
        spice: bool,
        /// The Windows user to log in as (remembered for next time).
        #[arg(long, value_name = "USER")]
        user: Option<String>,
        /// Seconds to wait for the VM's address and Remote Desktop.
        #[arg(long, default_value_t = 300, value_name = "SECONDS")]
        timeout: u64,
        /// Full screen.
        #[arg(long)]
        fullscreen: bool,
        /// Share a host directory into Windows (RDP drive redirection).
        ///
        /// That directory alone, read-write; never /. Without it, no drive.
        #[arg(long, value_name = "PATH", value_hint = ValueHint::DirPath)]
        share: Option<PathBuf>,
    },

    /// Open one Windows program as a window of its own (RDP RemoteApp).
    #[command(
        long_about = "Open one Windows program as a window of its own (RDP RemoteApp).\n\n\
        APP is an id (`bkt vm apps NAME` lists them; notepad, paint, explorer, cmd and \
        powershell always work), a full Windows path ('C:\\Program Files\\...\\x.exe'), or a \
        program Windows finds on its own path (notepad.exe). The VM is started (restored, \
        resumed) and reached as `connect` does, and the client gets the password on its \
        standard input, never on its command line.\n\n\
        FILEs are Linux paths. Windows sees only what you open: the directory of each FILE \
        is shared (read-write) as a drive of its own, \\\\tsclient\\bkt1, ... (your home, \
        \\\\tsclient\\home, only for a file directly in it), and without a FILE nothing is; \
        / never is. --share home shares your whole home instead, --share none nothing at all; \
        `bkt vm config NAME --share` sets the VM's default. A missing file is an error before \
        anything starts. Needs FreeRDP (xfreerdp3 or xfreerdp, 2 or 3) with an X display \
        (XWayland on Wayland); Remmina cannot open a single program.",
        after_help = "Examples:\n  \
        bkt vm run windows notepad ~/notes.txt\n  \
        bkt vm run windows 'C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE' ~/Q3.docx\n  \
        bkt vm run windows paint --detach\n\n\
        Environment:\n  \
        BKT_VM_RDP_PASSWORD   the Windows password (instead of the prompt)\n  \
        BKT_VM_RDP_CLIENT     the RDP client to use (name or path)\n  \
        BKT_VM_SCALE          the window scale in percent (else GDK_SCALE, QT_SCALE_FACTOR)"
    )]
    Run {
        /// The VM's name.
        name: VmName,
        /// The program: an id, a Windows path, or a program name.
        app: String,
        /// Files to open with it (Linux paths).
        files: Vec<PathBuf>,
        /// The Windows user to log in as (remembered for next time).
        #[arg(long, value_name = "USER")]
        user: Option<String>,
        /// Seconds to wait for the VM's address and Remote Desktop.
        #[arg(long, default_value_t = 300, value_name = "SECONDS")]
        timeout: u64,
        /// Return once the client is connected, leaving it running.
        #[arg(long)]
        detach: bool,
        /// What Windows may see of this machine, for this run [default: the
        /// VM's, see `bkt vm config`, else files].
        #[arg(long, value_enum, value_name = "WHAT")]
        share: Option<Share>,
    },

    /// List the programs installed in Windows (for `bkt vm run`).
    #[command(
        long_about = "List the programs installed in Windows, with the file types each opens, \
        for `bkt vm run`.\n\n\
        Windows is asked through the QEMU guest agent (the virtio guest tools install it): a \
        short PowerShell script reads the Start Menu shortcuts, the App Paths registry key and \
        the Store apps, with their icons. The answer is kept in $XDG_CACHE_HOME/bkt/vm/ until \
        --refresh. When the VM is off or the agent does not answer, the programs every \
        Windows 11 has are listed (notepad, paint, explorer, cmd, powershell).\n\n\
        --install adds menu entries: $XDG_DATA_HOME/applications/bkt-VM-APP.desktop running \
        `bkt vm run VM APP` with the files given, its icon under \
        $XDG_DATA_HOME/icons/hicolor, the file types it opens as MIME types (from the \
        shared-mime-info database), and one entry for the VM's whole desktop. Your default \
        applications are never changed. --uninstall removes them; so does `destroy`.",
        after_help = "Examples:\n  bkt vm apps windows\n  bkt vm apps windows --refresh --json\n  \
        bkt vm apps windows --install word notepad\n  bkt vm apps windows --install --all\n  \
        bkt vm apps windows --uninstall --all"
    )]
    Apps {
        /// The VM's name.
        name: VmName,
        /// Print JSON (with each icon as a base64 PNG).
        #[arg(long)]
        json: bool,
        /// Ask Windows again instead of using what was found before.
        #[arg(long)]
        refresh: bool,
        /// Add menu entries for these programs (ids), or for all with --all.
        #[arg(long, num_args = 0.., value_name = "APP", conflicts_with_all = ["uninstall", "json"])]
        install: Option<Vec<String>>,
        /// Remove the menu entries of these programs, or all with --all.
        #[arg(long, num_args = 0.., value_name = "APP", conflicts_with_all = ["json", "refresh"])]
        uninstall: Option<Vec<String>>,
        /// With --install or --uninstall: every program (and the desktop's entry).
        #[arg(long)]
        all: bool,
    },

    /// Consistent snapshots: the disk, the UEFI variables and the TPM together.
    #[command(
        long_about = "Consistent \"known good\" snapshots of a VM: the disk, the UEFI variables \
        (NVRAM) and the TPM state, taken together while the VM is shut off.\n\n\
        A disk-only snapshot leaves the NVRAM and TPM behind, and reverting one can end at a \
        BitLocker recovery screen; these do not. The NVRAM and TPM copies are kept in \
        <images>/<vm>.snapshots/ (root only, like libvirt's own files), and `destroy` removes \
        them with the VM.",
        after_help = "Examples:\n  \
        bkt vm snapshot create windows before-update --description 'before the 24H2 update'\n  \
        bkt vm snapshot list windows\n  \
        bkt vm snapshot revert windows before-update\n  \
        bkt vm snapshot delete windows before-update"
    )]
    Snapshot {
        #[command(subcommand)]
        command: SnapshotCommand,
    },

    /// Check the host and each VM, and say how to fix what is wrong.
    #[command(
        long_about = "Check the host and each VM, and say how to fix what is wrong.\n\n\
        Host: KVM, group membership for qemu:///system, libvirt, the `default` network, \
        Secure Boot firmware, swtpm, the tools and their versions, an RDP client, a SPICE \
        viewer, free disk space. Each VM: defined and its state, UEFI Secure Boot and TPM 2.0 as \
        created, its disk, the manifest against libvirt, its address, Remote Desktop, the guest \
        agent. Exits non-zero when a check fails (warnings do not).",
        after_help = "Examples:\n  bkt vm doctor\n  bkt vm doctor windows --json"
    )]
    Doctor {
        /// Check only this VM (and the host).
        name: Option<VmName>,
        /// Print JSON instead of check lines.
        #[arg(long)]
        json: bool,
    },

    /// Download the VirtIO drivers ISO and the guest tools ahead of time.
    #[command(
        long_about = "Download the VirtIO drivers ISO (virtio-win.iso) and the Windows guest \
        tools (virtio-win-guest-tools.exe, with the SPICE agent and qemu-ga) into \
        $XDG_CACHE_HOME/bkt/vm, so that `create` needs no network.\n\n\
        Downloads retry with backoff and resume where they stopped, but only when the server \
        proves it still has the same file (its ETag or Last-Modified); otherwise they start \
        over. They are checked before they are kept: HTTP status, not a web page, the file's \
        signature, its size (at most 2 GiB for the ISO, 256 MiB for the guest tools), and the \
        SHA-256 when --virtio-sha256 is given. With --virtio-sha256 the file itself is hashed, \
        cached or fresh; a file that does not match is moved aside to NAME.mismatch-TIME, never \
        deleted.\n\n\
        With --windows it downloads the latest Windows 11 x64 ISO from Microsoft instead (the \
        steps of Microsoft's download page, as public clients take them), verified against the \
        SHA-256 the page publishes for the language; an expired link is replaced by a fresh one \
        and the download resumed. When Microsoft refuses this address, download it in a browser \
        from https://www.microsoft.com/software-download/windows11 and pass it to create --iso. \
        --iso-url takes it from a mirror (--iso-sha256 to verify it).",
        after_help = "Examples:\n  \
        bkt vm download --windows\n  \
        bkt vm download --windows --lang German\n  \
        bkt vm download --windows --lang list\n  \
        bkt vm download --iso-url https://nas.example/Win11_25H2_English_x64.iso --iso-sha256 HEX\n\n\
        Environment:\n  \
        BKT_VM_VIRTIO_URL        mirror for virtio-win.iso\n  \
        BKT_VM_GUEST_TOOLS_URL   mirror for virtio-win-guest-tools.exe\n  \
        BKT_VM_CA_FILE           PEM certificates trusted instead of the built-in roots\n  \
        BKT_VM_MS_WWW_URL, BKT_VM_MS_VLSCPPE_URL, BKT_VM_MS_OVDF_URL\n                           \
        base URLs in place of www.microsoft.com, vlscppe.microsoft.com, ov-df.microsoft.com"
    )]
    Download {
        #[command(flatten)]
        source: DownloadArgs,
        #[command(flatten)]
        windows: WindowsIsoArgs,
    },

    /// Show what Windows an install ISO holds: release, build, editions.
    #[command(
        long_about = "Show what Windows an install ISO holds: its release, build and \
        architecture, and its editions (the images of sources/install.wim or install.esd, \
        with the index and edition id of each), read from inside the ISO without extracting \
        it. `create` refuses an ISO that is not Windows 11 x64, and an unattended install \
        uses the edition marked here (Pro, else the first; `create --edition` chooses).",
        after_help = "Examples:\n  bkt vm iso-info ~/Downloads/Win11_24H2_English_x64.iso\n  \
        bkt vm -c qemu+ssh://root@host/system iso-info --remote /srv/isos/Win11.iso --json"
    )]
    IsoInfo {
        /// The ISO.
        #[arg(value_name = "ISO", value_hint = ValueHint::FilePath)]
        iso: PathBuf,
        /// ISO is a path on the libvirt host (--connect qemu+ssh://...).
        #[arg(long)]
        remote: bool,
        /// Print JSON instead.
        #[arg(long)]
        json: bool,
    },

    /// Turn on Remote Desktop in an installed Windows (one double-click inside).
    #[command(
        long_about = "Turn on Remote Desktop in an installed Windows.\n\n\
        BitLocker keeps the registry out of reach from the host, so bkt builds a small ISO \
        with enable-rdp.ps1 (allow connections, keep Network Level Authentication, open the \
        Remote Desktop firewall rules by their language-independent group, let RemoteApp \
        start any program for `bkt vm run`) and a one-click \
        enable-rdp.cmd that runs it as administrator, puts it in the VM's CD-ROM drive, tells \
        you what to click, and waits until port 3389 answers. Then the drive gets its old \
        medium back, the ISO is deleted, and the manifest notes that RDP is on. Running it \
        again is harmless: a VM set up before `run` existed gets the RemoteApp settings so.",
        after_help = "Examples:\n  bkt vm enable-rdp windows\n  bkt vm enable-rdp windows --timeout 1800"
    )]
    EnableRdp {
        /// The VM's name.
        name: VmName,
        /// Seconds to wait for Remote Desktop to answer.
        #[arg(long, default_value_t = 900, value_name = "SECONDS")]
        timeout: u64,
    },

    /// Print the VM's IPv4 address (for scripts).
    Ip {
        /// The VM's name.
        name: VmName,
        /// Seconds to wait for an address to appear.
        #[arg(long, default_value_t = 0, value_name = "SECONDS")]
        timeout: u64,
    },

    /// Delete a VM and the files bkt made for it (never anything else).
    #[command(
        long_about = "Delete a VM: its domain with libvirt's UEFI variables (NVRAM), TPM state \
        and snapshot metadata, the files bkt made for it (its disk, an answer ISO, snapshot \
        copies: the manifest records them), and its manifest entry.\n\n\
        Never deleted: install media, files bkt did not make, a disk another VM uses, a \
        shareable disk, a block device, anything of a VM made on another connection. A VM bkt \
        did not make loses only its definition; its disks are listed with the command that \
        would delete them. You are shown every path and asked to type the VM's name, unless \
        --yes is given."
    )]
    Destroy {
        /// The VM's name.
        name: VmName,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
        /// Keep the disk image(s).
        #[arg(long)]
        keep_disk: bool,
    },
}

/// Where the downloads come from.
#[derive(Debug, Args, Clone, Default)]
pub struct DownloadArgs {
    /// Where to get virtio-win.iso (a mirror) [default: the virtio-win project's stable URL].
    #[arg(long, value_name = "URL")]
    pub virtio_url: Option<String>,
    /// Where to get virtio-win-guest-tools.exe (with `download`).
    #[arg(long, value_name = "URL")]
    pub guest_tools_url: Option<String>,
    /// The SHA-256 virtio-win.iso must have.
    #[arg(long, value_name = "HEX")]
    pub virtio_sha256: Option<String>,
    /// Never touch the network: use the cache or say what to place where.
    #[arg(long)]
    pub offline: bool,
}

/// The Windows 11 ISO, for `download`.
#[derive(Debug, Args, Clone, Default)]
pub struct WindowsIsoArgs {
    /// Download the latest Windows 11 x64 ISO from Microsoft into the cache
    /// (resumable, verified against the SHA-256 Microsoft's page publishes).
    #[arg(long)]
    pub windows: bool,
    /// The ISO's language as Microsoft names it ("German", "English
    /// International"), or `list` [default: the locale's, else English (United States)].
    #[arg(long, value_name = "LANGUAGE", requires = "windows")]
    pub lang: Option<String>,
    /// Download the Windows ISO from this mirror (http or https) instead of Microsoft.
    #[arg(long, value_name = "URL", conflicts_with = "lang")]
    pub iso_url: Option<String>,
    /// The SHA-256 the mirror's ISO must have (without it, nothing vouches for the file).
    #[arg(long, value_name = "HEX", requires = "iso_url")]
    pub iso_sha256: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Take a snapshot (the VM is shut down first, with your consent).
    Create {
        /// The VM's name.
        name: VmName,
        /// The snapshot's name.
        snap: SnapName,
        /// What this state is (shown by `list`).
        #[arg(long, value_name = "TEXT", default_value = "")]
        description: String,
        /// Shut the VM down without asking if it is running.
        #[arg(long, short)]
        yes: bool,
    },
    /// List snapshots: name, date, description, size, and the current one.
    List {
        /// The VM's name.
        name: VmName,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Go back to a snapshot: disk, NVRAM and TPM (everything since is lost).
    Revert {
        /// The VM's name.
        name: VmName,
        /// The snapshot's name.
        snap: SnapName,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
    },
    /// Delete a snapshot and free its space.
    Delete {
        /// The VM's name.
        name: VmName,
        /// The snapshot's name.
        snap: SnapName,
    },
}

#[derive(Debug, Args, Clone)]
pub struct CreateArgs {
    /// What to create; only `windows` (Windows 11) is supported.
    #[arg(value_parser = ["windows"], default_value = "windows")]
    pub kind: String,

    /// The VM's name [default: windows].
    #[arg(long)]
    pub name: Option<VmName>,

    /// The Windows 11 install ISO.
    #[arg(long, value_name = "PATH", value_hint = ValueHint::FilePath)]
    pub iso: Option<PathBuf>,

    /// The Windows 11 install ISO as a path on the libvirt host, when it is
    /// already there (--connect qemu+ssh://...): used where it is, nothing
    /// uploaded. A local --iso is uploaded once instead (and found there
    /// the next time by its SHA-256).
    #[arg(long, value_name = "PATH", conflicts_with = "iso")]
    pub remote_iso: Option<PathBuf>,

    /// The virtio-win driver ISO, attached as a second CD-ROM.
    #[arg(long, value_name = "PATH", value_hint = ValueHint::FilePath)]
    pub virtio_iso: Option<PathBuf>,

    /// Disk size; the disk is sparse and grows as needed [default: 80G].
    #[arg(long, value_name = "SIZE")]
    pub disk_size: Option<String>,

    /// Memory, e.g. 8G or 8192M [default: 8G, at most half the host's].
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,

    /// Virtual CPUs [default: 4, at most half the host's cores].
    #[arg(long, value_name = "N")]
    pub cpus: Option<u32>,

    /// Why this VM exists (shown by `bkt vm status`).
    #[arg(long, value_name = "TEXT")]
    pub notes: Option<String>,

    /// kvm (hardware virtualization) or qemu (software emulation, slow).
    #[arg(long, value_enum, default_value = "kvm")]
    pub virt_type: VirtType,

    /// Save the VM to disk after it has been unused this long (15m, 1h,
    /// 90s), giving its memory back to the host; `off` never does.
    #[arg(long, value_name = "TIME", default_value_t = AutoSave::DEFAULT)]
    pub auto_save: AutoSave,

    /// Never prompt: take defaults for anything not given (--iso is required).
    #[arg(long, short)]
    pub yes: bool,

    /// Print the domain XML and every command that would run; create nothing.
    #[arg(long)]
    pub dry_run: bool,

    #[command(flatten)]
    pub download: DownloadArgs,

    /// Install Windows 11 hands-free with an answer file (the ISO's Pro
    /// edition or --edition's, drivers, a local account, Remote Desktop,
    /// the guest tools), and watch it.
    #[arg(long)]
    pub unattended: bool,

    /// The local Windows account an unattended install makes.
    #[arg(long, value_name = "NAME", requires = "unattended")]
    pub username: Option<String>,

    /// A file whose first line is that account's password (never on the
    /// command line; without it you are asked).
    #[arg(long, value_name = "PATH", value_hint = ValueHint::FilePath, requires = "unattended")]
    pub password_file: Option<PathBuf>,

    /// Keep Windows from turning on device encryption (BitLocker).
    #[arg(long, requires = "unattended")]
    pub no_bitlocker: bool,

    /// The edition to install, by its name or edition id as
    /// `bkt vm iso-info` lists them [default: Pro, else the ISO's first].
    #[arg(long, value_name = "NAME", requires = "unattended")]
    pub edition: Option<String>,

    /// Seconds without progress before an unattended install is reported as
    /// stalled (with a screenshot).
    #[arg(long, default_value_t = 3600, value_name = "SECONDS")]
    pub install_timeout: u64,
}
