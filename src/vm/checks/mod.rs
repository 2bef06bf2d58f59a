//! The checks `create` runs before it makes anything and `doctor` runs on
//! the host, in one wording: each returns a [`Check`] saying what it found
//! and, when something is wrong, the fix.

pub mod access;
pub mod resources;

use std::path::Path;

use crate::download;
use crate::names::SshTarget;
use crate::names::VmName;
use crate::tools::virt_install::VirtType;
use crate::tools::{self, rdp, version, virsh};
use crate::ui::{self, Check, Level};
use crate::units::{gib_bytes, human};
use crate::vm::checks::access::{ACCESS, GrantPlan};
use crate::vm::ctx::Ctx;
use crate::vm::ctx::{HostSize, Media};
use crate::vm::media;
use crate::vm::rdp::clients;

/// `/dev/kvm` where QEMU runs, when `virt_type` uses it: on this machine
/// it can be opened for reading and writing; on a host reached over ssh it
/// exists there (QEMU there opens it, never this machine's, nor its
/// BKT_VM_KVM_DEVICE). Create and doctor ask the same.
pub fn kvm(ctx: &Ctx, virt_type: VirtType) -> Check {
    if virt_type != VirtType::Kvm {
        return Check::pass("KVM", "not used (--virt-type qemu: software emulation)");
    }
    match ctx.uri.ssh() {
        Some(t) => remote_kvm(ctx, t),
        None => local_kvm(ctx),
    }
}

