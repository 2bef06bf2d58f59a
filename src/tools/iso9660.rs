//! Finding a file's bytes inside an ISO image without extracting it: the
//! positioned-read trait that the ISO 9660 walker (here) and the UDF
//! locator (`udf.rs`) share, and the ISO 9660 (ECMA-119) directory walker.
//!
//! The walker reads the primary volume descriptor (sector 16), then one
//! directory after another down the path, by positioned reads: a few
//! sectors, whatever the size of the image. Names match case-insensitively
//! without their `;1` version (and a trailing `.` of a name without an
//! extension); Rock Ridge and Joliet names are not needed for the
//! upper-case 8.3 names Windows media use. A file over 4 GiB is several
//! directory records of the same name (the multi-extent flag on all but the
//! last): every extent is returned, in order.

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

/// `len` bytes from offset `from` of the file made of `extents` (as
/// [`find_file`] gives them); an error if the range goes past its end.
pub fn read_range(
    r: &mut dyn ReadAt,
    extents: &[Extent],
    from: u64,
    len: usize,
) -> io::Result<Vec<u8>> {
    let total = file_len(extents);
    if from.checked_add(len as u64).is_none_or(|end| end > total) {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("bytes {from}..+{len} lie past the end of the file ({total} bytes)"),
        ));
    }
    let mut out = Vec::with_capacity(len);
    let mut at = 0u64; // file offset of the current extent
    for e in extents {
        if out.len() == len {
            break;
        }
        let want = (from + out.len() as u64).max(at);
        if want < at + e.len {
            let skip = want - at;
            let n = (e.len - skip).min((len - out.len()) as u64) as usize;
            out.extend_from_slice(&read_exact(r, e.offset + skip, n)?);
        }
        at += e.len;
    }
    Ok(out)
}

/// The length of the file made of `extents`.
pub fn file_len(extents: &[Extent]) -> u64 {
    extents.iter().fold(0, |n, e| n.saturating_add(e.len))
}

/// `len` bytes at `off` of the image, an error when it ends before.
pub fn read_exact(r: &mut dyn ReadAt, off: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut got = r.read_at(off, len)?;
    if got.len() < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "the image ends early: {len} bytes wanted at offset {off}, {} there",
                got.len()
            ),
        ));
    }
    got.truncate(len);
    Ok(got)
}

const SECTOR: u64 = 2048;
/// A directory bigger than this is not one a Windows ISO has.
const DIR_MAX: u64 = 16 << 20;
const FLAG_DIR: u8 = 0x02;
const FLAG_MORE: u8 = 0x80;

fn bad(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

/// A directory record's extent, size, flags and name.
struct Record {
    lba: u64,
    ext_attr: u64,
    len: u64,
    flags: u8,
    name: Vec<u8>,
}

fn u32_le(b: &[u8], at: usize) -> u64 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes")) as u64
}

fn record(b: &[u8]) -> Option<Record> {
    if b.len() < 34 {
        return None;
    }
    let name_len = b[32] as usize;
    let name = b.get(33..33 + name_len)?.to_vec();
    Some(Record {
        lba: u32_le(b, 2),
        ext_attr: b[1] as u64,
        len: u32_le(b, 10),
        flags: b[25],
        name,
    })
}

/// The records of a directory's bytes (a record never crosses a sector:
/// a zero length byte pads to the next one).
fn records(dir: &[u8]) -> Vec<Record> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < dir.len() {
        let len = dir[at] as usize;
        if len == 0 {
            at = (at / SECTOR as usize + 1) * SECTOR as usize;
            continue;
        }
        match dir.get(at..at + len).and_then(record) {
            Some(r) => out.push(r),
            None => break,
        }
        at += len;
    }
    out
}

/// Whether a record's name is `want` (`INSTALL.WIM;1` is `install.wim`).
fn same_name(name: &[u8], want: &str) -> bool {
    let name = String::from_utf8_lossy(name);
    let name = name.split(';').next().unwrap_or("");
    let name = name.strip_suffix('.').unwrap_or(name);
    name.eq_ignore_ascii_case(want)
}

