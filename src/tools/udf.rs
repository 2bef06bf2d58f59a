//! UDF reader (ECMA-167 / OSTA UDF): where a file's bytes lie inside an
//! image, so that one file of a Windows ISO (`sources/install.wim`) can be
//! read in place without extracting gigabytes.
//!
//! Windows ISOs are UDF 1.02 with an ISO 9660 "bridge" view that holds only
//! README.TXT, so their files are found only through UDF. Pure: every byte
//! comes through [`ReadAt`].
//!
//! Supported: the Anchor Volume Descriptor Pointer at sector 256 (sector
//! sizes 2048, 512, 1024 and 4096 are tried, 2048 first; the copies at the
//! last sector and N-256 are not looked for, as reading them would need the
//! image size, and every mastering tool, Microsoft's CDIMAGE included, writes
//! the one at 256); the Main Volume Descriptor Sequence, else the Reserve
//! one; type-1 (physical) partition maps; File Entries and Extended File
//! Entries with short_ad or long_ad allocation descriptors, chained
//! Allocation Extent Descriptors, and data embedded in the ICB; File
//! Identifier Descriptors with OSTA compressed Unicode names (8 and 16 bit).
//! That covers UDF 1.02 to 2.01 as written by CDIMAGE, genisoimage and
//! mkudffs.
//!
//! Not supported, each said by its own error: type-2 partition maps (the
//! UDF 2.50+ metadata partition, virtual (VAT) and sparable partitions),
//! extended_ad descriptors, ICB strategy 4096 chains, and extents that are
//! allocated but not recorded (sparse files: their bytes are zeros that lie
//! nowhere in the image, which an [`Extent`] cannot say). Descriptor tags are
//! checked by identifier and checksum, not by CRC.
//!
//! Input is hostile: every field is bounds-checked, sizes are capped, and
//! malformed bytes give an `InvalidData` error, never a panic. An image with
//! no UDF anchor (a plain ISO 9660 image, or one too short to hold sector
//! 256) gives `Ok(None)`.

use std::io;

use crate::tools::iso9660::read_exact;
pub use crate::tools::iso9660::{Extent, ReadAt, file_len, read_range};

/// Descriptor tag identifiers (ECMA-167 3/7.2.1 and 4/7.2.1).
const TAG_AVDP: u16 = 2;
const TAG_PD: u16 = 5;
const TAG_LVD: u16 = 6;
const TAG_TD: u16 = 8;
const TAG_FSD: u16 = 256;
const TAG_FID: u16 = 257;
const TAG_AED: u16 = 258;
const TAG_FE: u16 = 261;
const TAG_EFE: u16 = 266;

/// The sector where the anchor lies (ECMA-167 3/8.4.2.1).
const ANCHOR_SECTOR: u64 = 256;
/// A volume descriptor sequence is read up to this many bytes.
const MAX_VDS: u64 = 64 * 1024;
/// A directory bigger than this is refused rather than read into memory.
const MAX_DIR: u64 = 64 * 1024 * 1024;
/// Allocation Extent Descriptors followed for one file, at most (a loop of
/// them in a hostile image must end).
const MAX_AED: usize = 4096;

/// The file's extents, in file order (adjacent ones joined: genisoimage and
/// CDIMAGE write a file past 1 GiB as several descriptors of contiguous
/// blocks), at `path` (components matched case-insensitively, e.g.
/// `["sources", "install.wim"]`); `Ok(None)` when
/// the image is not UDF or has no such file. A path naming a directory
/// gives the directory's own bytes (its File Identifier Descriptors); the
/// empty path, the root directory's.
pub fn find_file(r: &mut dyn ReadAt, path: &[&str]) -> io::Result<Option<Vec<Extent>>> {
    let Some(vol) = Volume::open(r)? else {
        return Ok(None);
    };
    let mut icb = vol.root;
    for (i, want) in path.iter().enumerate() {
        let dir = vol.entry(r, icb)?;
        if !dir.is_dir {
            return Ok(None);
        }
        let bytes = read_all(r, &dir.extents, MAX_DIR, "directory")?;
        let last = i + 1 == path.len();
        match find_in_dir(&bytes, want)? {
            Some(found) if last || found.is_dir => icb = found.icb,
            _ => return Ok(None),
        }
    }
    Ok(Some(vol.entry(r, icb)?.extents))
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("not a readable UDF image: {}", msg.into()),
    )
}

/// Exactly `len` bytes at `off`, or an error.
fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// A field that must be there, or an error naming it.
fn field<T>(v: Option<T>, what: &str) -> io::Result<T> {
    v.ok_or_else(|| invalid(format!("{what} is cut short")))
}

