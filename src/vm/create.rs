//! `bkt vm create windows`: preflight, then the disk and the domain, then the
//! guide through Windows Setup. Anything made is removed again if a later
//! step fails or the user interrupts.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use crate::cli::CreateArgs;
use crate::download;
use crate::manifest::{self, VmEntry};
use crate::tools::qemu_img;
use crate::tools::virt_install::{VirtType, WindowsDomain};
use crate::ui::{self, Check, HintExt, Level, Spinner};
use crate::units::{gib_bytes, human, mib, parse_size};
use crate::vm::{Ctx, Host, libvirt_error, preflight, resources};

/// Everything create was asked for, once defaults are filled in.
#[derive(Debug, Clone)]
struct Plan {
    name: String,
    iso: PathBuf,
    virtio_iso: Option<PathBuf>,
    disk_size: u64,
    memory: u64,
    cpus: u32,
    notes: String,
    virt_type: VirtType,
}

fn default_memory(host: &Host) -> u64 {
    // 8 GiB, never above half the host, in whole 256 MiB steps.
    let step = 256 * 1024 * 1024;
    let m = gib_bytes(8).min(host.memory_bytes / 2);
    (m / step * step).max(step)
}

fn default_cpus(host: &Host) -> u32 {
    4.min((host.cpus / 2).max(1))
}

fn absolute(p: &Path) -> Result<PathBuf> {
    let p = if let Some(rest) = p.to_str().and_then(|s| s.strip_prefix("~/")) {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(rest)
    } else {
        p.to_path_buf()
    };
    if p.is_absolute() {
        Ok(p)
    } else {
        Ok(std::env::current_dir()
            .context("cannot read the current directory")?
            .join(p))
    }
}

/// Ask for what was not given on the command line (terminal only).
fn prompt(args: &CreateArgs, host: &Host) -> Result<CreateArgs> {
    use dialoguer::{Input, theme::ColorfulTheme};
    let theme = ColorfulTheme::default();
    ui::heading("Windows 11 VM Setup");
    println!("═══════════════════\n");
    println!("This will create a Windows 11 VM optimized for running Windows apps.\n");
    let mut a = args.clone();
    let name: String = Input::with_theme(&theme)
        .with_prompt("VM name")
        .default(args.name.clone().unwrap_or_else(|| "windows".into()))
        .validate_with(|s: &String| -> Result<(), String> {
            crate::vm::validate_name(s).map_err(|e| e.to_string())
        })
        .interact_text()?;
    let size_ok =
        |s: &String| -> Result<(), String> { parse_size(s).map(|_| ()).map_err(|e| e.to_string()) };
    let disk: String = Input::with_theme(&theme)
        .with_prompt("Disk size (grows as needed)")
        .default(args.disk_size.clone().unwrap_or_else(|| "80G".into()))
        .validate_with(size_ok)
        .interact_text()?;
    let mem_default = format!("{}M", mib(default_memory(host)));
    let memory: String = Input::with_theme(&theme)
        .with_prompt(format!("RAM (host has {})", human(host.memory_bytes)))
        .default(args.memory.clone().unwrap_or(mem_default))
        .validate_with(size_ok)
        .interact_text()?;
    let cpus: u32 = Input::with_theme(&theme)
        .with_prompt(format!("CPUs (host has {})", host.cpus))
        .default(args.cpus.unwrap_or_else(|| default_cpus(host)))
        .interact_text()?;
    println!("\nRequired: Windows 11 ISO");
    let iso: String = Input::with_theme(&theme)
        .with_prompt("Path to ISO")
        .with_initial_text(
            args.iso
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        )
        .validate_with(|s: &String| -> Result<(), String> {
            absolute(Path::new(s))
                .map_err(|e| e.to_string())
                .and_then(|p| preflight::iso_problem(&p).map(|_| ()))
        })
        .interact_text()?;
    a.name = Some(name);
    a.disk_size = Some(disk);
    a.memory = Some(memory);
    a.cpus = Some(cpus);
    a.iso = Some(PathBuf::from(iso));
    println!();
    Ok(a)
}