/// `/dev/kvm` of this machine can be opened for reading and writing.
fn local_kvm(ctx: &Ctx) -> Check {
    let device = &ctx.local.settings.hooks.kvm_device;
    match ctx.host.open_rw(device) {
        Ok(()) => Check::pass("KVM", format!("{} is usable", device.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Check::fail(
            "KVM",
            format!(
                "{} does not exist: no hardware virtualization",
                device.display()
            ),
        )
        .fix(
            "enable VT-x/AMD-V in the firmware setup and load kvm_intel or kvm_amd; \
             or use --virt-type qemu (software emulation, very slow)",
        ),
        Err(e) => Check::fail("KVM", format!("cannot open {}: {e}", device.display()))
            .fix("add yourself to the kvm group (`sudo usermod -aG kvm $USER`, then log in again)"),
    }
}

/// A program's version, as it reports it.
fn version_of(ctx: &Ctx, program: &str) -> Option<String> {
    version::parse(&ctx.local.version_output(program)?)
}

/// The programs bkt drives are on PATH (with their versions).
pub fn tools(ctx: &Ctx) -> Check {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for p in tools::CREATE_PROGRAMS {
        if ctx.local.has_program(p) {
            found.push(match version_of(ctx, p) {
                Some(v) => format!("{p} {v}"),
                None => p.to_string(),
            });
        } else {
            missing.push(*p);
        }
    }
    if missing.is_empty() {
        return Check::pass("tools", found.join(", "));
    }
    let fixes: Vec<String> = missing
        .iter()
        .map(|p| format!("{p}: {}", tools::package_hint(p).unwrap_or("install it")))
        .collect();
    Check::fail("tools", format!("{} not found on PATH", missing.join(", "))).fix(fixes.join("; "))
}

/// libvirt answers at the URI, asked when virsh is here to ask (`tools`
/// says when it is not): the check, if made, and whether it answered.
pub fn libvirt_if_virsh(ctx: &Ctx) -> (Option<Check>, bool) {
    if !ctx.local.has_program("virsh") {
        return (None, false);
    }
    let (check, up) = libvirt(ctx);
    (Some(check), up)
}

/// libvirt answers at the URI; returns the check and whether it answered.
fn libvirt(ctx: &Ctx) -> (Check, bool) {
    match ctx.try_libvirt(&ctx.virsh.version()) {
        Ok(out) => {
            let v = virsh::parse_version(&out.stdout);
            (
                Check::pass(
                    "libvirt",
                    format!("{} (libvirt {}, {})", ctx.uri, v.libvirt, v.hypervisor),
                ),
                true,
            )
        }
        Err(e) => {
            let why = e
                .stderr()
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim_start_matches("error: ").to_string())
                .unwrap_or_else(|| e.to_string());
            if let Some(t) = ctx.uri.ssh() {
                // libvirt's own ssh, or the remote user's access: the
                // advice libvirt_error gives every command.
                let fix = ui::hints_of(&ctx.libvirt_error(e)).join("; ");
                let fix = if fix.is_empty() {
                    format!(
                        "start libvirt on {} (`sudo systemctl start libvirtd`, or virtqemud \
                         on modular hosts), or check --connect / LIBVIRT_DEFAULT_URI",
                        t.host
                    )
                } else {
                    fix
                };
                return (
                    Check::fail("libvirt", format!("cannot reach {}: {why}", ctx.uri)).fix(fix),
                    false,
                );
            }
            (
                Check::fail("libvirt", format!("cannot reach {}: {why}", ctx.uri)).fix(
                    "start libvirt (`sudo systemctl start libvirtd`, or virtqemud on modular \
                     hosts), or check --connect / LIBVIRT_DEFAULT_URI",
                ),
                false,
            )
        }
    }
}

/// Neither libvirt nor the manifest has the name.
pub fn name(ctx: &Ctx, name: &VmName, libvirt_up: bool) -> Check {
    let name = name.as_str();
    match ctx.manifest.load() {
        Ok(m) if m.named(name).is_some() => {
            return Check::fail("name", format!("{name:?} is already in bkt's manifest"))
                .fix(format!("choose another --name, or `bkt vm destroy {name}`"));
        }
        Ok(_) => {}
        Err(e) => {
            return Check::fail("manifest", format!("{e:#}"))
                .fix("repair the file or move it aside");
        }
    }
    if libvirt_up {
        match ctx.try_libvirt_out(&ctx.virsh.list_names()) {
            Ok(out) if virsh::parse_names(&out).iter().any(|n| n == name) => {
                return Check::fail(
                    "name",
                    format!("a VM named {name:?} already exists in libvirt"),
                )
                .fix(format!("choose another --name, or `bkt vm destroy {name}`"));
            }
            Ok(_) => {}
            Err(e) => return Check::fail("name", format!("cannot list VMs: {e}")),
        }
    }
    Check::pass("name", format!("{name:?} is free"))
}

/// Memory and vCPUs against the host: more than it has fails, more than half
/// warns.
pub fn resources(host: &HostSize, memory: u64, cpus: u32) -> Check {
    let what = format!(
        "{cpus} vCPU{}, {} (host: {} core{}, {})",
        if cpus == 1 { "" } else { "s" },
        human(memory),
        host.cpus,
        if host.cpus == 1 { "" } else { "s" },
        human(host.memory_bytes)
    );
    if memory > host.memory_bytes {
        return Check::fail(
            "resources",
            format!("{what}: more memory than the host has"),
        )
        .fix(format!(
            "ask for at most {} with --memory",
            human(host.memory_bytes / 2)
        ));
    }
    if cpus > host.cpus {
        return Check::fail(
            "resources",
            format!("{what}: more vCPUs than the host has cores"),
        )
        .fix(format!(
            "ask for at most {} with --cpus",
            (host.cpus / 2).max(1)
        ));
    }
    if cpus == 0 {
        return Check::fail("resources", "0 vCPUs").fix("ask for at least 1 with --cpus");
    }
    if memory > host.memory_bytes / 2 || cpus > (host.cpus / 2).max(1) {
        return Check::warn(
            "resources",
            format!("{what}: more than half the host; the host may slow down while it runs"),
        );
    }
    Check::pass("resources", what)
}

/// Why a file of the user's is not a usable ISO, or its size.
pub fn iso_problem(ctx: &Ctx, path: &Path) -> Result<u64, String> {
    match ctx.local.media(path)? {
        Media::Iso(size) => Ok(size),
        Media::Missing => Err(format!("{} does not exist", path.display())),
        Media::Directory => Err(format!("{} is a directory, not an ISO", path.display())),
        Media::NotIso => Err(format!(
            "{} is not an ISO 9660 image (no CD001 signature)",
            path.display()
        )),
    }
}

/// Characters virt-install 4.1 writes wrongly into a domain's XML: it
/// escapes them and libxml2 escapes them again, so `it's.iso` becomes a file
/// named `it&apos;s.iso` that does not exist (virt-manager issue #838, fixed
/// after 4.1; `tests/it/virt_install.rs` shows it on the installed one).
const MANGLED: &[char] = &['\'', '"', '&', '<', '>'];

/// Why virt-install cannot be given this path, if it cannot.
pub fn mangled_path(path: &Path) -> Option<String> {
    let s = path.to_string_lossy();
    let bad: String = MANGLED.iter().filter(|c| s.contains(**c)).collect();
    (!bad.is_empty()).then(|| {
        format!(
            "{} has {bad} in its name, which virt-install writes wrongly into the domain XML",
            path.display()
        )
    })
}

pub fn iso(ctx: &Ctx, label: &str, path: &Path) -> Check {
    if let Some(why) = mangled_path(path) {
        return Check::fail(label, why).fix(format!(
            "rename it, or link it under a plain name: ln -s {} ~/{}.iso and pass that",
            crate::exec::shell_quote(&path.display().to_string()),
            if label == "install ISO" {
                "Win11"
            } else {
                "virtio-win"
            }
        ));
    }
    match iso_problem(ctx, path) {
        Ok(size) => Check::pass(
            label,
            format!(
                "{} (ISO 9660, {})",
                path.file_name().unwrap_or_default().to_string_lossy(),
                human(size)
            ),
        ),
        Err(why) => Check::fail(label, why).fix(if label == "install ISO" {
            "download Windows 11 from microsoft.com/software-download/windows11 and pass it with --iso"
        } else {
            "pass the virtio-win ISO with --virtio-iso (fedorapeople.org virtio-win stable)"
        }),
    }
}

/// An ISO already on the libvirt host (`--remote-iso`): a file there,
/// under a name virt-install writes rightly.
pub fn iso_on_host(ctx: &Ctx, label: &str, path: &Path) -> Check {
    let host = ctx.uri.ssh().map_or("the host", |t| t.host.as_str());
    let fix =
        "give the path of an ISO on the host (ls it over ssh), or pass a local one with --iso";
    if let Some(why) = mangled_path(path) {
        return Check::fail(label, why).fix(fix);
    }
    if !path.is_absolute() {
        return Check::fail(
            label,
            format!("{} is not an absolute path on {host}", path.display()),
        )
        .fix(fix);
    }
    match ctx.host.stat(path) {
        Ok(st) if st.kind == crate::vm::ctx::Kind::File => Check::pass(
            label,
            format!(
                "{host}:{} ({}, used where it is)",
                path.display(),
                human(st.len)
            ),
        ),
        Ok(_) => Check::fail(label, format!("{host}:{} is not a file", path.display())).fix(fix),
        Err(e) => Check::fail(label, format!("{host}:{}: {e}", path.display())).fix(fix),
    }
}

/// The Windows ISO: a file here, or one already on the libvirt host
/// (`--remote-iso`).
pub fn install_iso(ctx: &Ctx, path: &Path, on_host: bool) -> Check {
    if on_host {
        iso_on_host(ctx, "install ISO", path)
    } else {
        iso(ctx, "install ISO", path)
    }
}

/// The virtio drivers: the ISO given, else the one in the cache, else a
/// download (which `--offline` rules out).
pub fn virtio_iso(
    ctx: &Ctx,
    given: Option<&Path>,
    cached: &Path,
    item: &download::Item,
    offline: bool,
) -> Check {
    match given {
        Some(v) => iso(ctx, "virtio ISO", v),
        None if ctx.local.exists(cached) => {
            let mut c = iso(ctx, "virtio ISO", cached);
            if c.level == Level::Pass {
                c.detail.push_str(", cached");
            }
            c
        }
        None if offline => {
            Check::fail("virtio ISO", "--offline and none in the cache").fix(format!(
                "download {} and place it at {}, or pass --virtio-iso",
                item.url,
                cached.display()
            ))
        }
        None => Check::pass(
            "virtio ISO",
            format!("will be downloaded from {}", item.url),
        ),
    }
}

/// A new VM of `adding`'s size together with the ones already running:
/// warnings only.
pub fn running_resources(
    ctx: &Ctx,
    host: &HostSize,
    name: &VmName,
    adding: resources::Adding,
) -> Vec<Check> {
    match ctx.domstats() {
        Ok(stats) => resources::warnings(&stats, host, Some((name.as_str(), adding)), &|d| {
            ctx.host.free_space(d)
        })
        .into_iter()
        .map(|w| Check::warn("resources", w))
        .collect(),
        Err(e) => vec![Check::warn(
            "resources",
            format!("cannot count the running VMs: {e:#}"),
        )],
    }
}

/// How the ISOs of this machine reach a host over ssh: QEMU there opens
/// the copies in the images directory (or the host's own --remote-iso),
/// not the files here, so the ssh user writes them there, or libvirt does
/// into that directory's pool. The checks, and the route when there is
/// one.
pub fn media_route(
    ctx: &Ctx,
    t: &SshTarget,
    images: &Path,
    unattended: bool,
) -> (Vec<Check>, Option<media::Route>) {
    let mut checks = Vec::new();
    let route = match media::route(ctx, images) {
        Ok(r) => r,
        Err(e) => {
            checks.push(Check::fail(
                "media",
                format!("cannot tell how to send the ISOs: {e:#}"),
            ));
            None
        }
    };
    checks.push(route_check(ctx, t, images, route.as_ref(), unattended));
    (checks, route)
}

/// Whether `route` takes the ISOs (and, for an unattended install, the
/// answer ISO) to the host.
fn route_check(
    ctx: &Ctx,
    t: &SshTarget,
    images: &Path,
    route: Option<&media::Route>,
    unattended: bool,
) -> Check {
    let who = t.user.as_deref().unwrap_or("the ssh user");
    let as_root = ctx
        .uri
        .with_ssh_user("root")
        .unwrap_or_else(|| ctx.uri.to_string());
    match route {
        Some(media::Route::Direct) => Check::pass(
            "media",
            format!(
                "ISOs of this machine are sent to {}:{} once and kept there",
                t.host,
                images.display()
            ),
        ),
        Some(media::Route::Pool(pool)) if unattended => Check::fail(
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
            dir = crate::exec::shell_quote(&images.display().to_string())
        )),
    }
}

