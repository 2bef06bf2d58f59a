//! `qemu-img`: creating the VM's sparse qcow2 disk and reading its size.

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::exec::Cmd;

/// `qemu-img create -f qcow2 PATH SIZE`: a sparse image that grows as the
/// guest writes (no preallocation).
pub fn create_qcow2(path: &str, size_bytes: u64) -> Cmd {
    Cmd::new("qemu-img").args([
        "create".to_string(),
        "-q".to_string(),
        "-f".to_string(),
        "qcow2".to_string(),
        path.to_string(),
        size_bytes.to_string(),
    ])
}

/// `qemu-img info --output=json PATH`
pub fn info(path: &str) -> Cmd {
    Cmd::new("qemu-img").args(["info", "--output=json", "-U", path])
}

/// The part of `qemu-img info --output=json` that `bkt` reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ImageInfo {
    pub format: String,
    #[serde(rename = "virtual-size")]
    pub virtual_size: u64,
    #[serde(rename = "actual-size", default)]
    pub actual_size: u64,
}

/// Parse the output of [`info`].
pub fn parse_info(json: &str) -> Result<ImageInfo> {
    serde_json::from_str(json).context("unexpected `qemu-img info --output=json` output")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_argv() {
        assert_eq!(
            create_qcow2("/var/lib/libvirt/images/windows.qcow2", 85899345920).display(),
            "qemu-img create -q -f qcow2 /var/lib/libvirt/images/windows.qcow2 85899345920"
        );
    }

    #[test]
    fn info_of_sparse_qcow2() {
        let s = include_str!("../../fixtures/qemu-img/info-qcow2.json");
        let i = parse_info(s).unwrap();
        assert_eq!(i.format, "qcow2");
        assert_eq!(i.virtual_size, 4294967296);
        assert_eq!(i.actual_size, 200704);
        assert!(parse_info("not json").is_err());
    }
}