/// Whether the volume recognition sequence (sectors 16 on) names UDF
/// (`NSR02`, `NSR03`): Windows' own ISOs keep their files there, and only
/// a README in the ISO 9660 view.
pub fn has_udf(r: &mut dyn ReadAt) -> io::Result<bool> {
    for s in 16..64u64 {
        let d = r.read_at(s * SECTOR, 6)?;
        match d.get(1..6) {
            Some(b"NSR02" | b"NSR03") => return Ok(true),
            Some(b"CD001" | b"BEA01" | b"BOOT2" | b"CDW02" | b"TEA01") => {}
            _ => return Ok(false),
        }
    }
    Ok(false)
}

/// The extents of the file at `path` (components, matched case-insensitively,
/// ";1" ignored) in the ISO 9660 directory tree, or None when it is not there.
pub fn find_file(r: &mut dyn ReadAt, path: &[&str]) -> io::Result<Option<Vec<Extent>>> {
    let pvd = r.read_at(16 * SECTOR, SECTOR as usize)?;
    if pvd.len() < 190 || pvd[0] != 1 || &pvd[1..6] != b"CD001" {
        return Ok(None);
    }
    let block = u16::from_le_bytes([pvd[128], pvd[129]]) as u64;
    if !matches!(block, 512 | 1024 | 2048) {
        return Err(bad(format!("a logical block size of {block} bytes")));
    }
    let root = record(&pvd[156..190]).ok_or_else(|| bad("no root directory record"))?;
    let (mut lba, mut len) = (root.lba + root.ext_attr, root.len);
    let Some((file, dirs)) = path.split_last() else {
        return Ok(None);
    };
    for d in dirs {
        if len > DIR_MAX {
            return Err(bad(format!("a directory of {len} bytes")));
        }
        let bytes = r.read_at(lba * block, len as usize)?;
        let Some(rec) = records(&bytes)
            .into_iter()
            .find(|x| x.flags & FLAG_DIR != 0 && same_name(&x.name, d))
        else {
            return Ok(None);
        };
        (lba, len) = (rec.lba + rec.ext_attr, rec.len);
    }
    if len > DIR_MAX {
        return Err(bad(format!("a directory of {len} bytes")));
    }
    let bytes = r.read_at(lba * block, len as usize)?;
    let recs = records(&bytes);
    let Some(first) = recs
        .iter()
        .position(|x| x.flags & FLAG_DIR == 0 && same_name(&x.name, file))
    else {
        return Ok(None);
    };
    let mut extents = Vec::new();
    for rec in &recs[first..] {
        if !same_name(&rec.name, file) {
            break;
        }
        extents.push(Extent {
            offset: (rec.lba + rec.ext_attr) * block,
            len: rec.len,
        });
        if rec.flags & FLAG_MORE == 0 {
            break;
        }
    }
    Ok(Some(extents))
}

#[cfg(test)]
mod tests {
    // why: tests read fixtures and set up the files and processes they look at.
    #![allow(clippy::disallowed_methods, clippy::disallowed_types)]

    use super::*;

    /// A file of this machine's memory, as an image.
    struct Bytes(Vec<u8>);
    impl ReadAt for Bytes {
        fn read_at(&mut self, off: u64, len: usize) -> io::Result<Vec<u8>> {
            let start = (off as usize).min(self.0.len());
            let end = start.saturating_add(len).min(self.0.len());
            Ok(self.0[start..end].to_vec())
        }
    }

