//! `bkt vm create windows`: preflight, then the disk and the domain, then the
//! guide through Windows Setup. If a later step fails or the user
//! interrupts, exactly what this run made is removed again, and nothing
//! else: the domain is identified by a UUID this run generated, the disk path
//! is claimed with an exclusive create, and what could not be removed is
//! named with the way to finish.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, ValueHint};

use crate::download;
use crate::manifest::VmEntry;
use crate::names::VmName;
use crate::tools::qemu_img;
use crate::tools::virt_install::{VirtType, WindowsDomain};
use crate::ui::{self, Check, HintExt, Level, Ui};
use crate::units::{AutoSave, gib_bytes, human, mib, parse_size, typed};
use crate::vm::checks;
use crate::vm::checks::access::{self, Grant};
use crate::vm::checks::resources;
use crate::vm::ctx::{Ctx, HostSize};
use crate::vm::media::{self, iso_contents, unattended, windows_iso};
use crate::vm::options::DownloadSources;
use crate::vm::rdp::setup as rdp_setup;

/// Everything create was asked for, once defaults are filled in.
#[derive(Debug, Clone)]
struct Plan {
    name: VmName,
    iso: PathBuf,
    /// `iso` is a path on the libvirt host (`--remote-iso`), not here.
    iso_on_host: bool,
    virtio_iso: Option<PathBuf>,
    disk_size: u64,
    memory: u64,
    cpus: u32,
    notes: String,
    virt_type: VirtType,
    auto_save: AutoSave,
    /// The pool of the host's images directory, when preflight found it
    /// already (the media go through it): not asked for again.
    pool: Option<String>,
}

fn default_memory(host: &HostSize) -> u64 {
    // 8 GiB, never above half the host, in whole 256 MiB steps.
    let step = 256 * 1024 * 1024;
    let m = gib_bytes(8).min(host.memory_bytes / 2);
    (m / step * step).max(step)
}

fn default_cpus(host: &HostSize) -> u32 {
    4.min((host.cpus / 2).max(1))
}

/// Create a Windows 11 VM, start it, and guide you through Windows Setup.
#[derive(Debug, Args, Clone)]
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
    pub download: DownloadSources,

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

/// Ask for what the command line did not give (terminal only), with the
/// defaults filled in and sizes as people type them.
fn prompt(ctx: &Ctx, args: &CreateArgs, host: &HostSize) -> Result<CreateArgs> {
    use dialoguer::theme::ColorfulTheme;
    let theme = ColorfulTheme::default();
    let found_iso = ctx
        .local
        .cached_windows_iso()
        .or_else(|| ctx.local.newest_download("Win11"));
    let found_virtio = ctx.local.newest_download("virtio-win");
    let asks_virtio = args.virtio_iso.is_none() && found_virtio.is_some();
    if args.name.is_some()
        && args.disk_size.is_some()
        && args.memory.is_some()
        && args.cpus.is_some()
        && (args.iso.is_some() || args.remote_iso.is_some())
        && !asks_virtio
    {
        return Ok(args.clone());
    }
    ctx.ui.heading("Windows 11 VM Setup");
    ctx.ui.line("═══════════════════\n");
    ctx.ui
        .line("This will create a Windows 11 VM optimized for running Windows apps.\n");
    let mut a = args.clone();
    ask_sizes(&theme, host, &mut a)?;
    ask_isos(
        ctx,
        &theme,
        found_iso,
        found_virtio.filter(|_| asks_virtio),
        &mut a,
    )?;
    ctx.ui.line("");
    Ok(a)
}

/// The name, disk, memory and CPUs the command line did not give.
fn ask_sizes(
    theme: &dialoguer::theme::ColorfulTheme,
    host: &HostSize,
    a: &mut CreateArgs,
) -> Result<()> {
    use dialoguer::Input;
    let size_ok =
        |s: &String| -> Result<(), String> { parse_size(s).map(|_| ()).map_err(|e| e.to_string()) };
    if a.name.is_none() {
        let name: String = Input::with_theme(theme)
            .with_prompt("VM name")
            .default("windows".to_string())
            .validate_with(|s: &String| s.parse::<VmName>().map(|_| ()))
            .interact_text()?;
        a.name = Some(name.parse().map_err(anyhow::Error::msg)?);
    }
    if a.disk_size.is_none() {
        a.disk_size = Some(
            Input::with_theme(theme)
                .with_prompt("Disk size (grows as needed)")
                .default(typed(gib_bytes(80)))
                .validate_with(size_ok)
                .interact_text()?,
        );
    }
    if a.memory.is_none() {
        a.memory = Some(
            Input::with_theme(theme)
                .with_prompt(format!("RAM (host has {})", human(host.memory_bytes)))
                .default(typed(default_memory(host)))
                .validate_with(size_ok)
                .interact_text()?,
        );
    }
    if a.cpus.is_none() {
        a.cpus = Some(
            Input::with_theme(theme)
                .with_prompt(format!("CPUs (host has {})", host.cpus))
                .default(default_cpus(host))
                .interact_text()?,
        );
    }
    Ok(())
}

/// The install ISO (offering Microsoft's where none was found) and the
/// drivers ISO found in ~/Downloads, when the command line gave neither.
fn ask_isos(
    ctx: &Ctx,
    theme: &dialoguer::theme::ColorfulTheme,
    found_iso: Option<PathBuf>,
    found_virtio: Option<PathBuf>,
    a: &mut CreateArgs,
) -> Result<()> {
    use dialoguer::Input;
    let iso_ok = |s: &String| -> Result<(), String> {
        ctx.local
            .absolute(Path::new(s))
            .map_err(|e| e.to_string())
            .and_then(|p| checks::iso_problem(ctx, &p).map(|_| ()))
    };
    if a.iso.is_none() && a.remote_iso.is_none() {
        ctx.ui.line("\nRequired: Windows 11 ISO");
        if found_iso.is_none()
            && let Some(iso) = offer_download(ctx, theme)?
        {
            a.iso = Some(iso);
        }
    }
    if a.iso.is_none() && a.remote_iso.is_none() {
        let mut input = Input::with_theme(theme).with_prompt("Path to ISO");
        if let Some(f) = &found_iso {
            input = input.default(f.display().to_string());
        }
        let iso: String = input.validate_with(iso_ok).interact_text()?;
        a.iso = Some(PathBuf::from(iso));
    }
    if let Some(f) = &found_virtio {
        let v: String = Input::with_theme(theme)
            .with_prompt("VirtIO drivers ISO")
            .default(f.display().to_string())
            .validate_with(iso_ok)
            .interact_text()?;
        a.virtio_iso = Some(PathBuf::from(v));
    }
    Ok(())
}

/// Where no ISO was found: offer Microsoft's, its size and source said
/// first. None: the user gives a path instead.
fn offer_download(ctx: &Ctx, theme: &dialoguer::theme::ColorfulTheme) -> Result<Option<PathBuf>> {
    ctx.ui
        .line("No Windows 11 ISO in ~/Downloads or in bkt's cache.");
    let yes = dialoguer::Confirm::with_theme(theme)
        .with_prompt(format!(
            "Download Windows 11 x64 from Microsoft (www.microsoft.com, about 7 GiB) into {}?",
            ctx.local.cache_dir()?.display()
        ))
        .default(true)
        .interact()?;
    if !yes {
        return Ok(None);
    }
    windows_iso::from_microsoft(ctx, None)
}

