//! `bkt vm create windows`: preflight, then the disk and the domain, then the
//! guide through Windows Setup. If a later step fails or the user
//! interrupts, exactly what this run made is removed again, and nothing
//! else: the domain is identified by a UUID this run generated, the disk path
//! is claimed with an exclusive create, and what could not be removed is
//! named with the way to finish.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use crate::cli::CreateArgs;
use crate::download;
use crate::exec::shell_quote;
use crate::manifest::{self, VmEntry};
use crate::names::VmName;
use crate::tools::qemu_img;
use crate::tools::virt_install::{VirtType, WindowsDomain};
use crate::ui::{self, Check, HintExt, Level, Spinner};
use crate::units::{AutoSave, gib_bytes, human, mib, parse_size, typed};
use crate::vm::checks::{self, Grant};
use crate::vm::ctx::HostSize;
use crate::vm::ctx::{Ctx, libvirt_error};
use crate::vm::{iso_contents, media, rdp_setup, resources, unattended, windows_iso};

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

/// Ask for what the command line did not give (terminal only), with the
/// defaults filled in and sizes as people type them.
fn prompt(ctx: &Ctx, args: &CreateArgs, host: &HostSize) -> Result<CreateArgs> {
    use dialoguer::{Input, theme::ColorfulTheme};
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
    ui::heading("Windows 11 VM Setup");
    println!("═══════════════════\n");
    println!("This will create a Windows 11 VM optimized for running Windows apps.\n");
    let mut a = args.clone();
    let size_ok =
        |s: &String| -> Result<(), String> { parse_size(s).map(|_| ()).map_err(|e| e.to_string()) };
    if a.name.is_none() {
        let name: String = Input::with_theme(&theme)
            .with_prompt("VM name")
            .default("windows".to_string())
            .validate_with(|s: &String| s.parse::<VmName>().map(|_| ()))
            .interact_text()?;
        a.name = Some(name.parse().map_err(anyhow::Error::msg)?);
    }
    if a.disk_size.is_none() {
        a.disk_size = Some(
            Input::with_theme(&theme)
                .with_prompt("Disk size (grows as needed)")
                .default(typed(gib_bytes(80)))
                .validate_with(size_ok)
                .interact_text()?,
        );
    }
    if a.memory.is_none() {
        a.memory = Some(
            Input::with_theme(&theme)
                .with_prompt(format!("RAM (host has {})", human(host.memory_bytes)))
                .default(typed(default_memory(host)))
                .validate_with(size_ok)
                .interact_text()?,
        );
    }
    if a.cpus.is_none() {
        a.cpus = Some(
            Input::with_theme(&theme)
                .with_prompt(format!("CPUs (host has {})", host.cpus))
                .default(default_cpus(host))
                .interact_text()?,
        );
    }
    let iso_ok = |s: &String| -> Result<(), String> {
        ctx.local
            .absolute(Path::new(s))
            .map_err(|e| e.to_string())
            .and_then(|p| checks::iso_problem(ctx, &p).map(|_| ()))
    };
    if a.iso.is_none() && a.remote_iso.is_none() {
        println!("\nRequired: Windows 11 ISO");
        if found_iso.is_none()
            && let Some(iso) = offer_download(ctx, &theme)?
        {
            a.iso = Some(iso);
        }
    }
    if a.iso.is_none() && a.remote_iso.is_none() {
        let mut input = Input::with_theme(&theme).with_prompt("Path to ISO");
        if let Some(f) = &found_iso {
            input = input.default(f.display().to_string());
        }
        let iso: String = input.validate_with(iso_ok).interact_text()?;
        a.iso = Some(PathBuf::from(iso));
    }
    if asks_virtio && let Some(f) = &found_virtio {
        let v: String = Input::with_theme(&theme)
            .with_prompt("VirtIO drivers ISO")
            .default(f.display().to_string())
            .validate_with(iso_ok)
            .interact_text()?;
        a.virtio_iso = Some(PathBuf::from(v));
    }
    println!();
    Ok(a)
}