/// Whether `b` starts with a descriptor tag of identifier `id` whose
/// checksum holds (ECMA-167 3/7.2.3: the byte sum of the tag but byte 4).
fn tag_ok(b: &[u8], id: u16) -> bool {
    let Some(tag) = b.get(..16) else {
        return false;
    };
    let sum = tag
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != 4)
        .fold(0u8, |s, (_, &x)| s.wrapping_add(x));
    u16_at(tag, 0) == Some(id) && sum == tag[4]
}

/// The tag identifier of `b`, for error messages.
fn tag_id(b: &[u8]) -> String {
    u16_at(b, 0).map_or("none".into(), |t| t.to_string())
}

/// long_ad (ECMA-167 4/14.14.2): an extent in a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LongAd {
    len: u32,
    lbn: u32,
    part: u16,
}

impl LongAd {
    fn parse(b: &[u8], at: usize) -> Option<Self> {
        Some(Self {
            len: u32_at(b, at)?,
            lbn: u32_at(b, at + 4)?,
            part: u16_at(b, at + 8)?,
        })
    }
}

/// What the volume descriptors say: the block size, where each partition
/// reference starts, and the root directory's ICB.
struct Volume {
    block: u64,
    /// Start sector of the partition of each partition reference number.
    parts: Vec<u64>,
    root: LongAd,
}

/// A File Entry as far as we need it.
struct Entry {
    is_dir: bool,
    extents: Vec<Extent>,
}

impl Volume {
    /// The volume of `r`, `None` when no UDF anchor is found.
    fn open(r: &mut dyn ReadAt) -> io::Result<Option<Self>> {
        let Some((block, avdp)) = find_anchor(r)? else {
            return Ok(None);
        };
        // extent_ads (3/7.1): length, then location.
        let what = "the anchor";
        let main = (
            field(u32_at(&avdp, 20), what)?,
            field(u32_at(&avdp, 16), what)?,
        );
        let reserve = (
            field(u32_at(&avdp, 28), what)?,
            field(u32_at(&avdp, 24), what)?,
        );
        let vds = read_vds(r, block, main.0, main.1)
            .or_else(|main_err| read_vds(r, block, reserve.0, reserve.1).map_err(|_| main_err))?;
        let mut vol = Volume {
            block,
            parts: vds.parts,
            root: LongAd {
                len: 0,
                lbn: 0,
                part: 0,
            },
        };
        let fsd = vol.read_block(r, vds.fsd)?;
        if !tag_ok(&fsd, TAG_FSD) {
            return Err(invalid(format!(
                "no File Set Descriptor where the Logical Volume Descriptor points (tag {})",
                tag_id(&fsd)
            )));
        }
        vol.root = field(LongAd::parse(&fsd, 400), "the File Set Descriptor")?;
        Ok(Some(vol))
    }

    /// Byte offset in the image of block `lbn` of partition reference `part`.
    fn offset(&self, part: u16, lbn: u32) -> io::Result<u64> {
        let start = self.parts.get(usize::from(part)).ok_or_else(|| {
            invalid(format!(
                "partition reference {part} is not in the partition maps"
            ))
        })?;
        Ok((start + u64::from(lbn)) * self.block)
    }

    fn read_block(&self, r: &mut dyn ReadAt, at: LongAd) -> io::Result<Vec<u8>> {
        read_exact(r, self.offset(at.part, at.lbn)?, self.block as usize)
    }

    /// The File Entry (or Extended File Entry) at `icb`: is it a directory,
    /// and its extents.
    fn entry(&self, r: &mut dyn ReadAt, icb: LongAd) -> io::Result<Entry> {
        let fe = self.read_block(r, icb)?;
        let (l_ea_at, ads_from) = if tag_ok(&fe, TAG_FE) {
            (168, 176)
        } else if tag_ok(&fe, TAG_EFE) {
            (208, 216)
        } else {
            return Err(invalid(format!(
                "no File Entry at block {} of partition {} (tag {})",
                icb.lbn,
                icb.part,
                tag_id(&fe)
            )));
        };
        let strategy = field(u16_at(&fe, 20), "a File Entry")?;
        if strategy != 4 {
            return Err(invalid(format!(
                "ICB strategy {strategy} is not supported (only 4)"
            )));
        }
        let file_type = field(fe.get(27).copied(), "a File Entry")?;
        let flags = field(u16_at(&fe, 34), "a File Entry")?;
        let size = field(u64_at(&fe, 56), "a File Entry")?;
        let l_ea = field(u32_at(&fe, l_ea_at), "a File Entry")? as usize;
        let l_ad = field(u32_at(&fe, l_ea_at + 4), "a File Entry")? as usize;
        let start = ads_from + l_ea;
        let ads = fe
            .get(start..start.saturating_add(l_ad))
            .ok_or_else(|| invalid("a File Entry's descriptors run past its block"))?;
        let extents = match flags & 7 {
            3 => {
                if size > l_ad as u64 {
                    return Err(invalid("embedded data shorter than its file"));
                }
                let offset = self.offset(icb.part, icb.lbn)? + start as u64;
                vec![Extent { offset, len: size }]
            }
            t @ (0 | 1) => self.extents(r, ads, t == 1, icb.part, size)?,
            t => {
                return Err(invalid(format!(
                    "allocation descriptor type {t} is not supported (short_ad, long_ad and embedded are)"
                )));
            }
        };
        Ok(Entry {
            is_dir: file_type == 4,
            extents,
        })
    }