fn plan(args: &CreateArgs, host: &Host) -> Result<Plan> {
    let iso = args
        .iso
        .as_ref()
        .context("no Windows ISO given")
        .hint("pass it with --iso PATH (download Windows 11 from microsoft.com/software-download/windows11)")?;
    let memory = match &args.memory {
        Some(m) => parse_size(m).context("--memory")?,
        None => default_memory(host),
    };
    let notes = args.notes.clone().unwrap_or_default();
    if notes.chars().any(|c| c.is_control()) {
        bail!("--notes must be a single line of text without control characters");
    }
    Ok(Plan {
        name: args.name.clone().unwrap_or_else(|| "windows".into()),
        iso: absolute(iso)?,
        virtio_iso: args.virtio_iso.as_deref().map(absolute).transpose()?,
        disk_size: match &args.disk_size {
            Some(s) => parse_size(s).context("--disk-size")?,
            None => gib_bytes(80),
        },
        memory,
        cpus: args.cpus.unwrap_or_else(|| default_cpus(host)),
        notes,
        virt_type: args.virt_type,
    })
}

/// A locally administered, QEMU-prefixed MAC, recorded so the guest's lease
/// can be found later.
fn random_mac() -> String {
    let mut b = [0u8; 3];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_ok();
    if !ok {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ std::process::id())
            .unwrap_or(0);
        b = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
    }
    format!("52:54:00:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
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

pub fn run(ctx: &Ctx, args: CreateArgs) -> Result<()> {
    let host = Host::detect()?;
    let interactive = !args.yes && ui::stdin_is_terminal();
    let args = if interactive {
        prompt(&args, &host)?
    } else {
        args
    };
    let plan = plan(&args, &host)?;
    // The account and password first: a bad one changes nothing.
    let answers = if args.unattended {
        Some(crate::vm::unattended::answers(
            &args,
            &plan.name,
            interactive,
        )?)
    } else {
        None
    };

    ui::heading("Preflight");
    let mut checks: Vec<Check> = Vec::new();
    let mut show = |c: Check| {
        c.print();
        checks.push(c);
    };
    if plan.virt_type == VirtType::Kvm {
        let dev = std::env::var_os("BKT_VM_KVM_DEVICE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/dev/kvm"));
        show(preflight::kvm(&dev));
    } else {
        show(Check::pass(
            "KVM",
            "not used (--virt-type qemu: software emulation)",
        ));
    }
    let tools = preflight::programs();
    let have_virsh = which::which("virsh").is_ok();
    show(tools);
    let libvirt_up = if have_virsh {
        let (c, up) = preflight::libvirt(ctx);
        show(c);
        up
    } else {
        false
    };
    show(preflight::name(ctx, &plan.name, libvirt_up));
    show(preflight::resources(&host, plan.memory, plan.cpus));
    show(preflight::iso("install ISO", &plan.iso));
    // Without --virtio-iso the drivers come from the cache, or a download.
    let virtio_item = download::virtio(args.download.virtio_url.as_deref());
    let cached_virtio = download::cache_dir()?.join(virtio_item.file);
    match &plan.virtio_iso {
        Some(v) => show(preflight::iso("virtio ISO", v)),
        None if cached_virtio.exists() => {
            let mut c = preflight::iso("virtio ISO", &cached_virtio);
            if c.level == Level::Pass {
                c.detail.push_str(", cached");
            }
            show(c)
        }
        None if args.download.offline => show(
            Check::fail("virtio ISO", "--offline and none in the cache").fix(format!(
                "download {} and place it at {}, or pass --virtio-iso",
                virtio_item.url,
                cached_virtio.display()
            )),
        ),
        None => show(Check::pass(
            "virtio ISO",
            format!("will be downloaded from {}", virtio_item.url),
        )),
    }
    if libvirt_up {
        // This VM together with the ones already running.
        match ctx.domstats() {
            Ok(stats) => {
                let adding = resources::Adding {
                    memory_bytes: plan.memory,
                    vcpus: plan.cpus,
                };
                for w in resources::warnings(
                    &stats,
                    &host,
                    Some((&plan.name, adding)),
                    &preflight::free_space,
                ) {
                    show(Check::warn("resources", w));
                }
            }
            Err(e) => show(Check::warn(
                "resources",
                format!("cannot count the running VMs: {e:#}"),
            )),
        }
        show(preflight::secure_boot(ctx, plan.virt_type.as_str()));
        show(preflight::network(ctx));
    }
    let images = if libvirt_up {
        preflight::images_dir(ctx)
    } else {
        PathBuf::from("/var/lib/libvirt/images")
    };
    let disk_path = images.join(format!("{}.qcow2", plan.name));
    show(preflight::disk(&images, &disk_path, plan.disk_size));
    if checks.iter().any(|c| c.level == Level::Fail) {
        bail!("preflight failed; nothing was created");
    }
    let mut plan = plan;
    if plan.virtio_iso.is_none() {
        if args.dry_run {
            plan.virtio_iso = Some(cached_virtio.clone());
        } else {
            let opts = download::Options {
                offline: args.download.offline,
                expected_sha256: args.download.virtio_sha256.clone(),
            };
            let got = download::fetch(&virtio_item, &opts)
                .context("getting the VirtIO drivers ISO failed; nothing was created")?;
            if !got.cached {
                ui::step(
                    "downloaded",
                    &format!("{} ({})", got.path.display(), human(got.size)),
                );
            }
            plan.virtio_iso = Some(got.path);
        }
    }

    let domain = WindowsDomain {
        uri: ctx.uri.clone(),
        name: plan.name.clone(),
        virt_type: plan.virt_type,
        memory_mib: mib(plan.memory),
        vcpus: plan.cpus,
        disk_path: path_str(&disk_path)?,
        iso: path_str(&plan.iso)?,
        virtio_iso: plan.virtio_iso.as_deref().map(path_str).transpose()?,
        answer_iso: answers
            .as_ref()
            .map(|_| path_str(&images.join(format!("{}-answer.iso", plan.name))))
            .transpose()?,
        mac: random_mac(),
    };
    if let Some(a) = &domain.answer_iso
        && Path::new(a).exists()
    {
        bail!("{a} already exists; move it away (an earlier unattended create?)");
    }
    let mkdisk = qemu_img::create_qcow2(&domain.disk_path, plan.disk_size);
    let install = domain.install();

    if args.dry_run {
        return dry_run(&domain, &plan, &[&mkdisk, &install]);
    }

    crate::interrupt::catch();
    let mut made = Made::default();
    let steps = Steps {
        mkdisk: &mkdisk,
        install: &install,
        answers: answers.as_ref(),
    };
    match make(ctx, &plan, &domain, &images, &steps, &mut made) {
        Ok(()) => {}
        Err(err) => {
            let removed = rollback(ctx, &plan.name, &made);
            println!("Rolled back");
            for r in &removed {
                ui::step("removed", r);
            }
            if removed.is_empty() {
                ui::step("removed", "nothing had been made yet");
            }
            if crate::interrupt::happened() && !crate::interrupt::is_interrupted(&err) {
                // A child died of the same Ctrl-C: say so, not what it printed.
                return Err(
                    anyhow::Error::new(crate::interrupt::Interrupted).context(format!(
                        "creating {} failed; nothing was left behind",
                        plan.name
                    )),
                );
            }
            return Err(err.context(format!(
                "creating {} failed; nothing was left behind",
                plan.name
            )));
        }
    }

    if let Some(a) = &domain.answer_iso {
        return crate::vm::unattended::watch(
            ctx,
            &plan.name,
            Path::new(a),
            std::time::Duration::from_secs(args.install_timeout),
        );
    }
    guide(ctx, &plan, interactive)?;
    Ok(())
}

