//! One module per external program: pure functions that build its argv from
//! typed input, and pure parsers of what it prints.

pub mod acl;
pub mod qemu_img;
pub mod rdp;
pub mod unattend;
pub mod viewer;
pub mod virsh;
pub mod virt_install;
pub mod xorriso;

/// The programs `bkt vm create` needs, with the packages that provide them
/// (Debian/Ubuntu, then Fedora).
pub const CREATE_PROGRAMS: &[&str] = &["virsh", "virt-install", "qemu-img"];

/// Which package provides a program, for the "install it" hint.
pub fn package_hint(program: &str) -> Option<&'static str> {
    Some(match program {
        "virsh" => "apt install libvirt-clients / dnf install libvirt-client",
        "virt-install" => "apt install virtinst / dnf install virt-install",
        "qemu-img" => "apt install qemu-utils / dnf install qemu-img",
        "swtpm" => "apt install swtpm swtpm-tools / dnf install swtpm swtpm-tools",
        "xorriso" => "apt install xorriso / dnf install xorriso",
        "setfacl" => "apt install acl / dnf install acl",
        "xfreerdp" | "xfreerdp3" | "sdl-freerdp3" | "wlfreerdp3" => {
            "apt install freerdp2-x11 (or freerdp3-x11) / dnf install freerdp"
        }
        "remmina" => "apt install remmina / dnf install remmina",
        "virt-viewer" | "remote-viewer" => "apt install virt-viewer / dnf install virt-viewer",
        _ => return None,
    })
}