    /// The extents the allocation descriptors `ads` give, following
    /// Allocation Extent Descriptors, cut to `size` bytes.
    fn extents(
        &self,
        r: &mut dyn ReadAt,
        ads: &[u8],
        long: bool,
        part: u16,
        size: u64,
    ) -> io::Result<Vec<Extent>> {
        let step = if long { 16 } else { 8 };
        let mut out: Vec<Extent> = Vec::new();
        let mut total = 0u64;
        let mut area = ads.to_vec();
        let mut chained = 0;
        'areas: loop {
            for ad in area.chunks_exact(step) {
                let raw = field(u32_at(ad, 0), "an allocation descriptor")?;
                let (kind, len) = (raw >> 30, u64::from(raw & 0x3FFF_FFFF));
                let lbn = field(u32_at(ad, 4), "an allocation descriptor")?;
                let part = if long {
                    field(u16_at(ad, 8), "an allocation descriptor")?
                } else {
                    part
                };
                if len == 0 || total >= size {
                    break 'areas;
                }
                match kind {
                    0 => {
                        let len = len.min(size - total);
                        let offset = self.offset(part, lbn)?;
                        total += len;
                        match out.last_mut() {
                            Some(prev) if prev.offset + prev.len == offset => prev.len += len,
                            _ => out.push(Extent { offset, len }),
                        }
                    }
                    3 => {
                        chained += 1;
                        if chained > MAX_AED {
                            return Err(invalid("too many Allocation Extent Descriptors"));
                        }
                        let aed = self.read_block(r, LongAd { len: 0, lbn, part })?;
                        if !tag_ok(&aed, TAG_AED) {
                            return Err(invalid(format!(
                                "no Allocation Extent Descriptor where one is pointed to (tag {})",
                                tag_id(&aed)
                            )));
                        }
                        let l_ad = field(u32_at(&aed, 20), "an Allocation Extent Descriptor")?;
                        area = aed
                            .get(24..24 + (l_ad as usize).min(len as usize))
                            .ok_or_else(|| {
                                invalid("an Allocation Extent Descriptor runs past its block")
                            })?
                            .to_vec();
                        continue 'areas;
                    }
                    _ => {
                        return Err(invalid(
                            "the file has extents allocated but not recorded (a sparse file), which this reader does not map",
                        ));
                    }
                }
            }
            break;
        }
        if total < size {
            return Err(invalid(format!(
                "a file of {size} bytes has only {total} bytes allocated"
            )));
        }
        Ok(out)
    }
}

/// The sector size and the Anchor Volume Descriptor Pointer, if any.
fn find_anchor(r: &mut dyn ReadAt) -> io::Result<Option<(u64, Vec<u8>)>> {
    for block in [2048u64, 512, 1024, 4096] {
        let b = match r.read_at(ANCHOR_SECTOR * block, block as usize) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => continue,
            Err(e) => return Err(e),
        };
        // A short answer: the image ends before the anchor's sector does.
        if b.len() == block as usize
            && tag_ok(&b, TAG_AVDP)
            && u32_at(&b, 12) == Some(ANCHOR_SECTOR as u32)
        {
            return Ok(Some((block, b)));
        }
    }
    Ok(None)
}

/// What the volume descriptor sequence gives.
struct Vds {
    parts: Vec<u64>,
    fsd: LongAd,
}