/// Firmware with Secure Boot and Microsoft's keys.
pub fn secure_boot(ctx: &Ctx, virt_type: &str) -> Check {
    let out = match ctx.try_libvirt_out(&ctx.virsh.domcapabilities(virt_type)) {
        Ok(o) => o,
        Err(e) => {
            return Check::fail("Secure Boot", format!("cannot ask libvirt: {e}"));
        }
    };
    let fix = "install UEFI firmware with Secure Boot: apt install ovmf / dnf install edk2-ovmf";
    match virsh::parse_domcaps_secure_boot(&out) {
        Ok(sb) if sb.secure && sb.enrolled_keys => {
            let loader = sb.loader.unwrap_or_default();
            let file = loader.rsplit('/').next().unwrap_or(&loader).to_string();
            let keys = if file.contains(".ms.") {
                "Microsoft keys enrolled"
            } else {
                "keys enrolled"
            };
            Check::pass("Secure Boot", format!("{file} ({keys})"))
        }
        Ok(sb) if sb.secure => Check::fail(
            "Secure Boot",
            "firmware supports Secure Boot but none has Microsoft's keys enrolled",
        )
        .fix(fix),
        Ok(_) => Check::fail("Secure Boot", "no UEFI firmware with Secure Boot for q35").fix(fix),
        Err(e) => Check::fail("Secure Boot", format!("{e:#}")),
    }
}