/// The commands and inputs `make` runs.
struct Steps<'a> {
    mkdisk: &'a crate::exec::Cmd,
    install: &'a crate::exec::Cmd,
    answers: Option<&'a crate::tools::unattend::Answers>,
}

fn dry_run(domain: &WindowsDomain, plan: &Plan, cmds: &[&crate::exec::Cmd]) -> Result<()> {
    ui::heading("Dry run: nothing will be created");
    println!("Commands:");
    for c in cmds {
        println!("  {}", c.display());
    }
    println!("Domain XML (rendered by virt-install --print-xml):");
    let size_gib = plan.disk_size.div_ceil(gib_bytes(1));
    let xml = domain
        .print_xml(size_gib)
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
    disk: Option<PathBuf>,
    answer_iso: Option<PathBuf>,
    domain_attempted: bool,
}

fn make(
    ctx: &Ctx,
    plan: &Plan,
    domain: &WindowsDomain,
    images: &Path,
    steps: &Steps,
    made: &mut Made,
) -> Result<()> {
    let (mkdisk, install) = (steps.mkdisk, steps.install);
    ui::heading("Creating");
    // Reserve the name first: a second `bkt vm create` with the same name
    // now fails instead of racing us.
    manifest::update(&ctx.manifest, |m| {
        if m.get(&plan.name).is_some() {
            bail!(
                "{:?} was taken while preflight ran (another `bkt vm create`?)",
                plan.name
            );
        }
        m.vms.push(VmEntry {
            name: plan.name.clone(),
            kind: "windows11".into(),
            disk: domain.disk_path.clone(),
            created: manifest::today(),
            rdp_enabled: false,
            notes: plan.notes.clone(),
            uri: ctx.uri.clone(),
            isos: std::iter::once(domain.iso.clone())
                .chain(domain.virtio_iso.clone())
                .collect(),
            mac: Some(domain.mac.clone()),
            rdp_user: steps.answers.map(|a| a.username.clone()),
            answer_iso: domain.answer_iso.clone(),
            creating: true,
            extra: Default::default(),
        });
        Ok(())
    })?;
    made.reserved = true;
    crate::interrupt::check()?;

    if !images.exists() {
        std::fs::create_dir_all(images)
            .with_context(|| format!("cannot create the images directory {}", images.display()))?;
    }
    made.disk = Some(PathBuf::from(&domain.disk_path));
    mkdisk
        .run()
        .map_err(anyhow::Error::new)
        .context("creating the disk")?;
    let info = qemu_img::info(&domain.disk_path)
        .stdout()
        .map_err(anyhow::Error::new)
        .and_then(|s| qemu_img::parse_info(&s))
        .context("checking the new disk")?;
    if info.format != "qcow2" || info.virtual_size != plan.disk_size {
        bail!(
            "the new disk is {} of {} bytes, not qcow2 of {} bytes",
            info.format,
            info.virtual_size,
            plan.disk_size
        );
    }
    ui::step(
        "disk",
        &format!(
            "{} ({}, sparse: {} allocated)",
            domain.disk_path,
            human(info.virtual_size),
            human(info.actual_size)
        ),
    );
    crate::interrupt::check()?;

    if let (Some(a), Some(out), Some(virtio)) =
        (steps.answers, &domain.answer_iso, &domain.virtio_iso)
    {
        made.answer_iso = Some(PathBuf::from(out));
        crate::vm::unattended::build_answer_iso(Path::new(virtio), a, Path::new(out))?;
        ui::step(
            "answers",
            &format!("{out} (autounattend.xml, VirtIO drivers; 0600)"),
        );
        crate::interrupt::check()?;
    }

    let spinner = Spinner::new("defining and starting the domain");
    made.domain_attempted = true;
    let res = install.run();
    spinner.clear();
    res.map_err(libvirt_error)
        .context("defining the domain with virt-install")?;
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

    manifest::update(&ctx.manifest, |m| {
        let e = m
            .get_mut(&plan.name)
            .context("the manifest entry disappeared while creating")?;
        e.creating = false;
        Ok(())
    })?;
    ui::step("manifest", &ctx.manifest.display().to_string());
    Ok(())
}