/// The volume descriptor sequence of `len` bytes at sector `loc`: its
/// Partition Descriptors and its Logical Volume Descriptor.
fn read_vds(r: &mut dyn ReadAt, block: u64, loc: u32, len: u32) -> io::Result<Vds> {
    let len = u64::from(len).clamp(block, MAX_VDS);
    let seq = read_exact(r, u64::from(loc) * block, len as usize)?;
    // Partition number -> start sector.
    let mut starts: Vec<(u16, u64)> = Vec::new();
    let mut lvd: Option<Vec<u8>> = None;
    for d in seq.chunks_exact(block as usize) {
        if tag_ok(d, TAG_PD) {
            let num = field(u16_at(d, 22), "a Partition Descriptor")?;
            let start = field(u32_at(d, 188), "a Partition Descriptor")?;
            starts.push((num, u64::from(start)));
        } else if tag_ok(d, TAG_LVD) {
            lvd = Some(d.to_vec());
        } else if tag_ok(d, TAG_TD) {
            break;
        }
    }
    let lvd = lvd.ok_or_else(|| invalid("no Logical Volume Descriptor"))?;
    let lbs = field(u32_at(&lvd, 212), "the Logical Volume Descriptor")?;
    if u64::from(lbs) != block {
        return Err(invalid(format!(
            "logical block size {lbs} differs from the sector size {block}, which this reader does not support"
        )));
    }
    let fsd = field(LongAd::parse(&lvd, 248), "the Logical Volume Descriptor")?;
    let map_len = field(u32_at(&lvd, 264), "the Logical Volume Descriptor")? as usize;
    let count = field(u32_at(&lvd, 268), "the Logical Volume Descriptor")?;
    let maps = lvd
        .get(440..440usize.saturating_add(map_len))
        .ok_or_else(|| invalid("the partition maps run past the Logical Volume Descriptor"))?;
    let mut parts = Vec::new();
    let mut at = 0;
    for _ in 0..count {
        let kind = field(maps.get(at).copied(), "a partition map")?;
        let size = usize::from(field(maps.get(at + 1).copied(), "a partition map")?);
        if kind != 1 {
            return Err(invalid(format!(
                "partition map type {kind} (a UDF 2.50 metadata, virtual or sparable partition) is not supported"
            )));
        }
        let num = field(u16_at(maps, at + 4), "a partition map")?;
        let start = starts
            .iter()
            .find(|(n, _)| *n == num)
            .map(|(_, s)| *s)
            .ok_or_else(|| invalid(format!("no Partition Descriptor for partition {num}")))?;
        parts.push(start);
        at += size.max(1);
    }
    Ok(Vds { parts, fsd })
}

/// All bytes of the file made of `extents`, refused past `cap` bytes.
fn read_all(r: &mut dyn ReadAt, extents: &[Extent], cap: u64, what: &str) -> io::Result<Vec<u8>> {
    let total = file_len(extents);
    if total > cap {
        return Err(invalid(format!(
            "a {what} of {total} bytes (more than {cap})"
        )));
    }
    read_range(r, extents, 0, total as usize)
}

/// A directory entry found by name.
struct Found {
    icb: LongAd,
    is_dir: bool,
}

/// A File Identifier Descriptor (ECMA-167 4/14.4).
struct Fid<'a> {
    /// Bit 1 directory, bit 2 deleted, bit 3 parent (4/14.4.3).
    chars: u8,
    icb: LongAd,
    /// The name as recorded: compression id, then code units.
    name: &'a [u8],
}

/// The File Identifier Descriptors of the directory bytes `dir`.
fn fids(dir: &[u8]) -> io::Result<Vec<Fid<'_>>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < dir.len() {
        let fid = &dir[at..];
        if !tag_ok(fid, TAG_FID) {
            return Err(invalid(format!(
                "no File Identifier Descriptor at byte {at} of a directory (tag {})",
                tag_id(fid)
            )));
        }
        let what = "a File Identifier Descriptor";
        let chars = field(fid.get(18).copied(), what)?;
        let l_fi = usize::from(field(fid.get(19).copied(), what)?);
        let icb = field(LongAd::parse(fid, 20), what)?;
        let name_at = 38 + usize::from(field(u16_at(fid, 36), what)?);
        let name = field(fid.get(name_at..name_at + l_fi), what)?;
        out.push(Fid { chars, icb, name });
        at += (name_at + l_fi + 3) & !3;
    }
    Ok(out)
}

/// The entry named `want` (case-insensitively) in the directory bytes
/// `dir`; deleted entries and the parent are passed over.
fn find_in_dir(dir: &[u8], want: &str) -> io::Result<Option<Found>> {
    let want = want.to_lowercase();
    Ok(fids(dir)?
        .into_iter()
        .filter(|f| f.chars & 0b1100 == 0)
        .find(|f| osta_name(f.name).is_some_and(|n| n.to_lowercase() == want))
        .map(|f| Found {
            icb: f.icb,
            is_dir: f.chars & 0b10 != 0,
        }))
}

/// An OSTA compressed Unicode name (UDF 2.1.1): a compression id, then
/// 8-bit (Latin-1) or 16-bit big-endian code units. `None` for another id.
fn osta_name(b: &[u8]) -> Option<String> {
    let (&id, rest) = b.split_first()?;
    match id {
        8 | 254 => Some(rest.iter().map(|&c| char::from(c)).collect()),
        16 | 255 => {
            let units: Vec<u16> = rest
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            Some(String::from_utf16_lossy(&units))
        }
        _ => None,
    }
}