/// The VM's NIC goes on libvirt's `default` network, which must be running
/// (and should start with the host).
pub fn network(ctx: &Ctx) -> Check {
    let autostart = ctx.virsh.net_autostart("default").display();
    let start = format!(
        "{} && {autostart}",
        ctx.virsh.net_start("default").display()
    );
    match ctx.try_libvirt(&ctx.virsh.net_info("default")) {
        Ok(out) => {
            let on_boot = virsh::parse_net_autostart(&out.stdout) == Some(true);
            match (virsh::parse_net_active(&out.stdout), on_boot) {
                (Some(true), true) => Check::pass(
                    "network",
                    "libvirt network \"default\" is active and starts on boot",
                ),
                (Some(true), false) => Check::warn(
                    "network",
                    "libvirt network \"default\" is active but does not start on boot",
                )
                .fix(autostart),
                _ => Check::fail("network", "libvirt network \"default\" is not active").fix(start),
            }
        }
        Err(_) => Check::fail("network", "libvirt has no network named \"default\"").fix(
            "define it (Debian: apt install libvirt-daemon-config-network; Fedora: it comes \
             with libvirt-daemon-config-network), then start it",
        ),
    }
}

/// The disk file is free, the directory takes it, and there is room for
/// it to grow.
pub fn disk(ctx: &Ctx, dir: &Path, disk_path: &Path, disk_size: u64) -> Check {
    if ctx.host.lstat(disk_path).is_ok() {
        return Check::fail(
            "disk",
            format!(
                "{} already exists; bkt never overwrites a disk",
                disk_path.display()
            ),
        )
        .fix("choose another --name, or move the file away if nothing uses it");
    }
    if let Some(why) = mangled_path(disk_path) {
        return Check::fail("disk", why).fix(
            "give libvirt's default pool a directory with a plain name (virsh pool-edit default)",
        );
    }
    // Over ssh libvirt makes the disk (vol-create-as), not the ssh user.
    if ctx.uri.ssh().is_none() && ctx.host.exists(dir) && !ctx.host.writable(dir) {
        return Check::fail(
            "disk",
            format!(
                "cannot create {}: {} is not writable for you",
                disk_path.display(),
                dir.display()
            ),
        )
        .fix("run it as root (sudo bkt vm create ...), or use a libvirt pool you may write to");
    }
    let Some(free) = ctx.host.free_space(dir) else {
        return Check::warn(
            "disk space",
            format!("cannot tell the free space in {}", dir.display()),
        );
    };
    let recommended = gib_bytes(80);
    let detail = format!("{} free in {}", human(free), dir.display());
    if free < disk_size {
        Check::warn(
            "disk space",
            format!("{detail}; the disk may grow to {}", human(disk_size)),
        )
    } else if free < recommended {
        Check::warn(
            "disk space",
            format!("{detail}; 80 GiB or more is recommended"),
        )
    } else {
        Check::pass("disk space", detail)
    }
}

