//! Finding a file's bytes inside an ISO image without extracting it: the
//! positioned-read trait that the ISO 9660 walker (here) and the UDF
//! locator (`udf.rs`) share, and the ISO 9660 directory walker.

// Until the edition check uses them (issue 21, in progress).
#![allow(dead_code)]
use std::io;

/// Reads `len` bytes at byte offset `off` of an image (a local file by
/// pread, a file on the libvirt host through ssh). A short answer means the
/// image ends there.
pub trait ReadAt {
    fn read_at(&mut self, off: u64, len: usize) -> io::Result<Vec<u8>>;
}

/// A run of a file's bytes in the image: `len` bytes from byte `offset`.
/// A big file may have several, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub offset: u64,
    pub len: u64,
}

/// The extents of the file at `path` (components, matched case-insensitively,
/// ";1" ignored) in the ISO 9660 directory tree, or None when it is not there.
pub fn find_file(_r: &mut dyn ReadAt, _path: &[&str]) -> io::Result<Option<Vec<Extent>>> {
    Err(io::Error::other("ISO 9660 walker not written yet"))
}