/// Images for tests of what reads an ISO (here and in vm::media).
#[cfg(test)]
pub mod testing {
    // why: builds an image in a temporary directory with genisoimage.
    #![allow(clippy::disallowed_methods, clippy::disallowed_types)]

    use std::path::Path;

    /// The bytes of an ISO shaped like Windows' own: `wim` as
    /// sources/install.wim in its UDF tree only. genisoimage -udf writes
    /// the file in both trees (its -hide, tried, drops it from UDF too), so
    /// the ISO 9660 record's name `INSTALL.WIM;1` is renamed in the bytes
    /// (UDF keeps the name `install.wim` in lower case, untouched).
    pub fn udf_only_iso(wim: &Path) -> Vec<u8> {
        let tmp = tempfile::tempdir().unwrap();
        let tree = tmp.path().join("tree");
        std::fs::create_dir_all(tree.join("sources")).unwrap();
        std::fs::copy(wim, tree.join("sources/install.wim")).unwrap();
        let iso = tmp.path().join("udf.iso");
        let made = std::process::Command::new("genisoimage")
            .args(["-quiet", "-no-pad", "-udf", "-input-charset", "utf-8", "-o"])
            .arg(&iso)
            .arg(&tree)
            .status()
            .expect("genisoimage (scripts/packages.txt)");
        assert!(made.success());
        let mut bytes = std::fs::read(&iso).unwrap();
        let at = bytes
            .windows(13)
            .position(|w| w == b"INSTALL.WIM;1")
            .expect("the ISO 9660 record");
        bytes[at..at + 13].copy_from_slice(b"INSTALL.XXX;1");
        bytes
    }
}

#[cfg(test)]
mod tests {
    // why: tests read fixtures and set up the files and processes they look at.
    #![allow(clippy::disallowed_methods, clippy::disallowed_types)]

    use super::*;

    /// An image in memory; a read past its end gets what there is (the
    /// shared trait's "a short answer means the image ends there").
    struct Mem(Vec<u8>);

    impl ReadAt for Mem {
        fn read_at(&mut self, off: u64, len: usize) -> io::Result<Vec<u8>> {
            let n = self.0.len() as u64;
            let (from, to) = (off.min(n), off.saturating_add(len as u64).min(n));
            Ok(self.0[from as usize..to as usize].to_vec())
        }
    }

    /// A reader that answers a read past the end with `UnexpectedEof`, as
    /// `read_exact_at` does.
    struct EofErr(Mem);

    impl ReadAt for EofErr {
        fn read_at(&mut self, off: u64, len: usize) -> io::Result<Vec<u8>> {
            let got = self.0.read_at(off, len)?;
            if got.len() < len {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            Ok(got)
        }
    }

    /// A recorded image of fixtures/udf/.
    fn fx(name: &str) -> Mem {
        let p = format!("{}/fixtures/udf/{name}", env!("CARGO_MANIFEST_DIR"));
        Mem(std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}")))
    }