/// What the QEMU access check found: decided, or a grant for the caller
/// to make (with consent, through `access::grant`).
#[derive(Debug)]
pub enum Access {
    /// QEMU can open the media, or we cannot tell, or cannot grant it.
    Checked(Check),
    /// QEMU's user lacks what we may grant with `setfacl`.
    Grantable(GrantPlan),
}

/// QEMU's user can open every medium: search on each directory above it,
/// read on the file. What is missing can be granted with ACLs (`setfacl -m
/// u:QEMU:x DIR`), as virt-manager does, when we may (we own the
/// directory, or are root) and setfacl is here; else the check fails with
/// the fix.
pub fn qemu_access(ctx: &Ctx, media: &[&Path]) -> Access {
    let user = match access::qemu_user(ctx) {
        Ok(Some(u)) => u,
        Ok(None) => {
            return Access::Checked(Check::pass(ACCESS, "QEMU runs as you on this connection"));
        }
        Err(e) => {
            return Access::Checked(Check::warn(
                ACCESS,
                format!("cannot tell which user QEMU runs as: {e:#}"),
            ));
        }
    };
    let missing = match access::missing_all(ctx, &user.who, media) {
        Ok(m) => m,
        Err(e) => return Access::Checked(Check::warn(ACCESS, format!("{e:#}"))),
    };
    if missing.is_empty() {
        return Access::Checked(Check::pass(
            ACCESS,
            format!("{} (QEMU's user) can read the ISOs", user.name),
        ));
    }
    let plan = GrantPlan {
        user,
        media: media.iter().map(|m| m.to_path_buf()).collect(),
        missing,
    };
    let what = plan.what();
    if !plan.may(ctx.host.euid()) {
        return Access::Checked(
            Check::fail(
                ACCESS,
                format!("{what}; only their owner or root can grant it"),
            )
            .fix(plan.fix(true)),
        );
    }
    if !ctx.local.has_program("setfacl") {
        return Access::Checked(
            Check::fail(
                ACCESS,
                format!("{what}; setfacl is not installed to grant it"),
            )
            .fix(format!(
                "install it ({}), then: {}",
                tools::package_hint("setfacl").unwrap_or("acl"),
                plan.fix(false)
            )),
        );
    }
    Access::Grantable(plan)
}