fn plan(ctx: &Ctx, args: &CreateArgs, host: &HostSize) -> Result<Plan> {
    if args.remote_iso.is_some() && ctx.uri.ssh().is_none() {
        return Err(anyhow!(
            "--remote-iso names an ISO on a libvirt host reached over ssh, and {} is this machine",
            ctx.uri
        ))
        .hint("pass the ISO with --iso PATH");
    }
    let (iso, iso_on_host) = match (&args.iso, &args.remote_iso) {
        (_, Some(r)) => (r.clone(), true),
        (Some(i), None) => (ctx.local.absolute(i)?, false),
        (None, None) => {
            // Never 7 GiB unasked: the download is its own command.
            return Err(anyhow!("no Windows ISO given")).hint(
                "pass it with --iso PATH, or download Windows 11 first (about 7 GiB from Microsoft): bkt vm download --windows",
            );
        }
    };
    let memory = match &args.memory {
        Some(m) => parse_size(m).context("--memory")?,
        None => default_memory(host),
    };
    let notes = args.notes.clone().unwrap_or_default();
    if notes.chars().any(|c| c.is_control()) {
        bail!("--notes must be a single line of text without control characters");
    }
    Ok(Plan {
        name: match &args.name {
            Some(n) => n.clone(),
            None => "windows".parse().map_err(anyhow::Error::msg)?,
        },
        iso,
        iso_on_host,
        virtio_iso: args
            .virtio_iso
            .as_deref()
            .map(|p| ctx.local.absolute(p))
            .transpose()?,
        disk_size: match &args.disk_size {
            Some(s) => parse_size(s).context("--disk-size")?,
            None => gib_bytes(80),
        },
        memory,
        cpus: args.cpus.unwrap_or_else(|| default_cpus(host)),
        notes,
        virt_type: args.virt_type,
        auto_save: args.auto_save,
        pool: None,
    })
}

