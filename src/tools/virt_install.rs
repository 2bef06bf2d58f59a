//! `virt-install`: the one call that defines (and starts) the Windows 11 VM.
//!
//! The flags encode what host-facts.md verified on libvirt 11 / QEMU 10 /
//! virt-install 4.1: `--import` with the ISOs as boot-ordered CD-ROMs (not
//! `--cdrom`, whose transient first phase powers the VM off at Windows
//! Setup's first reboot), Secure Boot with enrolled keys, SMM, a TPM 2.0
//! emulator, and Hyper-V passthrough through `--xml` (there is no
//! `--features hyperv.mode=` in 4.1).

use crate::exec::Cmd;

/// How QEMU runs the guest.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum VirtType {
    /// Hardware virtualization (needs /dev/kvm).
    Kvm,
    /// Software emulation (TCG): slow, for hosts without KVM and for tests.
    Qemu,
}

impl VirtType {
    pub fn as_str(self) -> &'static str {
        match self {
            VirtType::Kvm => "kvm",
            VirtType::Qemu => "qemu",
        }
    }
}

/// Everything the Windows 11 domain is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowsDomain {
    pub uri: String,
    pub name: String,
    pub virt_type: VirtType,
    pub memory_mib: u64,
    pub vcpus: u32,
    pub disk_path: String,
    pub iso: String,
    pub virtio_iso: Option<String>,
    /// The answer ISO of an unattended install.
    pub answer_iso: Option<String>,
    pub mac: String,
}

/// Escape a value for virt-install's `key=value,key=value` option syntax,
/// where a literal comma is written twice.
fn opt_value(v: &str) -> String {
    v.replace(',', ",,")
}