/// Whether we may use qemu:///system: root, or in the libvirt group (and
/// kvm, for /dev/kvm).
pub fn groups(ctx: &Ctx) -> Check {
    if !ctx.uri.is_local_system() {
        return Check::pass("groups", format!("not needed for {}", ctx.uri));
    }
    if ctx.local.is_root() {
        return Check::pass("groups", "running as root");
    }
    let (mine, db) = ctx.local.groups();
    let missing: Vec<&str> = ["libvirt", "kvm"]
        .into_iter()
        .filter(|g| {
            db.lines()
                .find_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.len() > 2 && f[0] == *g).then(|| f[2].parse::<u32>().ok())?
                })
                .is_some_and(|gid| !mine.contains(&gid))
        })
        .collect();
    if missing.is_empty() {
        Check::pass("groups", "in the libvirt and kvm groups")
    } else {
        Check::fail(
            "groups",
            format!("not in the group(s): {}", missing.join(", ")),
        )
        .fix(format!(
            "sudo usermod -aG {} $USER, then log out and in again",
            missing.join(",")
        ))
    }
}

/// swtpm, the TPM 2.0 emulator Windows 11 needs.
pub fn swtpm(ctx: &Ctx) -> Check {
    if !ctx.local.has_program("swtpm") {
        return Check::fail("swtpm", "not found: Windows 11 needs its TPM 2.0 emulator")
            .fix(tools::package_hint("swtpm").unwrap_or_default());
    }
    match version_of(ctx, "swtpm") {
        Some(v) => Check::pass("swtpm", format!("swtpm {v}")),
        None => Check::pass("swtpm", "swtpm"),
    }
}

/// The RDP client `connect` would use; when the session rules every one out
/// (no DISPLAY over ssh), the one installed, named all the same.
pub fn rdp_client(ctx: &Ctx) -> Check {
    let found = clients::find(ctx).or_else(|| clients::installed(ctx));
    match found {
        Some(c) => {
            let what = match (c.flavor, &c.version) {
                (rdp::Flavor::Remmina, _) => "Remmina".to_string(),
                (_, Some(v)) => format!("FreeRDP {v}"),
                // FreeRDP 2 needs an X display even to print its version.
                (_, None) if !ctx.local.settings.display => {
                    "version unknown without a display".to_string()
                }
                (rdp::Flavor::FreeRdp3, None) => "FreeRDP 3".to_string(),
                (rdp::Flavor::FreeRdp2, None) => "FreeRDP 2".to_string(),
            };
            Check::pass("RDP client", format!("{} ({what})", c.program))
        }
        None => Check::warn("RDP client", "none found: `connect` will use SPICE only")
            .fix("apt install freerdp3-x11 (or freerdp2-x11) / dnf install freerdp"),
    }
}

/// What the last FreeRDP bkt ran for the VM logged, when it is something to
/// act on: an OpenSSL without MD4 (Debian's FreeRDP 3.10), which NTLM
/// logins need.
pub fn rdp_log(ctx: &Ctx, name: &str) -> Option<Check> {
    let log = ctx.local.last_session_log(&format!("{name}-rdp"))?;
    if !rdp::md4_missing(&ctx.local.read_log(&log)) {
        return None;
    }
    Some(
        Check::warn(
            "RDP client",
            format!(
                "its last log ({}) says its OpenSSL lacks MD4, which NTLM logins need",
                log.display()
            ),
        )
        .fix(format!(
            "if logins fail, {}",
            crate::vm::rdp::client::md4_fix(ctx, &format!("bkt vm connect {name}"))
        )),
    )
}