/// A locally administered, QEMU-prefixed MAC.
fn random_mac(ctx: &Ctx) -> Result<String> {
    let b: [u8; 3] = ctx.local.random_bytes()?;
    Ok(format!("52:54:00:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2]))
}

/// A random (version 4) UUID: this run's domain, whatever its name.
fn random_uuid(ctx: &Ctx) -> Result<String> {
    let mut b: [u8; 16] = ctx.local.random_bytes()?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

fn path_str(p: &Path) -> Result<String> {
    let s = p
        .to_str()
        .ok_or_else(|| anyhow!("{} is not valid UTF-8; rename it", p.display()))?;
    if s.chars().any(|c| c.is_control()) {
        bail!("{s:?} contains control characters; rename it");
    }
    Ok(s.to_string())
}

/// What preflight found out that the rest of create needs.
struct Ready {
    images: PathBuf,
    /// The image of the install ISO an unattended install uses.
    image: Option<crate::tools::wim::Image>,
    /// How the ISOs of this machine reach a host over ssh.
    route: Option<media::Route>,
    virtio_item: download::Item,
    cached_virtio: PathBuf,
}

/// The checks made so far, each printed as it is made.
struct Shown<'a>(&'a Ui, Vec<Check>);

impl<'a> Shown<'a> {
    fn new(ui: &'a Ui) -> Shown<'a> {
        Shown(ui, Vec::new())
    }

    /// Print a check and keep it.
    fn show(&mut self, c: Check) {
        self.0.check(&c);
        self.1.push(c);
    }

    fn show_all(&mut self, checks: impl IntoIterator<Item = Check>) {
        checks.into_iter().for_each(|c| self.show(c));
    }

    /// Whether the check shown last passed.
    fn last_passed(&self) -> bool {
        self.1.last().is_some_and(|c| c.level == Level::Pass)
    }

    fn any_failed(&self) -> bool {
        self.1.iter().any(|c| c.level == Level::Fail)
    }

    /// An error naming every check that failed, if one did.
    fn verdict(&self) -> Result<()> {
        let failed: Vec<String> = self
            .1
            .iter()
            .filter(|c| c.level == Level::Fail)
            .map(|c| format!("{}: {}", c.label, c.detail))
            .collect();
        if !failed.is_empty() {
            bail!(
                "preflight failed ({}); nothing was created",
                failed.join("; ")
            );
        }
        Ok(())
    }
}

/// Every check, printed as it is made; nothing is changed unless all pass
/// (and then only ACLs for QEMU's user, with consent).
fn preflight_all(
    ctx: &Ctx,
    args: &CreateArgs,
    plan: &Plan,
    host: &HostSize,
    interactive: bool,
) -> Result<Ready> {
    ctx.ui.heading("Preflight");
    let mut shown = Shown::new(&ctx.ui);
    shown.show(checks::kvm(ctx, plan.virt_type));
    shown.show(checks::tools(ctx));
    let (c, libvirt_up) = checks::libvirt_if_virsh(ctx);
    shown.show_all(c);
    shown.show(checks::name(ctx, &plan.name, libvirt_up));
    shown.show(checks::resources(host, plan.memory, plan.cpus));
    shown.show(checks::install_iso(ctx, &plan.iso, plan.iso_on_host));
    let image = windows_check(ctx, args, plan, &mut shown);
    // Without --virtio-iso the drivers come from the cache, or a download.
    let virtio_item = download::virtio(
        args.download.virtio_url.as_deref(),
        &ctx.local.settings.download,
    );
    let cached_virtio = ctx.local.cache_dir()?.join(&virtio_item.file);
    let virtio = plan.virtio_iso.as_deref();
    let offline = args.download.offline;
    shown.show(checks::virtio_iso(
        ctx,
        virtio,
        &cached_virtio,
        &virtio_item,
        offline,
    ));
    if libvirt_up {
        let adding = resources::Adding {
            memory_bytes: plan.memory,
            vcpus: plan.cpus,
        };
        shown.show_all(checks::running_resources(ctx, host, &plan.name, adding));
        shown.show(checks::secure_boot(ctx, plan.virt_type.as_str()));
        shown.show(checks::network(ctx));
    }
    let images = if libvirt_up {
        ctx.images_dir()
    } else {
        PathBuf::from("/var/lib/libvirt/images")
    };
    let disk_path = images.join(format!("{}.qcow2", plan.name));
    shown.show(checks::disk(ctx, &images, &disk_path, plan.disk_size));
    let mut route = None;
    if let Some(t) = ctx.uri.ssh() {
        let (c, r) = checks::media_route(ctx, t, &images, args.unattended);
        shown.show_all(c);
        route = r;
    } else if libvirt_up {
        // Last, because it may change something: only when all else passed.
        let media = [plan.iso.as_path(), virtio.unwrap_or(&cached_virtio)];
        let grant = grant_of(args, interactive, shown.any_failed());
        shown.show(qemu_access(ctx, &media, grant));
    }
    shown.verdict()?;
    Ok(Ready {
        images,
        image,
        route,
        virtio_item,
        cached_virtio,
    })
}

/// What Windows the install ISO holds, once it is an ISO that opens: the
/// check shown, and the image an unattended install uses.
fn windows_check(
    ctx: &Ctx,
    args: &CreateArgs,
    plan: &Plan,
    shown: &mut Shown,
) -> Option<crate::tools::wim::Image> {
    if !shown.last_passed() {
        return None;
    }
    let (c, image) = iso_contents::check(
        ctx,
        &plan.iso,
        plan.iso_on_host,
        args.edition.as_deref(),
        args.unattended,
    );
    shown.show(c);
    image
}

/// Whether QEMU's user can open the media, granted with `grant`'s consent
/// where it cannot.
fn qemu_access(ctx: &Ctx, media: &[&Path], grant: Grant) -> Check {
    match checks::qemu_access(ctx, media) {
        checks::Access::Checked(c) => c,
        checks::Access::Grantable(plan) => access::grant(ctx, &plan, grant),
    }
}

/// What the QEMU access check may grant: nothing once another check
/// failed, and with consent (asked on a terminal, or `--yes`) otherwise.
fn grant_of(args: &CreateArgs, interactive: bool, failed: bool) -> Grant {
    if failed {
        Grant::Never
    } else if args.dry_run {
        Grant::DryRun
    } else if args.yes {
        Grant::Yes
    } else if interactive {
        Grant::Ask
    } else {
        Grant::Never
    }
}

pub fn run(ctx: &Ctx, args: CreateArgs) -> Result<()> {
    let host = ctx.host_size()?;
    let interactive = !args.yes && ui::stdin_is_terminal();
    let args = if interactive {
        prompt(ctx, &args, &host)?
    } else {
        args
    };
    let mut plan = plan(ctx, &args, &host)?;
    // The account and password first: a bad one changes nothing.
    let mut answers = if args.unattended {
        Some(unattended::answers(
            ctx,
            unattended::Given {
                username: args.username.as_ref(),
                password_file: args.password_file.as_ref(),
                no_bitlocker: args.no_bitlocker,
            },
            &plan.name,
            interactive,
        )?)
    } else {
        None
    };
    let ready = preflight_all(ctx, &args, &plan, &host, interactive)?;
    if let (Some(a), Some(i)) = (answers.as_mut(), &ready.image) {
        a.image_index = i.index;
    }
    // The drivers here: the answer ISO is built from them on this machine.
    let local_virtio = virtio_iso(ctx, &args, &plan, &ready)?;
    plan.virtio_iso = Some(local_virtio.clone());
    if !args.dry_run {
        crate::interrupt::catch();
        send_media(ctx, &mut plan, &ready)?;
    }
    let domain = spec(ctx, &plan, &ready.images, answers.is_some())?;
    let job = Job {
        plan: &plan,
        domain: &domain,
        images: &ready.images,
        answers: answers.as_ref().map(|a| (a, local_virtio.as_path())),
    };
    let steps = steps(
        ctx.uri.ssh().is_some(),
        plan.pool.as_deref(),
        answers.is_some(),
    );
    if args.dry_run {
        return dry_run(ctx, &job, &steps);
    }
    build(ctx, &job, &steps)?;
    match &domain.answer_iso {
        Some(a) => unattended::watch(
            ctx,
            &plan.name,
            &plan.iso,
            Path::new(a),
            std::time::Duration::from_secs(args.install_timeout),
        ),
        None => guide(ctx, &plan, interactive),
    }
}

/// Over ssh, the host gets the media of this machine before anything is
/// made there (so a failure here has nothing to roll back).
fn send_media(ctx: &Ctx, plan: &mut Plan, ready: &Ready) -> Result<()> {
    if ctx.uri.ssh().is_none() {
        return Ok(());
    }
    ctx.ui.heading("Media");
    let route = ready
        .route
        .as_ref()
        .context("no way to send the ISOs to the host")?;
    if let media::Route::Pool(p) = route {
        plan.pool = Some(p.clone());
    }
    media_to_host(ctx, plan, &ready.images, route).map_err(|e| {
        // The upload's own error says what is left of it; an
        // interruption (the child's end, seen as its failure) is said.
        if crate::interrupt::happened() {
            let e = if crate::interrupt::is_interrupted(&e) {
                e
            } else {
                e.context(crate::interrupt::Interrupted)
            };
            e.context("stopped before anything was made")
        } else {
            e
        }
    })
}

/// The host reached over ssh gets the install and driver ISOs of this
/// machine (sent once, found there by SHA-256 the next time); the plan
/// then names the copies.
fn media_to_host(ctx: &Ctx, plan: &mut Plan, images: &Path, route: &media::Route) -> Result<()> {
    if !plan.iso_on_host {
        plan.iso = media::on_host(ctx, &plan.iso, images, route)?;
        plan.iso_on_host = true;
    }
    crate::interrupt::check()?;
    if let Some(v) = &plan.virtio_iso {
        plan.virtio_iso = Some(media::on_host(ctx, v, images, route)?);
    }
    crate::interrupt::check()
}

/// The virtio-win ISO: given, else the cached one (`--dry-run` names it
/// without fetching), else downloaded now.
fn virtio_iso(ctx: &Ctx, args: &CreateArgs, plan: &Plan, ready: &Ready) -> Result<PathBuf> {
    if let Some(v) = &plan.virtio_iso {
        return Ok(v.clone());
    }
    if args.dry_run {
        return Ok(ready.cached_virtio.clone());
    }
    let opts = download::Options {
        offline: args.download.offline,
        expected_sha256: args.download.virtio_sha256.clone(),
    };
    let got = ctx
        .local
        .fetch(&ready.virtio_item, &opts)
        .context("getting the VirtIO drivers ISO failed; nothing was created")?;
    if !got.cached {
        ctx.ui.step(
            "downloaded",
            &format!("{} ({})", got.path.display(), human(got.size)),
        );
    }
    Ok(got.path)
}

/// The domain to make: the plan's settings, the disk in the images
/// directory, a fresh MAC and UUID.
fn spec(ctx: &Ctx, plan: &Plan, images: &Path, unattended: bool) -> Result<WindowsDomain> {
    let answer_iso = if unattended {
        let a = images.join(format!("{}-answer.iso", plan.name));
        if ctx.host.lstat(&a).is_ok() {
            bail!(
                "{} already exists; move it away (an earlier unattended create?)",
                a.display()
            );
        }
        Some(path_str(&a)?)
    } else {
        None
    };
    Ok(WindowsDomain {
        uri: ctx.uri.to_string(),
        name: plan.name.to_string(),
        virt_type: plan.virt_type,
        memory_mib: mib(plan.memory),
        vcpus: plan.cpus,
        disk_path: path_str(&images.join(format!("{}.qcow2", plan.name)))?,
        iso: path_str(&plan.iso)?,
        virtio_iso: plan.virtio_iso.as_deref().map(path_str).transpose()?,
        answer_iso,
        mac: random_mac(ctx)?,
        uuid: random_uuid(ctx)?,
    })
}

/// Undo a failed `make`, say what was removed and what is left, and
/// return the error to end with.
fn undo(ctx: &Ctx, name: &str, uuid: &str, made: &Made, err: anyhow::Error) -> anyhow::Error {
    // A child killed by the same Ctrl-C reports its own death; the
    // interruption is what happened.
    let err = if crate::interrupt::happened() && !crate::interrupt::is_interrupted(&err) {
        anyhow::Error::new(crate::interrupt::Interrupted)
    } else {
        err
    };
    let undo = rollback(ctx, name, uuid, made);
    ctx.ui.line("Rolled back");
    for r in &undo.removed {
        ctx.ui.step("removed", r);
    }
    if undo.removed.is_empty() && undo.left.is_empty() {
        ctx.ui.step("removed", "nothing had been made yet");
    }
    for l in &undo.left {
        ctx.ui.step("left", l);
    }
    if undo.left.is_empty() {
        return err.context(format!("creating {name} failed; nothing was left behind"));
    }
    Err::<(), _>(err.context(format!(
        "creating {name} failed; some of what it made is left (see \"left\" above)"
    )))
    .hint(format!(
        "remove the rest with: bkt vm -c {} destroy {name}",
        ctx.uri
    ))
    .unwrap_err()
}

/// The same steps as a run, shown instead of run: the media a host over
/// ssh would be sent, the commands that make the disk and the domain, and
/// the domain's XML.
fn dry_run(ctx: &Ctx, job: &Job, steps: &[Step]) -> Result<()> {
    let (plan, images) = (job.plan, job.images);
    ctx.ui.heading("Dry run: nothing will be created");
    if let Some(t) = ctx.uri.ssh() {
        ctx.ui.line("Media:");
        let local = std::iter::once(&plan.iso)
            .filter(|_| !plan.iso_on_host)
            .chain(&plan.virtio_iso);
        for m in local {
            ctx.ui.line(format_args!(
                "  {} would be sent to {}:{}/bkt-media-<its SHA-256>-… (unless it is there)",
                m.display(),
                t.host,
                images.display()
            ));
        }
    }
    ctx.ui.line("Commands:");
    for step in steps {
        for c in step.commands(ctx, job)? {
            ctx.ui.line(format_args!("  {}", c.display()));
        }
    }
    ctx.ui
        .line("Domain XML (rendered by virt-install --print-xml):");
    let size_gib = plan.disk_size.div_ceil(gib_bytes(1));
    let xml = ctx
        .libvirt_out(&ctx.virsh.client(job.domain.print_xml(size_gib)))
        .context("rendering the domain XML")?;
    ctx.ui.text(format_args!("{xml}"));
    Ok(())
}

/// What this run made so far: what a rollback removes, and only that.
#[derive(Debug, Default)]
struct Made {
    /// The manifest entry that reserves the name (still "creating").
    entry: bool,
    /// Files and volumes, in the order made.
    files: Vec<MadeFile>,
    /// Set just before `virsh define`: the domain with this run's UUID, if
    /// libvirt has one, is ours.
    domain: bool,
}

/// A file this run made: a path it claimed (created empty, exclusively),
/// or a volume it asked libvirt for.
#[derive(Debug)]
struct MadeFile {
    /// "disk" or "answer ISO", as the user reads it.
    what: &'static str,
    path: PathBuf,
    /// A volume libvirt made: libvirt removes it.
    volume: bool,
}

/// Create `path` empty, failing if anything is there: from here on the
/// path is this run's, and nothing of anyone else's is ever overwritten.
fn claim(ctx: &Ctx, path: &Path) -> Result<()> {
    match ctx.host.create_new(path, 0o600) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(appeared(path)),
        Err(e) => Err(e).with_context(|| format!("cannot create the disk {}", path.display())),
    }
}

/// A disk of that name came while bkt was busy: never overwritten.
fn appeared(path: &Path) -> anyhow::Error {
    Err::<(), _>(anyhow!(
        "{} appeared while preflight ran; bkt never overwrites a disk",
        path.display()
    ))
    .hint("choose another --name, or move the file away if nothing uses it")
    .unwrap_err()
}

/// What the steps work from: the plan, the domain it became, the images
/// directory on the host, and for an unattended install the answers with
/// the drivers ISO here to build their ISO from.
struct Job<'a> {
    plan: &'a Plan,
    domain: &'a WindowsDomain,
    images: &'a Path,
    answers: Option<(&'a crate::tools::unattend::Answers, &'a Path)>,
}

/// One step of making the VM, in the order [`make`] runs them. Each notes
/// in [`Made`] what it made as soon as it is this run's, for the rollback.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// The name taken in the manifest by an entry marked "creating": a
    /// second `bkt vm create` of the name fails from here on instead of
    /// racing this one.
    Reserve,
    /// The host's images directory, made if it is missing.
    ImagesDir,
    /// The disk, noted in the manifest as soon as it is this run's.
    Disk(DiskBy),
    /// The answer ISO of an unattended install, built here and written to
    /// the host (0600: it holds the password).
    AnswerIso,
    /// The domain rendered by virt-install, defined, and started with fresh
    /// NVRAM: one step, as the user watches it (one spinner) and as it is
    /// undone (the domain of this run's UUID, with its NVRAM and TPM).
    Domain,
    /// The manifest entry no longer "creating".
    Finish,
}