impl WindowsDomain {
    fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "--connect".into(),
            self.uri.clone(),
            "--name".into(),
            self.name.clone(),
            "--osinfo".into(),
            "win11".into(),
            "--virt-type".into(),
            self.virt_type.as_str().into(),
            "--machine".into(),
            "q35".into(),
            "--memory".into(),
            self.memory_mib.to_string(),
            "--vcpus".into(),
            self.vcpus.to_string(),
        ];
        // host-passthrough is refused under TCG; there libvirt picks the CPU.
        if self.virt_type == VirtType::Kvm {
            a.extend(["--cpu".into(), "host-passthrough".into()]);
        }
        a.extend(
            [
                "--boot",
                "uefi,firmware.feature0.name=secure-boot,firmware.feature0.enabled=yes,\
                 firmware.feature1.name=enrolled-keys,firmware.feature1.enabled=yes",
                "--features",
                "smm.state=on",
                "--xml",
                "./features/hyperv/@mode=passthrough",
                "--clock",
                "offset=localtime,hypervclock_present=yes",
                "--tpm",
                "backend.type=emulator,backend.version=2.0,model=tpm-crb",
            ]
            .map(String::from),
        );
        a.push("--disk".into());
        a.push(format!(
            "path={},device=cdrom,bus=sata,readonly=on,boot.order=1",
            opt_value(&self.iso)
        ));
        a.push("--disk".into());
        a.push(format!(
            "path={},format=qcow2,bus=virtio,discard=unmap,boot.order=2",
            opt_value(&self.disk_path)
        ));
        for v in self.virtio_iso.iter().chain(self.answer_iso.iter()) {
            a.push("--disk".into());
            a.push(format!(
                "path={},device=cdrom,bus=sata,readonly=on",
                opt_value(v)
            ));
        }
        a.extend([
            "--network".to_string(),
            format!("network=default,model=virtio,mac={}", self.mac),
            "--video".into(),
            "model.type=qxl,model.ram=131072,model.vram=131072,model.vgamem=65536".into(),
            "--graphics".into(),
            "spice".into(),
            "--channel".into(),
            "spicevmc".into(),
            "--channel".into(),
            "unix,target.type=virtio,target.name=org.qemu.guest_agent.0".into(),
            "--import".into(),
            "--noautoconsole".into(),
        ]);
        a
    }

    /// Define the persistent domain and start it.
    pub fn install(&self) -> Cmd {
        Cmd::new("virt-install").args(self.args())
    }

    /// Render the domain XML without defining anything (for `--dry-run`).
    /// virt-install wants a size for a disk that does not exist yet; the size
    /// never appears in the XML.
    pub fn print_xml(&self, disk_size_gib: u64) -> Cmd {
        let mut args = self.args();
        for a in args.iter_mut() {
            if a.starts_with("path=") && a.contains(",format=qcow2,") {
                a.push_str(&format!(",size={}", disk_size_gib.max(1)));
            }
        }
        args.push("--print-xml".into());
        args.push("--dry-run".into());
        Cmd::new("virt-install").args(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(vt: VirtType) -> WindowsDomain {
        WindowsDomain {
            uri: "qemu:///system".into(),
            name: "windows".into(),
            virt_type: vt,
            memory_mib: 8192,
            vcpus: 4,
            disk_path: "/var/lib/libvirt/images/windows.qcow2".into(),
            iso: "/home/anna/Win11, 24H2.iso".into(),
            virtio_iso: Some("/isos/virtio-win.iso".into()),
            answer_iso: None,
            mac: "52:54:00:12:34:56".into(),
        }
    }

    #[test]
    fn kvm_argv() {
        assert_eq!(
            spec(VirtType::Kvm).install().display(),
            "virt-install --connect qemu:///system --name windows --osinfo win11 \
             --virt-type kvm --machine q35 --memory 8192 --vcpus 4 --cpu host-passthrough \
             --boot uefi,firmware.feature0.name=secure-boot,firmware.feature0.enabled=yes,\
             firmware.feature1.name=enrolled-keys,firmware.feature1.enabled=yes \
             --features smm.state=on --xml ./features/hyperv/@mode=passthrough \
             --clock offset=localtime,hypervclock_present=yes \
             --tpm backend.type=emulator,backend.version=2.0,model=tpm-crb \
             --disk 'path=/home/anna/Win11,, 24H2.iso,device=cdrom,bus=sata,readonly=on,boot.order=1' \
             --disk path=/var/lib/libvirt/images/windows.qcow2,format=qcow2,bus=virtio,discard=unmap,boot.order=2 \
             --disk path=/isos/virtio-win.iso,device=cdrom,bus=sata,readonly=on \
             --network network=default,model=virtio,mac=52:54:00:12:34:56 \
             --video model.type=qxl,model.ram=131072,model.vram=131072,model.vgamem=65536 \
             --graphics spice --channel spicevmc \
             --channel unix,target.type=virtio,target.name=org.qemu.guest_agent.0 \
             --import --noautoconsole"
        );
    }

    #[test]
    fn qemu_leaves_cpu_to_libvirt() {
        let d = spec(VirtType::Qemu).install().display();
        assert!(d.contains("--virt-type qemu"));
        assert!(!d.contains("--cpu"));
    }

    #[test]
    fn print_xml_adds_size_and_creates_nothing() {
        let c = spec(VirtType::Qemu).print_xml(80);
        let d = c.display();
        assert!(d.contains(",discard=unmap,boot.order=2,size=80 "));
        assert!(d.ends_with("--import --noautoconsole --print-xml --dry-run"));
    }

    /// The XML virt-install 4.1 printed for these flags (see fixtures/README.md)
    /// has every setting the RFC asks for.
    #[test]
    fn recorded_xml_has_the_windows_11_settings() {
        let xml = include_str!("../../fixtures/virt-install/print-xml-windows-qemu.xml");
        for needle in [
            r#"<os firmware="efi">"#,
            r#"machine="q35""#,
            r#"<feature enabled="yes" name="secure-boot"/>"#,
            r#"<feature enabled="yes" name="enrolled-keys"/>"#,
            r#"<smm state="on"/>"#,
            r#"<hyperv mode="passthrough">"#,
            r#"<clock offset="localtime">"#,
            r#"<timer name="hypervclock" present="yes"/>"#,
            r#"<driver name="qemu" type="qcow2" discard="unmap"/>"#,
            r#"<target dev="vda" bus="virtio"/>"#,
            r#"<model type="virtio"/>"#,
            r#"<tpm model="tpm-crb">"#,
            r#"<backend type="emulator" version="2.0"/>"#,
            r#"<model type="qxl" vram="131072" vgamem="65536" ram="131072"/>"#,
            r#"<graphics type="spice""#,
            r#"<target type="virtio" name="com.redhat.spice.0"/>"#,
            r#"<target type="virtio" name="org.qemu.guest_agent.0"/>"#,
        ] {
            assert!(xml.contains(needle), "missing {needle}");
        }
    }
}