/// Where no ISO was found: offer Microsoft's, its size and source said
/// first. None: the user gives a path instead.
fn offer_download(ctx: &Ctx, theme: &dialoguer::theme::ColorfulTheme) -> Result<Option<PathBuf>> {
    let s = &ctx.local.settings.download;
    println!("No Windows 11 ISO in ~/Downloads or in bkt's cache.");
    let yes = dialoguer::Confirm::with_theme(theme)
        .with_prompt(format!(
            "Download Windows 11 x64 from Microsoft (www.microsoft.com, about 7 GiB) into {}?",
            crate::download::cache_dir(s)?.display()
        ))
        .default(true)
        .interact()?;
    if !yes {
        return Ok(None);
    }
    windows_iso::from_microsoft(s, None)
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

/// Print a check and keep it.
fn show(checks: &mut Vec<Check>, c: Check) {
    c.print();
    checks.push(c);
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
    ui::heading("Preflight");
    let mut checks: Vec<Check> = Vec::new();
    if plan.virt_type == VirtType::Kvm {
        // QEMU opens it where it runs: over ssh, the host's, as doctor
        // checks it (never this machine's, nor its BKT_VM_KVM_DEVICE).
        show(
            &mut checks,
            match ctx.uri.ssh() {
                Some(t) => checks::remote_kvm(ctx, t),
                None => checks::kvm(ctx),
            },
        );
    } else {
        show(
            &mut checks,
            Check::pass("KVM", "not used (--virt-type qemu: software emulation)"),
        );
    }
    show(&mut checks, checks::tools(ctx));
    let libvirt_up = if ctx.local.has_program("virsh") {
        let (c, up) = checks::libvirt(ctx);
        show(&mut checks, c);
        up
    } else {
        false
    };
    show(&mut checks, checks::name(ctx, &plan.name, libvirt_up));
    show(&mut checks, checks::resources(host, plan.memory, plan.cpus));
    show(
        &mut checks,
        if plan.iso_on_host {
            checks::iso_on_host(ctx, "install ISO", &plan.iso)
        } else {
            checks::iso(ctx, "install ISO", &plan.iso)
        },
    );
    // What Windows it holds, once it is an ISO that opens.
    let mut image = None;
    if checks.last().is_some_and(|c| c.level == Level::Pass) {
        let (c, i) = iso_contents::check(
            ctx,
            &plan.iso,
            plan.iso_on_host,
            args.edition.as_deref(),
            args.unattended,
        );
        show(&mut checks, c);
        image = i;
    }
    // Without --virtio-iso the drivers come from the cache, or a download.
    let virtio_item = download::virtio(
        args.download.virtio_url.as_deref(),
        &ctx.local.settings.download,
    );
    let cached_virtio = ctx.local.cache_dir()?.join(&virtio_item.file);
    match &plan.virtio_iso {
        Some(v) => show(&mut checks, checks::iso(ctx, "virtio ISO", v)),
        None if ctx.local.exists(&cached_virtio) => {
            let mut c = checks::iso(ctx, "virtio ISO", &cached_virtio);
            if c.level == Level::Pass {
                c.detail.push_str(", cached");
            }
            show(&mut checks, c)
        }
        None if args.download.offline => show(
            &mut checks,
            Check::fail("virtio ISO", "--offline and none in the cache").fix(format!(
                "download {} and place it at {}, or pass --virtio-iso",
                virtio_item.url,
                cached_virtio.display()
            )),
        ),
        None => show(
            &mut checks,
            Check::pass(
                "virtio ISO",
                format!("will be downloaded from {}", virtio_item.url),
            ),
        ),
    }
    if libvirt_up {
        // This VM together with the ones already running.
        match ctx.domstats() {
            Ok(stats) => {
                let adding = resources::Adding {
                    memory_bytes: plan.memory,
                    vcpus: plan.cpus,
                };
                for w in
                    resources::warnings(&stats, host, Some((plan.name.as_str(), adding)), &|d| {
                        ctx.host.free_space(d)
                    })
                {
                    show(&mut checks, Check::warn("resources", w));
                }
            }
            Err(e) => show(
                &mut checks,
                Check::warn("resources", format!("cannot count the running VMs: {e:#}")),
            ),
        }
        show(
            &mut checks,
            checks::secure_boot(ctx, plan.virt_type.as_str()),
        );
        show(&mut checks, checks::network(ctx));
    }
    let images = if libvirt_up {
        ctx.images_dir()
    } else {
        PathBuf::from("/var/lib/libvirt/images")
    };
    let disk_path = images.join(format!("{}.qcow2", plan.name));
    show(
        &mut checks,
        checks::disk(ctx, &images, &disk_path, plan.disk_size),
    );
    let mut route = None;
    if let Some(t) = ctx.uri.ssh() {
        // QEMU there opens the copies in the images directory (or the
        // host's own --remote-iso), not the files here: the ssh user
        // writes them there, or libvirt does into that directory's pool.
        let who = t.user.as_deref().unwrap_or("the ssh user");
        let as_root = ctx
            .uri
            .with_ssh_user("root")
            .unwrap_or_else(|| ctx.uri.to_string());
        route = match media::route(ctx, &images) {
            Ok(r) => r,
            Err(e) => {
                show(
                    &mut checks,
                    Check::fail("media", format!("cannot tell how to send the ISOs: {e:#}")),
                );
                None
            }
        };
        let c = match &route {
            Some(media::Route::Direct) => Check::pass(
                "media",
                format!(
                    "ISOs of this machine are sent to {}:{} once and kept there",
                    t.host,
                    images.display()
                ),
            ),
            Some(media::Route::Pool(pool)) if args.unattended => Check::fail(
                "media",
                format!(
                    "{who} cannot write to {}:{}, where the answer ISO of an unattended \
                     install goes (it holds the password, and only a file of bkt's own \
                     is trusted with it; libvirt's pool {pool} would take the ISOs)",
                    t.host,
                    images.display()
                ),
            )
            .fix(format!(
                "connect as root (--connect '{}'), or install without --unattended",
                as_root
            )),
            Some(media::Route::Pool(pool)) => Check::pass(
                "media",
                format!(
                    "ISOs of this machine are sent into libvirt's pool {pool} ({}:{}) once \
                     and kept there",
                    t.host,
                    images.display()
                ),
            ),
            None => Check::fail(
                "media",
                format!(
                    "{who} cannot write to {}:{}, where the ISOs of this machine go, and no \
                     active libvirt pool holds that directory",
                    t.host,
                    images.display()
                ),
            )
            .fix(format!(
                "connect as root (--connect '{as_root}'), or make it an active pool on the host, \
                 as root there: virsh -c qemu:///system pool-define-as default dir --target {dir} \
                 && virsh -c qemu:///system pool-start default && virsh -c qemu:///system \
                 pool-autostart default (only pool-start when a pool for it is defined)",
                dir = shell_quote(&images.display().to_string())
            )),
        };
        show(&mut checks, c);
    } else if libvirt_up {
        // Last, because it may change something: only when all else passed.
        let media: Vec<&Path> = std::iter::once(plan.iso.as_path())
            .chain(Some(plan.virtio_iso.as_deref().unwrap_or(&cached_virtio)))
            .collect();
        let failed = checks.iter().any(|c| c.level == Level::Fail);
        let grant = if failed {
            Grant::Never
        } else if args.dry_run {
            Grant::DryRun
        } else if args.yes {
            Grant::Yes
        } else if interactive {
            Grant::Ask
        } else {
            Grant::Never
        };
        show(&mut checks, checks::qemu_access(ctx, &media, grant));
    }
    let failed: Vec<String> = checks
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
    Ok(Ready {
        images,
        image,
        route,
        virtio_item,
        cached_virtio,
    })
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
        Some(unattended::answers(ctx, &args, &plan.name, interactive)?)
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
    if args.dry_run {
        let domain = spec(ctx, &plan, &ready.images, answers.is_some())?;
        return dry_run(ctx, &domain, &plan, &ready.images);
    }
    crate::interrupt::catch();
    if ctx.uri.ssh().is_some() {
        ui::heading("Media");
        let route = ready
            .route
            .as_ref()
            .context("no way to send the ISOs to the host")?;
        if let media::Route::Pool(p) = route {
            plan.pool = Some(p.clone());
        }
        if let Err(e) = media_to_host(ctx, &mut plan, &ready.images, route) {
            // The upload's own error says what is left of it; an
            // interruption (the child's end, seen as its failure) is said.
            return Err(if crate::interrupt::happened() {
                let e = if crate::interrupt::is_interrupted(&e) {
                    e
                } else {
                    e.context(crate::interrupt::Interrupted)
                };
                e.context("stopped before anything was made")
            } else {
                e
            });
        }
    }
    let domain = spec(ctx, &plan, &ready.images, answers.is_some())?;
    let mut made = Made::default();
    if let Err(err) = make(
        ctx,
        &plan,
        &domain,
        &ready.images,
        answers.as_ref().map(|a| (a, local_virtio.as_path())),
        &mut made,
    ) {
        return Err(undo(ctx, &plan.name, &domain.uuid, &made, err));
    }
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
    let got = download::fetch(&ready.virtio_item, &opts, &ctx.local.settings.download)
        .context("getting the VirtIO drivers ISO failed; nothing was created")?;
    if !got.cached {
        ui::step(
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
    println!("Rolled back");
    for r in &undo.removed {
        ui::step("removed", r);
    }
    if undo.removed.is_empty() && undo.left.is_empty() {
        ui::step("removed", "nothing had been made yet");
    }
    for l in &undo.left {
        ui::step("left", l);
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

fn dry_run(ctx: &Ctx, domain: &WindowsDomain, plan: &Plan, images: &Path) -> Result<()> {
    ui::heading("Dry run: nothing will be created");
    if let Some(t) = ctx.uri.ssh() {
        println!("Media:");
        let local = std::iter::once(&plan.iso)
            .filter(|_| !plan.iso_on_host)
            .chain(&plan.virtio_iso);
        for m in local {
            println!(
                "  {} would be sent to {}:{}/bkt-media-<its SHA-256>-… (unless it is there)",
                m.display(),
                t.host,
                images.display()
            );
        }
    }
    println!("Commands:");
    let render = domain.render();
    // Over ssh, as the run would: a volume of the images directory's pool
    // if it has one, else qemu-img there.
    let disk = Path::new(&domain.disk_path);
    let pool = match (ctx.uri.ssh(), disk.parent()) {
        (Some(_), Some(dir)) => ctx.pool_holding(dir)?,
        _ => None,
    };
    let make_disk = match pool {
        Some(pool) => {
            let vol = disk.file_name().unwrap_or_default().to_string_lossy();
            ctx.virsh.vol_create_qcow2(&pool, &vol, plan.disk_size)
        }
        None => qemu_img::create_qcow2(&domain.disk_path, plan.disk_size),
    };
    for c in [
        make_disk,
        render.clone(),
        ctx.virsh.define_stdin(""),
        ctx.virsh.start_fresh(&domain.uuid),
    ] {
        println!("  {}", c.display());
    }
    println!("Domain XML (rendered by virt-install --print-xml):");
    let size_gib = plan.disk_size.div_ceil(gib_bytes(1));
    let xml = ctx
        .virsh
        .client(domain.print_xml(size_gib))
        .stdout()
        .map_err(libvirt_error)
        .context("rendering the domain XML")?;
    print!("{xml}");
    Ok(())
}

/// What create has made so far, for the rollback.
#[derive(Debug, Default)]
struct Made {
    reserved: bool,
    /// The disk path this run claimed (created empty, exclusively), or
    /// the volume it asked libvirt for.
    disk: Option<PathBuf>,
    /// The disk is a volume libvirt made: libvirt removes it.
    disk_in_pool: bool,
    answer_iso: Option<PathBuf>,
    /// Set just before `virsh define`: the domain with this run's UUID, if
    /// libvirt has one, is ours.
    domain: bool,
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

fn make(
    ctx: &Ctx,
    plan: &Plan,
    domain: &WindowsDomain,
    images: &Path,
    // The answers, and the drivers ISO here to build their ISO from.
    answers: Option<(&crate::tools::unattend::Answers, &Path)>,
    made: &mut Made,
) -> Result<()> {
    ui::heading("Creating");
    // Reserve the name first: a second `bkt vm create` with the same name
    // now fails instead of racing us.
    manifest::update(&ctx.manifest, |m| {
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
            created: manifest::today(),
            rdp_enabled: false,
            notes: plan.notes.clone(),
            uri: ctx.uri.to_string(),
            isos: std::iter::once(domain.iso.clone())
                .chain(domain.virtio_iso.clone())
                .collect(),
            mac: Some(domain.mac.clone()),
            rdp_user: answers.map(|(a, _)| a.username.clone()),
            answer_iso: domain.answer_iso.clone(),
            auto_save: Some(plan.auto_save.as_secs()),
            share: None,
            clipboard: None,
            creating: true,
            extra: Default::default(),
        });
        Ok(())
    })?;
    made.reserved = true;
    crate::interrupt::check()?;

    if !ctx.host.exists(images) {
        ctx.host
            .create_dir_all(images)
            .with_context(|| format!("cannot create the images directory {}", images.display()))?;
    }
    let in_pool = if ctx.uri.ssh().is_some() {
        disk_in_pool(ctx, plan, domain, made)?
    } else {
        None
    };
    let (format, size, allocated) = match in_pool {
        Some(d) => d,
        None => disk_on_host(ctx, plan, domain, made)?,
    };
    if format != "qcow2" || size != plan.disk_size {
        bail!(
            "the new disk is {format} of {size} bytes, not qcow2 of {} bytes",
            plan.disk_size
        );
    }
    ui::step(
        "disk",
        &format!(
            "{} ({}, sparse: {} allocated)",
            domain.disk_path,
            human(size),
            human(allocated)
        ),
    );
    crate::interrupt::check()?;

    if let (Some((a, virtio)), Some(out)) = (answers, &domain.answer_iso) {
        unattended::build_answer_iso(ctx, virtio, a, Path::new(out))?;
        made.answer_iso = Some(PathBuf::from(out));
        record(ctx, &plan.name, out)?;
        ui::step(
            "answers",
            &format!("{out} (autounattend.xml, VirtIO drivers; 0600)"),
        );
        crate::interrupt::check()?;
    }

    let spinner = Spinner::new("defining and starting the domain");
    let res = define_and_start(ctx, domain, made);
    spinner.clear();
    res?;
    crate::interrupt::check()?;
    ui::step(
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
    ui::step("starting", "done");
    ui::step(
        "auto-save",
        &match plan.auto_save {
            AutoSave::Off => {
                "off (bkt vm config NAME --auto-save 15m turns it on)".replace("NAME", &plan.name)
            }
            t => format!("to disk after {t} unused, giving its memory back"),
        },
    );

    manifest::update(&ctx.manifest, |m| {
        let e = m
            .get_mut(&plan.name, &ctx.uri)
            .context("the manifest entry disappeared while creating")?;
        e.creating = false;
        Ok(())
    })?;
    ui::step("manifest", &ctx.manifest.display().to_string());
    Ok(())
}

/// The disk made by qemu-img on the host (this machine, or over ssh when
/// libvirt there has no images pool): its path claimed (created empty,
/// never over a file) first. Its format, size and allocation.
fn disk_on_host(
    ctx: &Ctx,
    plan: &Plan,
    domain: &WindowsDomain,
    made: &mut Made,
) -> Result<(String, u64, u64)> {
    let disk = PathBuf::from(&domain.disk_path);
    claim(ctx, &disk)?;
    made.disk = Some(disk);
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
/// media just sent. Its format, size and allocation; None when no active
/// pool holds that directory (qemu-img makes it there then).
fn disk_in_pool(
    ctx: &Ctx,
    plan: &Plan,
    domain: &WindowsDomain,
    made: &mut Made,
) -> Result<Option<(String, u64, u64)>> {
    let disk = PathBuf::from(&domain.disk_path);
    let Some(dir) = disk.parent() else {
        return Ok(None);
    };
    let pool = match &plan.pool {
        Some(p) => Some(p.clone()),
        None => ctx
            .pool_holding(dir)
            .context("looking for the storage pool of the host's images directory")?,
    };
    let Some(pool) = pool else {
        return Ok(None);
    };
    ctx.virsh
        .pool_refresh(&pool)
        .run()
        .map_err(libvirt_error)
        .with_context(|| format!("refreshing the storage pool {pool}"))?;
    let volume = disk
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    // libvirt refuses a name the pool has: what it makes is this run's
    // (shielded, so that a Ctrl-C cannot leave one made but not known).
    match ctx
        .virsh
        .vol_create_qcow2(&pool, &volume, plan.disk_size)
        .shielded()
        .run()
    {
        Ok(_) => {}
        Err(e) if e.stderr().contains("exists already") => {
            return Err(appeared(&disk));
        }
        Err(e) => return Err(libvirt_error(e)).context("creating the disk on the host"),
    }
    made.disk = Some(disk);
    made.disk_in_pool = true;
    record(ctx, &plan.name, &domain.disk_path)?;
    crate::interrupt::check()?;
    let info = ctx
        .virsh
        .vol_dumpxml(&domain.disk_path)
        .stdout()
        .map_err(libvirt_error)
        .and_then(|x| crate::tools::virsh::parse_vol_xml(&x))
        .context("checking the new disk")?;
    Ok(Some((info.format, info.capacity, info.allocation)))
}

/// virt-install renders the XML; we define and start it, so a start that
/// fails leaves a domain (ours, by UUID) that the rollback undefines with
/// its NVRAM and TPM state.
fn define_and_start(ctx: &Ctx, domain: &WindowsDomain, made: &mut Made) -> Result<()> {
    let xml = ctx
        .virsh
        .client(domain.render())
        .stdout()
        .map_err(libvirt_error)
        .context("rendering the domain with virt-install")?;
    crate::interrupt::check()?;
    made.domain = true;
    ctx.virsh
        .define_stdin(&xml)
        .run()
        .map_err(libvirt_error)
        .context("defining the domain")?;
    crate::interrupt::check()?;
    ctx.virsh
        .start_fresh(&domain.uuid)
        .run()
        .map_err(libvirt_error)
        .context("starting the domain")?;
    Ok(())
}

/// Note a file this run made, so that `destroy` (or the rollback) may
/// delete it.
fn record(ctx: &Ctx, name: &str, path: &str) -> Result<()> {
    manifest::update(&ctx.manifest, |m| {
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

/// Remove what this run made, and only that.
fn rollback(ctx: &Ctx, name: &str, uuid: &str, made: &Made) -> Undo {
    let mut u = Undo::default();
    if made.domain {
        match ctx.domstate(uuid) {
            // Not defined after all (virt-install or define failed): a
            // domain of the same name, if any, is someone else's.
            Ok(None) => {}
            Ok(Some((state, _))) => {
                let off = !state.is_active()
                    || match ctx.virsh.destroy(uuid).shielded().run() {
                        Ok(_) => true,
                        Err(e) => {
                            u.left.push(format!(
                                "domain {name} ({uuid}), running: {}; remove it with {} and {}",
                                why(&e),
                                ctx.virsh.destroy(uuid).display(),
                                ctx.virsh.undefine(uuid).display()
                            ));
                            false
                        }
                    };
                if off {
                    match ctx.virsh.undefine(uuid).shielded().run() {
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
            }
            Err(e) => u.left.push(format!(
                "domain {name} ({uuid}), if it was defined: cannot ask libvirt ({}); \
                 check with {}",
                last_line(&format!("{e:#}")),
                ctx.virsh.domstate(uuid).display()
            )),
        }
    }
    let mut gone: Vec<String> = Vec::new();
    for (what, path) in [("disk", &made.disk), ("answer ISO", &made.answer_iso)] {
        let Some(p) = path else { continue };
        let removed = if what == "disk" && made.disk_in_pool {
            match ctx
                .virsh
                .vol_delete(&p.display().to_string())
                .shielded()
                .run()
            {
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
                u.removed.push(format!("{what} {}", p.display()));
                gone.push(p.display().to_string());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                gone.push(p.display().to_string());
            }
            Err(e) => u.left.push(format!("{what} {}: {e}", p.display())),
        }
    }
    if made.reserved {
        // With something left, the entry stays (still "creating"), so that
        // `bkt vm destroy` finds and finishes it.
        let nothing_left = u.left.is_empty();
        let res = manifest::update(&ctx.manifest, |m| {
            for p in &gone {
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
    u
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
    println!();
    println!(
        "Next: complete Windows Setup in the VM's console: bkt vm connect {} --spice",
        plan.name
    );
    for (i, s) in GUIDE.iter().enumerate() {
        println!("  {}. {s}", i + 1);
    }
    if plan.virtio_iso.is_none() {
        println!(
            "  Note: no --virtio-iso was given, so Setup will not see the VirtIO disk until you \
             attach the virtio-win ISO."
        );
    }
    if interactive {
        println!();
        dialoguer::Input::<String>::new()
            .with_prompt("Press Enter when the installation completes and you are at the desktop")
            .allow_empty(true)
            .interact_text()?;
        unattended::eject_install_iso(ctx, &plan.name, &plan.iso)?;
        rdp_setup::offer(ctx, &plan.name)?;
        println!(
            "Done. Daily use: bkt vm connect {0}; bkt vm stop {0}",
            plan.name
        );
    } else {
        println!(
            "When Windows is installed, turn on Remote Desktop: bkt vm enable-rdp {}",
            plan.name
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
}
