//! One module per external program: pure functions that build its argv from
//! typed input, and pure parsers of what it prints.

pub mod acl;
pub mod console_events;
pub mod desktop;
pub mod guest_agent;
pub mod iso9660;
pub mod qemu_img;
pub mod rdp;
pub mod ssh;
pub mod udf;
pub mod unattend;
pub mod version;
pub mod viewer;
pub mod virsh;
pub mod virt_install;
pub mod watcher;
pub mod wim;
pub mod xorriso;

/// A recorded (or specified) output in fixtures/, for the parsers' tests.
#[cfg(test)]
#[allow(clippy::disallowed_methods)] // why: a test reads its fixture
pub fn fixture(rel: &str) -> String {
    let p = format!("{}/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// The programs `bkt vm create` needs, with the packages that provide them
/// (Debian/Ubuntu, then Fedora).
pub const CREATE_PROGRAMS: &[&str] = &["virsh", "virt-install", "qemu-img"];

/// An external program's failure as an error; when the program is
/// missing, with a hint naming the package that provides it.
pub fn program_error(e: crate::exec::ExecError) -> anyhow::Error {
    use crate::ui::HintExt;
    let pkg = match &e {
        crate::exec::ExecError::NotFound { program } => package_hint(program),
        _ => None,
    };
    let err = anyhow::Error::new(e);
    match pkg {
        Some(p) => Err::<(), _>(err)
            .hint(format!("install it: {p}"))
            .unwrap_err(),
        None => err,
    }
}

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
        "ssh" => "apt install openssh-client / dnf install openssh-clients",
        "remmina" => "apt install remmina / dnf install remmina",
        "virt-viewer" | "remote-viewer" => "apt install virt-viewer / dnf install virt-viewer",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    // why: tests read fixtures and set up the files and processes they look at.
    #![allow(clippy::disallowed_methods, clippy::disallowed_types)]

    use super::*;

    #[test]
    fn a_missing_program_gets_its_package_as_a_hint() {
        let e = crate::exec::Cmd::new("xorriso-not-here").run().unwrap_err();
        let plain = program_error(e);
        assert_eq!(plain.to_string(), "command not found: `xorriso-not-here`");
        let e = crate::exec::ExecError::NotFound {
            program: "xorriso".into(),
        };
        let hinted = program_error(e);
        assert_eq!(hinted.to_string(), "command not found: `xorriso`");
        let hints: Vec<String> = hinted
            .chain()
            .filter_map(|c| c.downcast_ref::<crate::ui::Hinted>())
            .flat_map(|h| h.hints.clone())
            .collect();
        assert_eq!(
            hints,
            ["install it: apt install xorriso / dnf install xorriso"]
        );
    }
}