/// Who makes the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DiskBy {
    /// qemu-img, at a path claimed first (created empty, never over a
    /// file): this machine.
    QemuImg,
    /// libvirt, as a volume of this pool: a host over ssh whose images
    /// directory the media reached through it.
    Pool(String),
    /// Over ssh: libvirt, if an active pool holds the images directory
    /// (asked when the step runs), else qemu-img there.
    PoolOrQemuImg,
}

/// The steps of a create, for [`make`] to run and `--dry-run` to show.
fn steps(remote: bool, pool: Option<&str>, unattended: bool) -> Vec<Step> {
    let disk = match (remote, pool) {
        (false, _) => DiskBy::QemuImg,
        (true, Some(p)) => DiskBy::Pool(p.to_string()),
        (true, None) => DiskBy::PoolOrQemuImg,
    };
    let mut steps = vec![Step::Reserve, Step::ImagesDir, Step::Disk(disk)];
    if unattended {
        steps.push(Step::AnswerIso);
    }
    steps.extend([Step::Domain, Step::Finish]);
    steps
}

impl Step {
    /// Do it, noting in `made` what it made.
    fn run(&self, ctx: &Ctx, job: &Job, made: &mut Made) -> Result<()> {
        match self {
            Step::Reserve => reserve(ctx, job, made),
            Step::ImagesDir => images_dir(ctx, job.images),
            Step::Disk(by) => disk(ctx, job, by, made),
            Step::AnswerIso => answer_iso(ctx, job, made),
            Step::Domain => domain(ctx, job, made),
            Step::Finish => finish(ctx, job.plan),
        }
    }

    /// The commands `--dry-run` shows for it: those of libvirt and
    /// qemu-img (the manifest and the answer ISO are bkt's own files).
    fn commands(&self, ctx: &Ctx, job: &Job) -> Result<Vec<crate::exec::Cmd>> {
        let d = job.domain;
        Ok(match self {
            Step::Disk(by) => vec![match disk_pool(ctx, by, Path::new(&d.disk_path))? {
                Some(pool) => ctx.virsh.vol_create_qcow2(
                    &pool,
                    &volume_name(&d.disk_path),
                    job.plan.disk_size,
                ),
                None => qemu_img::create_qcow2(&d.disk_path, job.plan.disk_size),
            }],
            Step::Domain => vec![
                d.render(),
                ctx.virsh.define_stdin(""),
                ctx.virsh.start_fresh(&d.uuid),
            ],
            Step::Reserve | Step::ImagesDir | Step::AnswerIso | Step::Finish => vec![],
        })
    }
}

/// Run the steps, and when one fails undo what they made.
fn build(ctx: &Ctx, job: &Job, steps: &[Step]) -> Result<()> {
    let mut made = Made::default();
    make(ctx, job, steps, &mut made)
        .map_err(|err| undo(ctx, &job.plan.name, &job.domain.uuid, &made, err))
}

/// Run the steps in order; when one fails, `made` says what to undo.
fn make(ctx: &Ctx, job: &Job, steps: &[Step], made: &mut Made) -> Result<()> {
    ctx.ui.heading("Creating");
    for step in steps {
        step.run(ctx, job, made)?;
    }
    Ok(())
}

