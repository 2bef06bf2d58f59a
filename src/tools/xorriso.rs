//! `xorriso`: the small ISOs bkt hands Windows (the enable-rdp script, the
//! unattended answers), and files taken out of the virtio-win ISO.

use std::path::Path;

use crate::exec::Cmd;

/// `xorriso -as mkisofs -quiet -V VOLUME -J -R -o - DIR`: an ISO with
/// Joliet names (what Windows reads) written to stdout, so that the caller
/// opens the output file itself, with its own mode from the first byte
/// (xorriso refuses `/dev/stdout`, a symlink, as `-o`; `-` it takes).
pub fn mkisofs(volume: &str, dir: &Path) -> Cmd {
    Cmd::new("xorriso").args([
        "-as".to_string(),
        "mkisofs".into(),
        "-quiet".into(),
        "-V".into(),
        volume.into(),
        "-J".into(),
        "-R".into(),
        "-o".into(),
        "-".into(),
        dir.display().to_string(),
    ])
}

/// `xorriso -osirrox on -indev ISO -extract /PATH DEST`: a file or folder
/// out of an ISO.
pub fn extract(iso: &Path, inner: &str, dest: &Path) -> Cmd {
    Cmd::new("xorriso").args([
        "-osirrox".to_string(),
        "on".into(),
        "-indev".into(),
        iso.display().to_string(),
        "-extract".into(),
        inner.to_string(),
        dest.display().to_string(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv() {
        assert_eq!(
            mkisofs("BKT_RDP", Path::new("/tmp/bkt-x")).display(),
            "xorriso -as mkisofs -quiet -V BKT_RDP -J -R -o - /tmp/bkt-x"
        );
        assert_eq!(
            extract(
                Path::new("/v.iso"),
                "/viostor/w11/amd64",
                Path::new("/t/viostor")
            )
            .display(),
            "xorriso -osirrox on -indev /v.iso -extract /viostor/w11/amd64 /t/viostor"
        );
    }
}