    fn fixture(rel: &str) -> Vec<u8> {
        let p = format!("{}/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    #[test]
    fn install_wim_is_found_in_an_iso_xorriso_made() {
        let iso = fixture("iso/win11-24h2-x64.iso");
        let wim = fixture("wim/win11-24h2-x64.wim");
        let mut r = Bytes(iso.clone());
        assert!(!has_udf(&mut r).unwrap());
        let found = find_file(&mut r, &["sources", "install.wim"])
            .unwrap()
            .unwrap();
        assert_eq!(found.len(), 1);
        let e = found[0];
        assert_eq!(e.len, wim.len() as u64);
        assert_eq!(
            &iso[e.offset as usize..(e.offset + e.len) as usize],
            &wim[..]
        );
        // Any case; a file that is not there; a directory is not a file.
        assert!(
            find_file(&mut r, &["SOURCES", "Install.Wim"])
                .unwrap()
                .is_some()
        );
        assert_eq!(
            find_file(&mut r, &["sources", "install.esd"]).unwrap(),
            None
        );
        assert_eq!(
            find_file(&mut r, &["nothere", "install.wim"]).unwrap(),
            None
        );
        assert_eq!(find_file(&mut r, &["sources"]).unwrap(), None);
    }

    #[test]
    fn what_is_not_iso9660_has_no_files() {
        let mut r = Bytes(vec![0u8; 40 * 1024]);
        assert_eq!(
            find_file(&mut r, &["sources", "install.wim"]).unwrap(),
            None
        );
        assert!(!has_udf(&mut Bytes(Vec::new())).unwrap());
    }

    /// Directory records as a writer lays them out.
    fn rec(lba: u32, len: u32, flags: u8, name: &str) -> Vec<u8> {
        let n = name.len();
        let size = 33 + n + (n + 1) % 2;
        let mut r = vec![0u8; size];
        r[0] = size as u8;
        r[2..6].copy_from_slice(&lba.to_le_bytes());
        r[10..14].copy_from_slice(&len.to_le_bytes());
        r[25] = flags;
        r[32] = n as u8;
        r[33..33 + n].copy_from_slice(name.as_bytes());
        r
    }

    #[test]
    fn a_file_over_4_gib_is_all_its_extents() {
        // Sector 16 the PVD, 18 the root, 19 SOURCES; the records of
        // INSTALL.WIM after a padded sector end.
        let mut img = vec![0u8; 21 * 2048];
        img[16 * 2048] = 1;
        img[16 * 2048 + 1..16 * 2048 + 6].copy_from_slice(b"CD001");
        img[16 * 2048 + 128..16 * 2048 + 130].copy_from_slice(&2048u16.to_le_bytes());
        let root = rec(18, 2048, FLAG_DIR, "\0");
        img[16 * 2048 + 156..16 * 2048 + 156 + 34].copy_from_slice(&root);
        let sources = rec(19, 4096, FLAG_DIR, "SOURCES");
        img[18 * 2048..18 * 2048 + sources.len()].copy_from_slice(&sources);
        let mut dir = rec(19, 4096, FLAG_DIR, "\0");
        dir.extend(rec(7, 100, 0, "BOOT.WIM;1"));
        let at = 19 * 2048;
        img[at..at + dir.len()].copy_from_slice(&dir);
        let mut files = rec(1000, 0xffff_f800, FLAG_MORE, "INSTALL.WIM;1");
        files.extend(rec(3_000_000, 0xffff_f800, FLAG_MORE, "INSTALL.WIM;1"));
        files.extend(rec(5_000_000, 12345, 0, "INSTALL.WIM;1"));
        files.extend(rec(9, 1, 0, "ZZZ.TXT;1"));
        img[20 * 2048..20 * 2048 + files.len()].copy_from_slice(&files);
        let found = find_file(&mut Bytes(img), &["sources", "install.wim"])
            .unwrap()
            .unwrap();
        assert_eq!(
            found,
            [
                Extent {
                    offset: 1000 * 2048,
                    len: 0xffff_f800
                },
                Extent {
                    offset: 3_000_000 * 2048,
                    len: 0xffff_f800
                },
                Extent {
                    offset: 5_000_000 * 2048,
                    len: 12345
                },
            ]
        );
    }
}