/// Reserve the name: a second `bkt vm create` of it now fails instead of
/// racing this one.
fn reserve(ctx: &Ctx, job: &Job, made: &mut Made) -> Result<()> {
    let (plan, domain) = (job.plan, job.domain);
    ctx.manifest.update(|m| {
        if m.named(&plan.name).is_some() {
            bail!(
                "{:?} was taken while preflight ran (another `bkt vm create`?)",
                plan.name.as_str()
            );
        }
        m.vms.push(VmEntry {
            name: plan.name.to_string(),
            kind: "windows11".into(),
            disk: domain.disk_path.clone(),
            created: ctx.local.today(),
            rdp_enabled: false,
            notes: plan.notes.clone(),
            uri: ctx.uri.to_string(),
            isos: std::iter::once(domain.iso.clone())
                .chain(domain.virtio_iso.clone())
                .collect(),
            mac: Some(domain.mac.clone()),
            rdp_user: job.answers.map(|(a, _)| a.username.clone()),
            answer_iso: domain.answer_iso.clone(),
            auto_save: Some(plan.auto_save.as_secs()),
            share: None,
            clipboard: None,
            creating: true,
            extra: Default::default(),
        });
        Ok(())
    })?;
    made.entry = true;
    crate::interrupt::check()
}

fn images_dir(ctx: &Ctx, images: &Path) -> Result<()> {
    if !ctx.host.exists(images) {
        ctx.host
            .create_dir_all(images)
            .with_context(|| format!("cannot create the images directory {}", images.display()))?;
    }
    Ok(())
}

/// The disk, checked to be what was asked for.
fn disk(ctx: &Ctx, job: &Job, by: &DiskBy, made: &mut Made) -> Result<()> {
    let (plan, domain) = (job.plan, job.domain);
    let (format, size, allocated) = match disk_pool(ctx, by, Path::new(&domain.disk_path))? {
        Some(pool) => disk_in_pool(ctx, job, &pool, made)?,
        None => disk_on_host(ctx, job, made)?,
    };
    if format != "qcow2" || size != plan.disk_size {
        bail!(
            "the new disk is {format} of {size} bytes, not qcow2 of {} bytes",
            plan.disk_size
        );
    }
    ctx.ui.step(
        "disk",
        &format!(
            "{} ({}, sparse: {} allocated)",
            domain.disk_path,
            human(size),
            human(allocated)
        ),
    );
    crate::interrupt::check()
}

/// The pool whose volume the disk is, when libvirt makes it: the one
/// known, else over ssh the active pool of its directory, if any.
fn disk_pool(ctx: &Ctx, by: &DiskBy, disk: &Path) -> Result<Option<String>> {
    match (by, disk.parent()) {
        (DiskBy::QemuImg, _) | (DiskBy::PoolOrQemuImg, None) => Ok(None),
        (DiskBy::Pool(p), _) => Ok(Some(p.clone())),
        (DiskBy::PoolOrQemuImg, Some(dir)) => ctx
            .pool_holding(dir)
            .context("looking for the storage pool of the host's images directory"),
    }
}