    /// The bytes genisoimage put in tree/sources/install.wim.
    fn wim_bytes() -> Vec<u8> {
        (0..5000u32).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn file(img: &mut Mem, path: &[&str]) -> Vec<u8> {
        let ext = find_file(img, path).unwrap().unwrap();
        read_range(img, &ext, 0, file_len(&ext) as usize).unwrap()
    }

    #[test]
    fn finds_install_wim_in_a_genisoimage_udf_bridge_image() {
        let mut img = fx("genisoimage-udf.iso");
        let ext = find_file(&mut img, &["sources", "install.wim"])
            .unwrap()
            .unwrap();
        assert_eq!(ext.len(), 1);
        assert_eq!(ext[0].len, 5000);
        assert_eq!(ext[0].offset % 2048, 0);
        assert_eq!(file(&mut img, &["sources", "install.wim"]), wim_bytes());
        // Windows spells it SOURCES/INSTALL.WIM in places: case does not matter.
        assert_eq!(file(&mut img, &["SOURCES", "Install.WIM"]), wim_bytes());
        assert_eq!(file(&mut img, &["README.TXT"]), b"readme\n");
    }

    #[test]
    fn walks_nested_directories_and_misses_cleanly() {
        let mut img = fx("genisoimage-udf.iso");
        assert_eq!(
            file(&mut img, &["sources", "nested", "deeper", "leaf.txt"]),
            b"hello\n"
        );
        for missing in [
            &["sources", "install.esd"][..],
            &["nosuch", "install.wim"],
            // A file is not a directory to look into.
            &["README.TXT", "install.wim"],
            &["sources", "nested", "leaf.txt"],
        ] {
            assert_eq!(find_file(&mut img, missing).unwrap(), None, "{missing:?}");
        }
    }

    #[test]
    fn reads_8_and_16_bit_osta_names() {
        let mut img = fx("genisoimage-udf.iso");
        // "Größe" fits Latin-1 (compression id 8); "Ωmega" needs 16 bits.
        assert_eq!(file(&mut img, &["Größe.txt"]), b"gross\n");
        assert_eq!(file(&mut img, &["GRÖßE.TXT"]), b"gross\n");
        assert_eq!(file(&mut img, &["Ωmega.txt"]), b"omega\n");
        assert_eq!(file(&mut img, &["ωMEGA.TXT"]), b"omega\n");
        // The names are recorded as said: one 8-bit, one 16-bit.
        let root = file(&mut img, &[]);
        let ids: Vec<(u8, String)> = fids(&root)
            .unwrap()
            .iter()
            .filter_map(|f| {
                Some((
                    *f.name.first()?,
                    osta_name(f.name).filter(|n| !n.is_ascii())?,
                ))
            })
            .collect();
        assert_eq!(ids, [(8, "Größe.txt".into()), (16, "Ωmega.txt".into())]);
    }

    #[test]
    fn reads_a_directory_of_several_sectors() {
        let mut img = fx("genisoimage-udf.iso");
        let ext = find_file(&mut img, &["many"]).unwrap().unwrap();
        let len = file_len(&ext);
        assert!(len > 2048, "the directory spans more than a sector: {len}");
        let dir = file(&mut img, &["many"]);
        assert_eq!(fids(&dir).unwrap().len(), 41, "the parent and 40 entries");
        for i in [0, 20, 39] {
            let name = format!("ENTRY-with-a-longish-name-{i:02}.bin");
            // An empty file has no extents.
            assert_eq!(find_file(&mut img, &["many", &name]).unwrap(), Some(vec![]));
        }
    }

    /// The root directory of an empty mkudffs volume: the parent entry only.
    fn root_of_empty_volume(img: &mut Mem) -> Extent {
        let ext = find_file(img, &[]).unwrap().unwrap();
        assert_eq!(ext.len(), 1);
        let dir = read_range(img, &ext, 0, ext[0].len as usize).unwrap();
        let fids = fids(&dir).unwrap();
        assert_eq!(fids.len(), 1);
        assert_eq!(fids[0].chars & 0b1010, 0b1010, "a parent directory");
        assert_eq!(find_file(img, &["sources", "install.wim"]).unwrap(), None);
        ext[0]
    }

    #[test]
    fn reads_data_embedded_in_an_extended_file_entry() {
        // mkudffs 2.01 defaults: Extended File Entries, data in the ICB.
        let mut img = fx("mkudffs-201-inicb.img");
        let root = root_of_empty_volume(&mut img);
        let block = root.offset / 2048 * 2048;
        assert_eq!(root.offset - block, 216, "right after the EFE's fields");
        assert_eq!(root.len, 40);
        let fe = img.read_at(block, 2048).unwrap();
        assert!(tag_ok(&fe, TAG_EFE));
    }

    #[test]
    fn reads_512_byte_sectors_and_long_ads() {
        let mut img = fx("mkudffs-102-512-long.img");
        assert_eq!(find_anchor(&mut img).unwrap().unwrap().0, 512);
        let root = root_of_empty_volume(&mut img);
        assert_eq!(root.offset % 512, 0, "its own block, not embedded");
    }

    #[test]
    fn a_plain_iso9660_image_is_not_udf() {
        let mut img = fx("xorriso-iso9660.iso");
        assert_eq!(find_file(&mut img, &["readme.txt"]).unwrap(), None);
        assert_eq!(find_file(&mut Mem(vec![]), &[]).unwrap(), None);
    }

    /// CRC-ITU-T of a descriptor body (ECMA-167 1/7.2.6).
    fn crc(b: &[u8]) -> u16 {
        b.iter().fold(0u16, |mut c, &x| {
            c ^= u16::from(x) << 8;
            for _ in 0..8 {
                c = if c & 0x8000 != 0 {
                    c << 1 ^ 0x1021
                } else {
                    c << 1
                };
            }
            c
        })
    }

    /// A descriptor of `len` bytes at `off` with its tag's CRC and checksum
    /// made right again after a patch.
    fn retag(img: &mut [u8], off: usize, len: usize) {
        let d = &mut img[off..off + len];
        d[10..12].copy_from_slice(&((len - 16) as u16).to_le_bytes());
        let c = crc(&d[16..]);
        d[8..10].copy_from_slice(&c.to_le_bytes());
        d[4] = 0;
        d[4] = d[..16].iter().fold(0u8, |s, &x| s.wrapping_add(x));
    }

    /// Writes `ads` as short_ads at `at`.
    fn put_ads(b: &mut [u8], at: usize, ads: &[(u32, u32)]) {
        for (i, (len, lbn)) in ads.iter().enumerate() {
            b[at + i * 8..at + i * 8 + 4].copy_from_slice(&len.to_le_bytes());
            b[at + i * 8 + 4..at + i * 8 + 8].copy_from_slice(&lbn.to_le_bytes());
        }
    }

    /// Short_ads as a patch writes them: the File Entry's, the AED's.
    type Ads = (Vec<(u32, u32)>, Vec<(u32, u32)>);

    /// genisoimage's image with install.wim's bytes 2048.. moved to two
    /// blocks appended at the end (their old place overwritten), a third
    /// block appended for an Allocation Extent Descriptor, and the short_ads
    /// of the File Entry and of that AED given by `ads(the file's first
    /// lbn, the moved blocks' first lbn, the AED's lbn)`. Returns the image
    /// and the moved blocks' image offset.
    fn patched(ads: impl Fn(u32, u32, u32) -> Ads) -> (Mem, u64) {
        let mut img = fx("genisoimage-udf.iso");
        let vol = Volume::open(&mut img).unwrap().unwrap();
        let root = vol.entry(&mut img, vol.root).unwrap();
        let root = read_all(&mut img, &root.extents, MAX_DIR, "dir").unwrap();
        let src = find_in_dir(&root, "sources").unwrap().unwrap().icb;
        let src = vol.entry(&mut img, src).unwrap();
        let dir = read_all(&mut img, &src.extents, MAX_DIR, "dir").unwrap();
        let icb = find_in_dir(&dir, "install.wim").unwrap().unwrap().icb;
        let fe_off = vol.offset(icb.part, icb.lbn).unwrap() as usize;
        let data = vol.entry(&mut img, icb).unwrap().extents[0].offset as usize;
        let b = &mut img.0;
        assert_eq!(b.len() % 2048, 0);
        let moved_at = b.len();
        let moved = (moved_at / 2048) as u32 - vol.parts[0] as u32;
        let mut tail = b[data + 2048..data + 5000].to_vec();
        tail.resize(4096, 0);
        b.extend_from_slice(&tail);
        b[data + 2048..data + 5000].fill(0xEE);
        let fe = &b[fe_off..fe_off + 2048];
        assert_eq!(u16::from_le_bytes([fe[34], fe[35]]) & 7, 0, "short_ads");
        let l_ea = u32_at(fe, 168).unwrap() as usize;
        assert_eq!(u32_at(fe, 176 + l_ea), Some(5000), "one short_ad");
        let first = u32_at(fe, 180 + l_ea).unwrap();
        let (fe_ads, aed_ads) = ads(first, moved, moved + 2);
        let aed_at = b.len();
        b.resize(aed_at + 2048, 0);
        b[aed_at..aed_at + 2].copy_from_slice(&TAG_AED.to_le_bytes());
        b[aed_at + 12..aed_at + 16].copy_from_slice(&(moved + 2).to_le_bytes());
        b[aed_at + 20..aed_at + 24].copy_from_slice(&((aed_ads.len() * 8) as u32).to_le_bytes());
        put_ads(b, aed_at + 24, &aed_ads);
        retag(b, aed_at, 24 + aed_ads.len() * 8);
        b[fe_off + 172..fe_off + 176].copy_from_slice(&((fe_ads.len() * 8) as u32).to_le_bytes());
        put_ads(b, fe_off + 176 + l_ea, &fe_ads);
        retag(b, fe_off, 176 + l_ea + fe_ads.len() * 8);
        (img, moved_at as u64)
    }

    #[test]
    fn a_file_in_two_extents_reads_in_order() {
        let (mut img, moved_at) = patched(|first, m, _| (vec![(2048, first), (2952, m)], vec![]));
        let ext = find_file(&mut img, &["sources", "install.wim"])
            .unwrap()
            .unwrap();
        assert_eq!(ext.len(), 2);
        assert_eq!(ext[0].len, 2048);
        assert_eq!(
            ext[1],
            Extent {
                offset: moved_at,
                len: 2952
            }
        );
        assert!(file(&mut img, &["sources", "install.wim"]) == wim_bytes());
        // A range across the seam, and the end of the file.
        let wim = wim_bytes();
        assert_eq!(
            read_range(&mut img, &ext, 2000, 100).unwrap(),
            wim[2000..2100]
        );
        assert_eq!(read_range(&mut img, &ext, 4990, 10).unwrap(), wim[4990..]);
    }

    #[test]
    fn adjacent_extents_are_one() {
        // As genisoimage writes a file past 1 GiB: a short_ad of 1 GiB less
        // a block, then the rest right after it (seen on a 1 GiB + 5000
        // byte file, too big to keep here).
        let (mut img, _) = patched(|first, _, _| (vec![(2048, first), (2952, first + 1)], vec![]));
        let ext = find_file(&mut img, &["sources", "install.wim"])
            .unwrap()
            .unwrap();
        assert_eq!(ext.len(), 1);
        assert_eq!(ext[0].len, 5000);
    }

    #[test]
    fn follows_an_allocation_extent_descriptor() {
        let (mut img, moved_at) =
            patched(|first, m, aed| (vec![(2048, first), (3 << 30 | 8, aed)], vec![(2952, m)]));
        let ext = find_file(&mut img, &["sources", "install.wim"])
            .unwrap()
            .unwrap();
        assert_eq!(
            ext[1],
            Extent {
                offset: moved_at,
                len: 2952
            }
        );
        assert!(file(&mut img, &["sources", "install.wim"]) == wim_bytes());
    }

    #[test]
    fn an_unrecorded_extent_is_refused_by_name() {
        let (mut img, _) =
            patched(|first, m, _| (vec![(2048, first), (1 << 30 | 2952, m)], vec![]));
        let err = find_file(&mut img, &["sources", "install.wim"]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(
            err.to_string(),
            "not a readable UDF image: the file has extents allocated but not recorded (a sparse file), which this reader does not map"
        );
    }

    #[test]
    fn read_range_maps_file_offsets_over_extents() {
        let mut img = Mem((0..=255u8).collect());
        let ext = [
            Extent {
                offset: 200,
                len: 3,
            },
            Extent { offset: 10, len: 4 },
        ];
        assert_eq!(
            read_range(&mut img, &ext, 0, 7).unwrap(),
            [200, 201, 202, 10, 11, 12, 13]
        );
        assert_eq!(read_range(&mut img, &ext, 2, 3).unwrap(), [202, 10, 11]);
        assert_eq!(read_range(&mut img, &ext, 5, 0).unwrap(), [] as [u8; 0]);
        let err = read_range(&mut img, &ext, 5, 3).unwrap_err();
        assert_eq!(
            err.to_string(),
            "bytes 5..+3 lie past the end of the file (7 bytes)"
        );
        assert!(read_range(&mut img, &ext, u64::MAX, 1).is_err());
    }

    #[test]
    fn truncated_or_garbled_images_never_panic() {
        let whole = fx("genisoimage-udf.iso").0;
        let path = ["sources", "install.wim"];
        for cut in (0..whole.len())
            .step_by(2048)
            .chain([256 * 2048 + 100, whole.len() - 1])
        {
            let r = find_file(&mut Mem(whole[..cut].to_vec()), &path);
            let e = find_file(&mut EofErr(Mem(whole[..cut].to_vec())), &path);
            if cut < 257 * 2048 {
                assert_eq!(r.unwrap(), None, "cut at {cut}: no anchor");
                assert_eq!(e.unwrap(), None, "cut at {cut}: no anchor");
            }
        }
        // Random bytes in the UDF structures (a fixed sequence: the same
        // every run), the tag checksums kept right so that the garbage is
        // read and not merely refused.
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // The bytes the reader looks at on its way to the file.
        struct Seen(Mem, Vec<(u64, usize)>);
        impl ReadAt for Seen {
            fn read_at(&mut self, off: u64, len: usize) -> io::Result<Vec<u8>> {
                self.1.push((off, len.min(600)));
                self.0.read_at(off, len)
            }
        }
        let mut seen = Seen(Mem(whole.clone()), vec![]);
        find_file(&mut seen, &path).unwrap().unwrap();
        let reads = seen.1;
        assert!(reads.len() >= 8, "anchor, sequence, FSD, 3 entries, 2 dirs");
        let mut errors = 0;
        for _ in 0..1500 {
            let mut b = whole.clone();
            for _ in 0..1 + next() % 4 {
                let (off, len) = reads[(next() % reads.len() as u64) as usize];
                let at = off as usize + (next() % len as u64) as usize;
                b[at] = next() as u8;
                retag(&mut b, at / 2048 * 2048, 2048);
            }
            errors += usize::from(find_file(&mut Mem(b), &path).is_err());
        }
        // Sure to be reached by this fixed sequence: the garbage gets past
        // the tag checks to the fields behind them.
        assert!(errors > 300, "only {errors} of 1500 garbled images refused");
    }
}