/// Remove what a failed create made; returns what was removed.
fn rollback(ctx: &Ctx, name: &str, made: &Made) -> Vec<String> {
    let mut removed = Vec::new();
    if made.domain_attempted
        && let Ok(Some((state, _))) = ctx.domstate(name)
    {
        if state.is_active() {
            let _ = ctx.virsh.destroy(name).run();
        }
        match ctx.virsh.undefine(name).run() {
            Ok(_) => removed.push(format!("domain {name} with its NVRAM and TPM state")),
            Err(e) => eprintln!("warning: could not undefine {name}: {e}"),
        }
    }
    if let Some(disk) = &made.disk
        && disk.exists()
    {
        match std::fs::remove_file(disk) {
            Ok(()) => removed.push(format!("disk {}", disk.display())),
            Err(e) => eprintln!("warning: could not remove {}: {e}", disk.display()),
        }
    }
    if let Some(a) = &made.answer_iso
        && a.exists()
    {
        match std::fs::remove_file(a) {
            Ok(()) => removed.push(format!("answer ISO {}", a.display())),
            Err(e) => eprintln!("warning: could not remove {}: {e}", a.display()),
        }
    }
    if made.reserved {
        let res = manifest::update(&ctx.manifest, |m| Ok(m.remove(name).is_some()));
        match res {
            Ok(true) => removed.push("manifest entry".into()),
            Ok(false) => {}
            Err(e) => eprintln!("warning: could not remove the manifest entry: {e:#}"),
        }
    }
    removed
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
        crate::vm::enable_rdp::offer(ctx, &plan.name)?;
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
        let big = Host {
            memory_bytes: gib_bytes(64),
            cpus: 16,
        };
        assert_eq!(default_memory(&big), gib_bytes(8));
        assert_eq!(default_cpus(&big), 4);
        let small = Host {
            memory_bytes: gib_bytes(6),
            cpus: 2,
        };
        assert_eq!(default_memory(&small), gib_bytes(3));
        assert_eq!(default_cpus(&small), 1);
    }

    #[test]
    fn macs_are_qemu_prefixed() {
        let m = random_mac();
        assert!(
            regex::Regex::new("^52:54:00:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$")
                .unwrap()
                .is_match(&m)
        );
    }
}