/// The name of the disk's volume in its pool: its file name.
fn volume_name(disk: &str) -> String {
    Path::new(disk)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn answer_iso(ctx: &Ctx, job: &Job, made: &mut Made) -> Result<()> {
    let (Some((a, virtio)), Some(out)) = (job.answers, &job.domain.answer_iso) else {
        bail!("an answer ISO was planned without the answers of an unattended install");
    };
    unattended::build_answer_iso(ctx, virtio, a, Path::new(out))?;
    made.files.push(MadeFile {
        what: "answer ISO",
        path: PathBuf::from(out),
        volume: false,
    });
    record(ctx, &job.plan.name, out)?;
    ctx.ui.step(
        "answers",
        &format!("{out} (autounattend.xml, VirtIO drivers; 0600)"),
    );
    crate::interrupt::check()
}

/// Define and start the domain, and say what it is.
fn domain(ctx: &Ctx, job: &Job, made: &mut Made) -> Result<()> {
    let plan = job.plan;
    let spinner = ctx.ui.spinner("defining and starting the domain");
    let res = define_and_start(ctx, job.domain, made);
    spinner.clear();
    res?;
    crate::interrupt::check()?;
    ctx.ui.step(
        "domain",
        &format!(
            "{}: {} vCPU{}, {}, UEFI + Secure Boot, TPM 2.0, VirtIO{}",
            plan.name,
            plan.cpus,
            if plan.cpus == 1 { "" } else { "s" },
            human(plan.memory),
            if plan.virt_type == VirtType::Qemu {
                ", software emulation"
            } else {
                ""
            }
        ),
    );
    ctx.ui.step("starting", "done");
    ctx.ui.step(
        "auto-save",
        &match plan.auto_save {
            AutoSave::Off => {
                "off (bkt vm config NAME --auto-save 15m turns it on)".replace("NAME", &plan.name)
            }
            t => format!("to disk after {t} unused, giving its memory back"),
        },
    );
    Ok(())
}

/// The VM is made: its entry no longer "creating".
fn finish(ctx: &Ctx, plan: &Plan) -> Result<()> {
    ctx.manifest.update(|m| {
        let e = m
            .get_mut(&plan.name, &ctx.uri)
            .context("the manifest entry disappeared while creating")?;
        e.creating = false;
        Ok(())
    })?;
    ctx.ui.step("manifest", &ctx.manifest.display().to_string());
    Ok(())
}

/// The disk made by qemu-img on the host (this machine, or over ssh when
/// libvirt there has no images pool): its path claimed (created empty,
/// never over a file) first. Its format, size and allocation.
fn disk_on_host(ctx: &Ctx, job: &Job, made: &mut Made) -> Result<(String, u64, u64)> {
    let (plan, domain) = (job.plan, job.domain);
    let disk = PathBuf::from(&domain.disk_path);
    claim(ctx, &disk)?;
    made.files.push(MadeFile {
        what: "disk",
        path: disk,
        volume: false,
    });
    record(ctx, &plan.name, &domain.disk_path)?;
    ctx.host
        .run_tool(&qemu_img::create_qcow2(&domain.disk_path, plan.disk_size))
        .context("creating the disk")?;
    crate::interrupt::check()?;
    let info = ctx
        .host
        .run_tool(&qemu_img::info(&domain.disk_path))
        .and_then(|s| qemu_img::parse_info(&s))
        .context("checking the new disk")?;
    Ok((info.format, info.virtual_size, info.actual_size))
}

/// The disk on a host reached over ssh: a volume libvirt makes there in
/// the pool of the images directory (`default` on most hosts), after a
/// refresh so that it refuses a name a file already has and sees the
/// media just sent. Its format, size and allocation.
fn disk_in_pool(ctx: &Ctx, job: &Job, pool: &str, made: &mut Made) -> Result<(String, u64, u64)> {
    let (plan, domain) = (job.plan, job.domain);
    let disk = PathBuf::from(&domain.disk_path);
    ctx.libvirt(&ctx.virsh.pool_refresh(pool))
        .with_context(|| format!("refreshing the storage pool {pool}"))?;
    // libvirt refuses a name the pool has: what it makes is this run's
    // (shielded, so that a Ctrl-C cannot leave one made but not known).
    match ctx.try_libvirt(
        &ctx.virsh
            .vol_create_qcow2(pool, &volume_name(&domain.disk_path), plan.disk_size)
            .shielded(),
    ) {
        Ok(_) => {}
        Err(e) if e.stderr().contains("exists already") => {
            return Err(appeared(&disk));
        }
        Err(e) => return Err(ctx.libvirt_error(e)).context("creating the disk on the host"),
    }
    made.files.push(MadeFile {
        what: "disk",
        path: disk,
        volume: true,
    });
    record(ctx, &plan.name, &domain.disk_path)?;
    crate::interrupt::check()?;
    let info = ctx
        .libvirt_out(&ctx.virsh.vol_dumpxml(&domain.disk_path))
        .and_then(|x| crate::tools::virsh::parse_vol_xml(&x))
        .context("checking the new disk")?;
    Ok((info.format, info.capacity, info.allocation))
}

/// virt-install renders the XML; we define and start it, so a start that
/// fails leaves a domain (ours, by UUID) that the rollback undefines with
/// its NVRAM and TPM state.
fn define_and_start(ctx: &Ctx, domain: &WindowsDomain, made: &mut Made) -> Result<()> {
    let xml = ctx
        .libvirt_out(&ctx.virsh.client(domain.render()))
        .context("rendering the domain with virt-install")?;
    crate::interrupt::check()?;
    made.domain = true;
    ctx.libvirt(&ctx.virsh.define_stdin(&xml))
        .context("defining the domain")?;
    crate::interrupt::check()?;
    ctx.libvirt(&ctx.virsh.start_fresh(&domain.uuid))
        .context("starting the domain")?;
    Ok(())
}

/// Note a file this run made, so that `destroy` (or the rollback) may
/// delete it.
fn record(ctx: &Ctx, name: &str, path: &str) -> Result<()> {
    ctx.manifest.update(|m| {
        m.record(name, &ctx.uri, path);
        Ok(())
    })
}

/// What a rollback did, and what it could not do (with how to finish).
#[derive(Debug, Default)]
struct Undo {
    removed: Vec<String>,
    left: Vec<String>,
}

/// Remove what this run made, and only that: the domain first (it uses
/// the files), then the files in the order made (as the screens name
/// them), the manifest entry last (it stays while anything is left).
fn rollback(ctx: &Ctx, name: &str, uuid: &str, made: &Made) -> Undo {
    let mut u = Undo::default();
    if made.domain {
        undo_domain(ctx, name, uuid, &mut u);
    }
    let gone: Vec<String> = made
        .files
        .iter()
        .filter(|f| undo_file(ctx, f, &mut u))
        .map(|f| f.path.display().to_string())
        .collect();
    if made.entry {
        undo_entry(ctx, name, &gone, &mut u);
    }
    u
}

/// Power off and undefine the domain of this run's UUID, if libvirt has it.
fn undo_domain(ctx: &Ctx, name: &str, uuid: &str, u: &mut Undo) {
    let state = match ctx.domstate(uuid) {
        // Not defined after all (virt-install or define failed): a
        // domain of the same name, if any, is someone else's.
        Ok(None) => return,
        Ok(Some((state, _))) => state,
        Err(e) => {
            return u.left.push(format!(
                "domain {name} ({uuid}), if it was defined: cannot ask libvirt ({}); \
                 check with {}",
                last_line(&format!("{e:#}")),
                ctx.virsh.domstate(uuid).display()
            ));
        }
    };
    if state.is_active()
        && let Err(e) = ctx.try_libvirt(&ctx.virsh.destroy(uuid).shielded())
    {
        return u.left.push(format!(
            "domain {name} ({uuid}), running: {}; remove it with {} and {}",
            why(&e),
            ctx.virsh.destroy(uuid).display(),
            ctx.virsh.undefine(uuid).display()
        ));
    }
    match ctx.try_libvirt(&ctx.virsh.undefine(uuid).shielded()) {
        Ok(_) => u
            .removed
            .push(format!("domain {name} with its NVRAM and TPM state")),
        Err(e) => u.left.push(format!(
            "domain {name} ({uuid}): {}; remove it with {}",
            why(&e),
            ctx.virsh.undefine(uuid).display()
        )),
    }
}

/// Remove a file this run made; whether it is gone (now, or already).
fn undo_file(ctx: &Ctx, f: &MadeFile, u: &mut Undo) -> bool {
    let p = &f.path;
    let removed = if f.volume {
        match ctx.try_libvirt(&ctx.virsh.vol_delete(&p.display().to_string()).shielded()) {
            Ok(_) => Ok(()),
            Err(e) if crate::tools::virsh::is_no_volume(e.stderr()) => {
                Err(std::io::Error::from(std::io::ErrorKind::NotFound))
            }
            Err(e) => Err(std::io::Error::other(why(&e))),
        }
    } else {
        ctx.host.remove_file(p)
    };
    match removed {
        Ok(()) => {
            u.removed.push(format!("{} {}", f.what, p.display()));
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => {
            u.left.push(format!("{} {}: {e}", f.what, p.display()));
            false
        }
    }
}

/// Forget the files that are gone, and the entry with them when nothing
/// is left; with something left, the entry stays (still "creating"), so
/// that `bkt vm destroy` finds and finishes it.
fn undo_entry(ctx: &Ctx, name: &str, gone: &[String], u: &mut Undo) {
    let nothing_left = u.left.is_empty();
    let res = ctx.manifest.update(|m| {
        for p in gone {
            m.forget(name, &ctx.uri, p);
        }
        Ok(nothing_left && m.remove(name, &ctx.uri).is_some())
    });
    match res {
        Ok(true) => u.removed.push("manifest entry".into()),
        Ok(false) => {}
        Err(e) => u.left.push(format!(
            "manifest entry {name} in {}: {}",
            ctx.manifest.display(),
            last_line(&format!("{e:#}"))
        )),
    }
}

/// The last line that says something (libvirt puts the cause last).
fn last_line(s: &str) -> String {
    s.lines()
        .map(|l| l.trim().trim_start_matches("error: "))
        .rfind(|l| !l.is_empty())
        .unwrap_or("failed")
        .to_string()
}

/// Why a command failed, in one line: what it said, else how it ended.
fn why(e: &crate::exec::ExecError) -> String {
    match e.status() {
        Some(st) if e.stderr().trim().is_empty() => st.to_string(),
        _ => last_line(e.stderr()),
    }
}

const GUIDE: &[&str] = &[
    "Choose \"I don't have a product key\" (activate later)",
    "Select Windows 11 Pro",
    "Choose \"Custom: Install Windows only\"",
    "Click \"Load driver\" → browse to the virtio-win CD → amd64\\w11",
    "Select the VirtIO disk and continue the installation",
];

fn guide(ctx: &Ctx, plan: &Plan, interactive: bool) -> Result<()> {
    ctx.ui.line("");
    ctx.ui.line(format_args!(
        "Next: complete Windows Setup in the VM's console: bkt vm connect {} --spice",
        plan.name
    ));
    for (i, s) in GUIDE.iter().enumerate() {
        ctx.ui.line(format_args!("  {}. {s}", i + 1));
    }
    if plan.virtio_iso.is_none() {
        ctx.ui.line(
            "  Note: no --virtio-iso was given, so Setup will not see the VirtIO disk until you \
             attach the virtio-win ISO.",
        );
    }
    if interactive {
        ctx.ui.line("");
        dialoguer::Input::<String>::new()
            .with_prompt("Press Enter when the installation completes and you are at the desktop")
            .allow_empty(true)
            .interact_text()?;
        unattended::eject_install_iso(ctx, &plan.name, &plan.iso)?;
        rdp_setup::offer(ctx, &plan.name)?;
        ctx.ui.line(format_args!(
            "Done. Daily use: bkt vm connect {0}; bkt vm stop {0}",
            plan.name
        ));
    } else {
        ctx.ui.line(format_args!(
            "When Windows is installed, turn on Remote Desktop: bkt vm enable-rdp {}",
            plan.name
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    // why: tests read fixtures and set up the files and processes they look at.
    #![allow(clippy::disallowed_methods, clippy::disallowed_types)]

    use super::*;

    #[test]
    fn defaults_follow_the_host() {
        let big = HostSize {
            memory_bytes: gib_bytes(64),
            cpus: 16,
        };
        assert_eq!(default_memory(&big), gib_bytes(8));
        assert_eq!(default_cpus(&big), 4);
        let small = HostSize {
            memory_bytes: gib_bytes(6),
            cpus: 2,
        };
        assert_eq!(default_memory(&small), gib_bytes(3));
        assert_eq!(default_cpus(&small), 1);
    }

    #[test]
    fn macs_and_uuids_are_well_formed_and_random() {
        let ctx = Ctx::for_tests();
        let m = random_mac(&ctx).unwrap();
        assert!(
            regex::Regex::new("^52:54:00:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$")
                .unwrap()
                .is_match(&m)
        );
        let re = regex::Regex::new(
            "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
        )
        .unwrap();
        let (a, b) = (random_uuid(&ctx).unwrap(), random_uuid(&ctx).unwrap());
        assert!(re.is_match(&a), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn a_failure_says_why_in_one_line() {
        use crate::exec::{ExecError, Status};
        let failed = |code, stderr: &str| ExecError::Failed {
            cmd: "virsh -c qemu:///system undefine x".into(),
            status: Status::Code(code),
            stderr: stderr.into(),
        };
        let said = failed(1, "error: Failed to undefine domain\nerror: it is busy\n");
        assert_eq!(why(&said), "it is busy");
        let silent = failed(3, "");
        assert_eq!(why(&silent), "exit status: 3");
    }

    #[test]
    fn the_steps_follow_the_host_and_the_install() {
        use DiskBy::*;
        use Step::*;
        let with = |disk, tail: &[Step]| {
            let mut s = vec![Reserve, ImagesDir, Disk(disk)];
            s.extend_from_slice(tail);
            s
        };
        // This machine: qemu-img, whatever pool the images are in.
        assert_eq!(steps(false, None, false), with(QemuImg, &[Domain, Finish]));
        assert_eq!(
            steps(false, Some("default"), false),
            with(QemuImg, &[Domain, Finish])
        );
        // An unattended install has its answer ISO, after the disk.
        assert_eq!(
            steps(false, None, true),
            with(QemuImg, &[AnswerIso, Domain, Finish])
        );
        // Over ssh: the pool the media went through, else the one of the
        // images directory if there is one when the disk is made.
        assert_eq!(
            steps(true, Some("images"), false),
            with(Pool("images".into()), &[Domain, Finish])
        );
        assert_eq!(
            steps(true, None, true),
            with(PoolOrQemuImg, &[AnswerIso, Domain, Finish])
        );
    }

    fn job_parts() -> (Plan, WindowsDomain) {
        let plan = Plan {
            name: "w".parse().unwrap(),
            iso: "/isos/Win11.iso".into(),
            iso_on_host: false,
            virtio_iso: None,
            disk_size: gib_bytes(2),
            memory: gib_bytes(4),
            cpus: 2,
            notes: String::new(),
            virt_type: VirtType::Kvm,
            auto_save: AutoSave::Off,
            pool: None,
        };
        let domain = WindowsDomain {
            uri: "qemu:///system".into(),
            name: "w".into(),
            virt_type: VirtType::Kvm,
            memory_mib: 4096,
            vcpus: 2,
            disk_path: "/images/w.qcow2".into(),
            iso: "/isos/Win11.iso".into(),
            virtio_iso: None,
            answer_iso: None,
            mac: "52:54:00:00:00:01".into(),
            uuid: "00000000-0000-4000-8000-000000000001".into(),
        };
        (plan, domain)
    }

    #[test]
    fn a_dry_run_shows_the_commands_of_the_steps_it_would_run() {
        let ctx = Ctx::for_tests();
        let (plan, domain) = job_parts();
        let job = Job {
            plan: &plan,
            domain: &domain,
            images: Path::new("/images"),
            answers: None,
        };
        let shown = |steps: &[Step]| -> Vec<String> {
            steps
                .iter()
                .flat_map(|s| s.commands(&ctx, &job).unwrap())
                .map(|c| c.display().to_string())
                .collect()
        };
        let local = shown(&steps(false, None, false));
        assert_eq!(local.len(), 4, "{local:#?}");
        assert_eq!(
            local[0],
            "qemu-img create -q -f qcow2 /images/w.qcow2 2147483648"
        );
        assert!(local[1].starts_with("virt-install --connect qemu:///system --name w --uuid "));
        assert_eq!(
            local[2..],
            [
                "virsh -c qemu:///system define /dev/stdin",
                "virsh -c qemu:///system start 00000000-0000-4000-8000-000000000001 --reset-nvram"
            ]
        );
        // The manifest and the answer ISO are bkt's own: no command.
        assert_eq!(shown(&steps(false, None, true)), local);
        assert_eq!(
            shown(&[Step::Disk(DiskBy::Pool("images".into()))]),
            ["virsh -c qemu:///system vol-create-as images w.qcow2 2147483648 --format qcow2"]
        );
    }

    #[test]
    fn a_claimed_path_is_never_taken_twice() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("w.qcow2");
        let ctx = Ctx::for_tests();
        claim(&ctx, &p).unwrap();
        std::fs::write(&p, "someone's data").unwrap();
        let err = claim(&ctx, &p).unwrap_err();
        assert!(format!("{err:#}").contains("appeared while preflight ran"));
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "someone's data");
    }

    // Orchestration against the fake host and libvirt (ctx/fake.rs): the
    // steps in order, and on a failure the rollback in its order.

    use crate::vm::ctx::fake::Fake;

    const UUID: &str = "00000000-0000-4000-8000-000000000001";
    /// `qemu-img info --output=json` of the 2 GiB disk, hand-typed: only
    /// the fields bkt reads.
    const INFO: &str = r#"{"format": "qcow2", "virtual-size": 2147483648, "actual-size": 196608}"#;

    /// A fake where every step of a local create succeeds.
    /// A fake whose qemu-img makes the disk as asked; libvirt answers
    /// nothing yet.
    fn disk_made() -> Fake {
        let f = Fake::new();
        f.host
            .tool("qemu-img create", "")
            .tool("qemu-img info", INFO);
        f
    }

    fn all_well() -> Fake {
        let f = disk_made();
        f.libvirt
            .ok("virt-install", "<domain/>")
            .ok("define /dev/stdin", "")
            .ok("start ", "");
        f
    }

    /// Build `w` as `create::run` does after preflight.
    fn build_w(f: &Fake) -> Result<()> {
        let (plan, domain) = job_parts();
        let job = Job {
            plan: &plan,
            domain: &domain,
            images: Path::new("/images"),
            answers: None,
        };
        build(&f.ctx, &job, &steps(false, None, false))
    }

    fn disks(m: &crate::manifest::Manifest) -> Vec<String> {
        m.made_for("w", "qemu:///system")
    }

    #[test]
    fn a_create_runs_its_steps_in_order_and_finishes_the_entry() {
        let f = all_well();
        build_w(&f).unwrap();
        assert_eq!(
            f.journal(),
            [
                "host: create_dir_all /images",
                "host: create_new /images/w.qcow2",
                "host: run_tool qemu-img create -q -f qcow2 /images/w.qcow2 2147483648",
                "host: run_tool qemu-img info --output=json -U /images/w.qcow2",
                &format!("libvirt: {}", f.libvirt.calls()[0]),
                "libvirt: define /dev/stdin",
                &format!("libvirt: start {UUID} --reset-nvram"),
            ]
        );
        assert!(f.libvirt.calls()[0].starts_with("virt-install --connect qemu:///system"));
        let m = f.manifest();
        let e = m.named("w").expect("the entry");
        assert!(!e.creating, "finished");
        assert_eq!(e.created, "2026-01-02");
        assert_eq!(disks(&m), ["/images/w.qcow2"]);
        assert_eq!(f.host.node("/images/w.qcow2").unwrap().mode, 0o600);
        assert!(
            f.said().contains("domain         w: 2 vCPUs, 4 GiB"),
            "{}",
            f.said()
        );
    }

    #[test]
    fn an_existing_images_directory_is_not_made_again() {
        let f = all_well();
        f.host.dir("/images");
        build_w(&f).unwrap();
        assert!(!f.journal().iter().any(|c| c.contains("create_dir_all")));
    }

    #[test]
    fn a_failed_define_removes_the_disk_and_the_entry() {
        let f = disk_made();
        f.libvirt
            .ok("virt-install", "<domain/>")
            .fails("define /dev/stdin", 1, "error: XML error: bad\n")
            .fails("domstate", 1, "error: failed to get domain '0000'\n");
        let err = build_w(&f).unwrap_err();
        assert!(
            format!("{err:#}").contains("creating w failed; nothing was left behind"),
            "{err:#}"
        );
        let j = f.journal();
        assert_eq!(
            j[j.len() - 2..],
            [
                format!("libvirt: domstate --reason {UUID}"),
                "host: remove_file /images/w.qcow2".to_string(),
            ],
            "not defined after all: no undefine; then the disk"
        );
        assert!(!f.host.has("/images/w.qcow2"));
        assert!(f.manifest().vms.is_empty(), "the entry is gone");
        assert!(disks(&f.manifest()).is_empty(), "and the disk forgotten");
        let said = f.said();
        assert!(said.contains("Rolled back"), "{said}");
        assert!(
            said.contains("removed        disk /images/w.qcow2"),
            "{said}"
        );
        assert!(said.contains("removed        manifest entry"), "{said}");
    }

    #[test]
    fn a_failed_start_undefines_the_domain_before_the_files() {
        let f2 = Fake::new();
        f2.host
            .tool("qemu-img create", "")
            .tool("qemu-img info", INFO);
        f2.libvirt
            .ok("virt-install", "<domain/>")
            .ok("define /dev/stdin", "")
            .fails("start ", 1, "error: no room\n")
            .ok("domstate", "running (booted)\n")
            .ok("destroy ", "")
            .ok("undefine ", "");
        let err = build_w(&f2).unwrap_err();
        assert!(
            format!("{err:#}").contains("starting the domain"),
            "{err:#}"
        );
        let j = f2.journal();
        let undo: Vec<&str> = j[j.len() - 4..].iter().map(String::as_str).collect();
        assert_eq!(undo[0], format!("libvirt: domstate --reason {UUID}"));
        assert_eq!(undo[1], format!("libvirt: destroy {UUID}"));
        assert!(undo[2].starts_with(&format!("libvirt: undefine {UUID} --nvram --tpm")));
        assert_eq!(undo[3], "host: remove_file /images/w.qcow2");
        assert!(f2.manifest().vms.is_empty());
        assert!(f2.said().contains("domain w with its NVRAM and TPM state"));
    }

    #[test]
    fn a_failed_qemu_img_removes_the_claimed_path_and_asks_libvirt_nothing() {
        let f = Fake::new();
        f.host
            .tool_fails("qemu-img create", "qemu-img: no space left");
        let err = build_w(&f).unwrap_err();
        assert!(format!("{err:#}").contains("creating the disk"), "{err:#}");
        assert!(f.libvirt.calls().is_empty(), "{:?}", f.libvirt.calls());
        assert_eq!(
            f.host.calls()[f.host.calls().len() - 1],
            "remove_file /images/w.qcow2"
        );
        assert!(!f.host.has("/images/w.qcow2"));
        assert!(f.manifest().vms.is_empty());
    }

    #[test]
    fn what_cannot_be_removed_is_left_with_its_entry_and_the_fix() {
        let f = Fake::new();
        f.host
            .tool_fails("qemu-img create", "qemu-img: broken")
            .fail(
                "remove_file",
                "/images/w.qcow2",
                std::io::ErrorKind::PermissionDenied,
            );
        let err = build_w(&f).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("some of what it made is left"), "{text}");
        assert!(
            crate::ui::hints_of(&err)
                .iter()
                .any(|h| h.contains("bkt vm -c qemu:///system destroy w")),
            "{:?}",
            crate::ui::hints_of(&err)
        );
        let m = f.manifest();
        let e = m.named("w").expect("the entry stays for destroy to finish");
        assert!(e.creating);
        assert_eq!(disks(&m), ["/images/w.qcow2"], "the disk stays known");
        assert!(f.said().contains("left           disk /images/w.qcow2"));
        assert!(f.host.has("/images/w.qcow2"));
    }

    #[test]
    fn a_domain_that_cannot_be_undefined_keeps_the_entry_but_not_the_gone_files() {
        let f = disk_made();
        f.libvirt
            .ok("virt-install", "<domain/>")
            .fails("define /dev/stdin", 1, "error: later\n")
            .ok("domstate", "shut off\n")
            .fails("undefine ", 1, "error: Failed\nerror: it is busy\n");
        build_w(&f).unwrap_err();
        assert!(
            !f.libvirt.calls().iter().any(|c| c.starts_with("destroy")),
            "a domain that is off is not powered off"
        );
        let m = f.manifest();
        assert!(m.named("w").expect("stays").creating);
        assert!(disks(&m).is_empty(), "the removed disk is forgotten");
        assert!(!f.host.has("/images/w.qcow2"));
        assert!(f.said().contains("it is busy"), "{}", f.said());
    }

    #[test]
    fn a_name_taken_meanwhile_makes_nothing_and_removes_nothing() {
        let f = all_well();
        f.ctx
            .manifest
            .update(|m| {
                m.vms.push(crate::manifest::VmEntry::for_tests("w"));
                Ok(())
            })
            .unwrap();
        let err = build_w(&f).unwrap_err();
        assert!(format!("{err:#}").contains("was taken while preflight ran"));
        assert!(f.journal().is_empty(), "{:?}", f.journal());
        assert_eq!(f.manifest().vms.len(), 1, "the other entry stays");
        assert!(f.said().contains("nothing had been made yet"));
    }

    #[test]
    fn a_disk_that_appeared_is_never_touched() {
        let f = all_well();
        f.host.file("/images/w.qcow2", "someone's data");
        let err = build_w(&f).unwrap_err();
        assert!(format!("{err:#}").contains("appeared while preflight ran"));
        assert!(!f.journal().iter().any(|c| c.contains("remove_file")));
        assert_eq!(
            f.host.node("/images/w.qcow2").unwrap().data,
            b"someone's data"
        );
        assert!(f.manifest().vms.is_empty());
    }

    #[test]
    fn a_disk_not_as_asked_is_removed() {
        let f = Fake::new();
        f.host.tool("qemu-img create", "").tool(
            "qemu-img info",
            r#"{"format": "raw", "virtual-size": 2147483648}"#,
        );
        let err = build_w(&f).unwrap_err();
        assert!(
            format!("{err:#}").contains("the new disk is raw of 2147483648 bytes"),
            "{err:#}"
        );
        assert!(!f.host.has("/images/w.qcow2"));
        assert!(f.libvirt.calls().is_empty());
    }
}