/// A SPICE viewer, for Windows Setup and when RDP cannot be had.
pub fn viewer(ctx: &Ctx) -> Check {
    for v in ["virt-viewer", "remote-viewer"] {
        if ctx.local.has_program(v) {
            return Check::pass("SPICE viewer", v);
        }
    }
    Check::warn("SPICE viewer", "none found: Windows Setup needs one")
        .fix("apt install virt-viewer / dnf install virt-viewer")
}

/// The ssh login bkt makes to a host reached over `qemu+ssh://`, and
/// whether snapshots (root's files there) are open to that user. Returns
/// the checks and whether we got in.
pub fn ssh_login(ctx: &Ctx, t: &SshTarget) -> (Vec<Check>, bool) {
    let port = t.port.map(|p| format!(", port {p}")).unwrap_or_default();
    let who = t.destination();
    match ctx.host.login() {
        Ok(0) => (
            vec![Check::pass("ssh", format!("logged in as {who}{port}"))],
            true,
        ),
        Ok(uid) => {
            let root = ctx
                .uri
                .with_ssh_user("root")
                .unwrap_or_else(|| ctx.uri.to_string());
            (
                vec![
                    Check::pass("ssh", format!("logged in as {who}{port} (uid {uid})")),
                    Check::warn(
                        "snapshots",
                        format!(
                            "not root on {}: snapshots copy libvirt's NVRAM and TPM files, \
                             which only root may read there",
                            t.host
                        ),
                    )
                    .fix(format!(
                        "for snapshots, connect as root: bkt vm --connect '{root}' snapshot ..."
                    )),
                ],
                true,
            )
        }
        Err(e) => (
            vec![Check::fail("ssh", format!("{e:#}")).fix(ui::hints_of(&e).join("; "))],
            false,
        ),
    }
}

/// `/dev/kvm` on a host reached over ssh (QEMU there opens it, not us).
fn remote_kvm(ctx: &Ctx, t: &SshTarget) -> Check {
    let dev = Path::new("/dev/kvm");
    match ctx.host.stat(dev) {
        Ok(_) => Check::pass("KVM", format!("{} exists on {}", dev.display(), t.host)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Check::fail(
            "KVM",
            format!(
                "{} does not exist on {}: no hardware virtualization there",
                dev.display(),
                t.host
            ),
        )
        .fix(format!(
            "enable VT-x/AMD-V in {}'s firmware setup and load kvm_intel or kvm_amd there; \
             or use --virt-type qemu (software emulation, very slow)",
            t.host
        )),
        Err(e) => Check::warn("KVM", format!("cannot tell: {e}")),
    }
}

/// swtpm on a host reached over ssh: libvirt there starts it.
pub fn remote_swtpm(ctx: &Ctx, t: &SshTarget) -> Check {
    match ctx.host.program_version("swtpm") {
        Some(out) => Check::pass(
            "swtpm",
            match version::parse(&out) {
                Some(v) => format!("swtpm {v} on {}", t.host),
                None => format!("swtpm on {}", t.host),
            },
        ),
        None => Check::fail(
            "swtpm",
            format!(
                "not installed on {}: Windows 11 needs its TPM 2.0 emulator",
                t.host
            ),
        )
        .fix(format!(
            "on {}: {}",
            t.host,
            tools::package_hint("swtpm").unwrap_or_default()
        )),
    }
}

/// The ssh client, which every call to a host over `qemu+ssh://` goes
/// through (libvirt's and bkt's own).
pub fn ssh_client(ctx: &Ctx, t: &SshTarget) -> Check {
    if ctx.local.has_program("ssh") {
        return Check::pass("ssh client", format!("ssh (to reach {})", t.host));
    }
    Check::fail(
        "ssh client",
        format!("ssh not found: nothing reaches {} without it", t.host),
    )
    .fix(tools::package_hint("ssh").unwrap_or_default())
}

/// Room for the VMs' disks to grow in the images directory.
pub fn disk_space(ctx: &Ctx) -> Check {
    let images = ctx.images_dir();
    match ctx.host.free_space(&images) {
        Some(f) if f < gib_bytes(20) => Check::warn(
            "disk space",
            format!(
                "{} free in {}: little room for Windows to grow",
                human(f),
                images.display()
            ),
        ),
        Some(f) => Check::pass(
            "disk space",
            format!("{} free in {}", human(f), images.display()),
        ),
        None => Check::warn(
            "disk space",
            format!("cannot tell the free space in {}", images.display()),
        ),
    }
}

#[cfg(test)]
mod tests {
    // why: tests read fixtures and set up the files and processes they look at.
    #![allow(clippy::disallowed_methods, clippy::disallowed_types)]

    use super::*;
    use crate::ui::Level;

    #[test]
    fn iso_problems_say_what_is_wrong() {
        let ctx = Ctx::for_tests();
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.iso");
        let mut data = vec![0u8; 40000];
        data[32769..32774].copy_from_slice(b"CD001");
        std::fs::write(&good, &data).unwrap();
        assert_eq!(iso_problem(&ctx, &good), Ok(40000));
        let notes = dir.path().join("notes.txt");
        std::fs::write(&notes, "hello").unwrap();
        assert_eq!(
            iso_problem(&ctx, &notes).unwrap_err(),
            format!(
                "{} is not an ISO 9660 image (no CD001 signature)",
                notes.display()
            )
        );
        assert_eq!(
            iso_problem(&ctx, &dir.path().join("nope.iso")).unwrap_err(),
            format!("{} does not exist", dir.path().join("nope.iso").display())
        );
        assert!(
            iso_problem(&ctx, dir.path())
                .unwrap_err()
                .ends_with("is a directory, not an ISO")
        );
    }

    #[test]
    fn resource_limits() {
        let host = HostSize {
            memory_bytes: gib_bytes(16),
            cpus: 8,
        };
        assert_eq!(resources(&host, gib_bytes(8), 4).level, Level::Pass);
        assert_eq!(resources(&host, gib_bytes(12), 4).level, Level::Warn);
        assert_eq!(resources(&host, gib_bytes(8), 6).level, Level::Warn);
        assert_eq!(resources(&host, gib_bytes(17), 4).level, Level::Fail);
        assert_eq!(resources(&host, gib_bytes(8), 9).level, Level::Fail);
        assert_eq!(resources(&host, gib_bytes(8), 0).level, Level::Fail);
    }

    #[test]
    fn existing_disk_is_refused() {
        let ctx = Ctx::for_tests();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("windows.qcow2");
        std::fs::write(&p, "x").unwrap();
        assert_eq!(disk(&ctx, dir.path(), &p, gib_bytes(80)).level, Level::Fail);
        let free = disk(&ctx, dir.path(), &dir.path().join("other.qcow2"), 1);
        assert_ne!(free.level, Level::Fail);
    }

    #[test]
    fn virtio_drivers_come_from_the_given_iso_the_cache_or_a_download() {
        let ctx = Ctx::for_tests();
        let dir = tempfile::tempdir().unwrap();
        let cached = dir.path().join("virtio-win.iso");
        let item = download::virtio(Some("https://example.invalid/v.iso"), &Default::default());
        let c = virtio_iso(&ctx, None, &cached, &item, false);
        assert_eq!(
            (c.level, c.detail.as_str()),
            (
                Level::Pass,
                "will be downloaded from https://example.invalid/v.iso"
            )
        );
        let c = virtio_iso(&ctx, None, &cached, &item, true);
        assert_eq!(c.level, Level::Fail);
        assert_eq!(c.detail, "--offline and none in the cache");
        let mut data = vec![0u8; 40000];
        data[32769..32774].copy_from_slice(b"CD001");
        std::fs::write(&cached, &data).unwrap();
        let c = virtio_iso(&ctx, None, &cached, &item, true);
        assert_eq!(c.level, Level::Pass);
        assert!(c.detail.ends_with(", cached"), "{}", c.detail);
        let other = dir.path().join("mine.iso");
        let c = virtio_iso(&ctx, Some(&other), &cached, &item, true);
        assert_eq!(c.level, Level::Fail, "the given one, not the cached one");
    }

    #[test]
    fn software_emulation_needs_no_kvm() {
        let c = kvm(&Ctx::for_tests(), VirtType::Qemu);
        assert_eq!(c.level, Level::Pass);
        assert_eq!(c.detail, "not used (--virt-type qemu: software emulation)");
    }
}
