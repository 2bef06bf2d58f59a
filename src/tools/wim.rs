//! What a Windows image file (`sources/install.wim` or `install.esd`) holds,
//! from its header and its XML metadata alone: the images (editions) with
//! their index, name, edition id, architecture and version, and which
//! Windows that is ("Windows 11 24H2 x64"). The gigabytes of file data are
//! never read: the 208-byte header says where the XML resource is, and
//! that resource is stored uncompressed (UTF-16LE) in WIM and ESD files
//! alike. The layout is Microsoft's "Windows Imaging File Format" (and
//! wimlib's `include/wimlib/header.h`, `resource.h`).

use std::fmt;

use crate::tools::iso9660::{Extent, ReadAt, read_range};

/// The bytes of the header.
pub const HEADER_LEN: usize = 208;
/// "MSWIM\0\0\0".
const MAGIC: &[u8; 8] = b"MSWIM\0\0\0";
/// Where the XML resource's header is in the file header.
const XML_RESHDR: usize = 72;
/// A resource stored compressed (`WIM_RESHDR_FLAG_COMPRESSED`).
const COMPRESSED: u8 = 0x04;
/// The XML of a real install.wim is tens of KiB; anything this big is not
/// an image list.
const XML_MAX: u64 = 16 << 20;

/// Why an image file's metadata could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WimError {
    /// Not a WIM/ESD: the magic is missing.
    NotWim,
    /// A header or XML that does not hold together.
    Bad(String),
    /// Reading the bytes failed.
    Io(String),
}

impl fmt::Display for WimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WimError::NotWim => write!(f, "not a WIM file (no MSWIM signature)"),
            WimError::Bad(why) => write!(f, "a damaged WIM file: {why}"),
            WimError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for WimError {}

/// A resource header: `size` stored bytes (7 bytes) and flags (1 byte),
/// the offset in the file, the original (uncompressed) size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    pub size: u64,
    pub flags: u8,
    pub offset: u64,
    pub original_size: u64,
}

/// What bkt reads of the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub image_count: u32,
    pub xml: Resource,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The header of a WIM or ESD file (its first [`HEADER_LEN`] bytes).
pub fn parse_header(b: &[u8]) -> Result<Header, WimError> {
    if b.len() < 8 || &b[..8] != MAGIC {
        return Err(WimError::NotWim);
    }
    if b.len() < HEADER_LEN {
        return Err(WimError::Bad(format!(
            "the header is cut short at {} bytes",
            b.len()
        )));
    }
    let size_and_flags = u64_at(b, XML_RESHDR);
    let xml = Resource {
        size: size_and_flags & 0x00ff_ffff_ffff_ffff,
        flags: (size_and_flags >> 56) as u8,
        offset: u64_at(b, XML_RESHDR + 8),
        original_size: u64_at(b, XML_RESHDR + 16),
    };
    Ok(Header {
        image_count: u32_at(b, 44),
        xml,
    })
}

/// The XML resource's text: UTF-16LE, a byte order mark first.
pub fn decode_xml(b: &[u8]) -> Result<String, WimError> {
    if !b.len().is_multiple_of(2) {
        return Err(WimError::Bad("the XML has an odd number of bytes".into()));
    }
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let units = units.strip_prefix(&[0xfeff]).unwrap_or(&units);
    let text = String::from_utf16(units)
        .map_err(|_| WimError::Bad("the XML is not UTF-16 text".into()))?;
    Ok(text.trim_end_matches('\0').to_string())
}

/// A processor architecture, as `WINDOWS/ARCH` numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86,
    X64,
    Arm64,
    Other(u32),
}

impl serde::Serialize for Arch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl Arch {
    pub fn from_number(n: u32) -> Arch {
        match n {
            0 => Arch::X86,
            9 => Arch::X64,
            12 => Arch::Arm64,
            n => Arch::Other(n),
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arch::X86 => write!(f, "x86"),
            Arch::X64 => write!(f, "x64"),
            Arch::Arm64 => write!(f, "ARM64"),
            Arch::Other(n) => write!(f, "architecture {n}"),
        }
    }
}

/// One image (an edition) of the file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Image {
    /// Its number in the file, from 1: what an answer file's
    /// `/IMAGE/INDEX` names.
    pub index: u32,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// `Professional`, `Core` (Home), `Education`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edition_id: Option<String>,
    /// `Client`, `Server`, `Server Core`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub installation_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arch: Option<Arch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub major: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minor: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<u32>,
    /// The update level: the `.1742` of build 26100.1742.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spbuild: Option<u32>,
}

/// The images the XML lists, by index.
pub fn parse_xml(xml: &str) -> Result<Vec<Image>, WimError> {
    let doc = roxmltree::Document::parse(xml)
        .map_err(|e| WimError::Bad(format!("its XML does not parse: {e}")))?;
    let root = doc.root_element();
    if !root.has_tag_name("WIM") {
        return Err(WimError::Bad(format!(
            "its XML is <{}>, not <WIM>",
            root.tag_name().name()
        )));
    }
    let text = |n: roxmltree::Node, path: &[&str]| -> Option<String> {
        let mut at = n;
        for tag in path {
            at = at.children().find(|c| c.has_tag_name(*tag))?;
        }
        at.text()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
    };
    let number = |n: roxmltree::Node, path: &[&str]| -> Option<u32> {
        text(n, path).and_then(|t| t.parse().ok())
    };
    let mut images = Vec::new();
    for n in root.children().filter(|c| c.has_tag_name("IMAGE")) {
        let index = n
            .attribute("INDEX")
            .and_then(|i| i.parse::<u32>().ok())
            .ok_or_else(|| WimError::Bad("an image without a numeric INDEX".into()))?;
        images.push(Image {
            index,
            name: text(n, &["NAME"]).unwrap_or_default(),
            display_name: text(n, &["DISPLAYNAME"]),
            // Windows' own files keep it under WINDOWS; older tools wrote
            // it beside NAME; FLAGS repeats it.
            edition_id: text(n, &["WINDOWS", "EDITIONID"])
                .or_else(|| text(n, &["EDITIONID"]))
                .or_else(|| text(n, &["FLAGS"])),
            installation_type: text(n, &["WINDOWS", "INSTALLATIONTYPE"]),
            arch: number(n, &["WINDOWS", "ARCH"]).map(Arch::from_number),
            major: number(n, &["WINDOWS", "VERSION", "MAJOR"]),
            minor: number(n, &["WINDOWS", "VERSION", "MINOR"]),
            build: number(n, &["WINDOWS", "VERSION", "BUILD"]),
            spbuild: number(n, &["WINDOWS", "VERSION", "SPBUILD"]),
        });
    }
    images.sort_by_key(|i| i.index);
    Ok(images)
}

/// The feature-update name of a Windows 10 or 11 build.
pub fn release(build: u32) -> Option<&'static str> {
    Some(match build {
        // Windows 11
        22000 => "21H2",
        22621 => "22H2",
        22631 => "23H2",
        26100 => "24H2",
        26200 => "25H2",
        // Windows 10
        10240 => "1507",
        10586 => "1511",
        14393 => "1607",
        15063 => "1703",
        16299 => "1709",
        17134 => "1803",
        17763 => "1809",
        18362 => "1903",
        18363 => "1909",
        19041 => "2004",
        19042 => "20H2",
        19043 => "21H1",
        19044 => "21H2",
        19045 => "22H2",
        _ => return None,
    })
}

impl Image {
    fn is_server(&self) -> bool {
        self.installation_type
            .as_deref()
            .is_some_and(|t| t.starts_with("Server"))
    }

    /// Windows 11 (NT 10.0, build 22000 or later, a client) for x64: what
    /// `bkt vm create` makes a VM of.
    pub fn is_windows11_x64(&self) -> bool {
        self.product() == Some("Windows 11") && self.arch == Some(Arch::X64)
    }

    /// "Windows 11", "Windows 10", "Windows Server"; None when the XML
    /// gives no version.
    pub fn product(&self) -> Option<&'static str> {
        let (major, build) = (self.major?, self.build?);
        Some(match () {
            _ if self.is_server() => "Windows Server",
            _ if major == 10 && build >= 22000 => "Windows 11",
            _ if major == 10 => "Windows 10",
            _ => "Windows",
        })
    }

    /// "24H2", else "build N".
    pub fn release_name(&self) -> Option<String> {
        let build = self.build?;
        Some(match release(build) {
            Some(r) if !self.is_server() => r.to_string(),
            _ => format!("build {build}"),
        })
    }

    /// "26100.1742".
    pub fn full_build(&self) -> Option<String> {
        let b = self.build?;
        Some(match self.spbuild {
            Some(sp) => format!("{b}.{sp}"),
            None => b.to_string(),
        })
    }

    /// What Windows this is: "Windows 11 24H2 x64", "Windows 10 22H2
    /// x64", "Windows Server build 26100 x64", or "Windows 6.3 build 9600
    /// x64" for older ones.
    pub fn windows(&self) -> String {
        let arch = self
            .arch
            .map(|a| format!(" {a}"))
            .unwrap_or_else(|| " (architecture not given)".into());
        match (self.product(), self.release_name()) {
            (Some("Windows"), Some(_)) => format!(
                "Windows {}.{} build {}{arch}",
                self.major.unwrap_or(0),
                self.minor.unwrap_or(0),
                self.build.unwrap_or(0)
            ),
            (Some(p), Some(r)) => format!("{p} {r}{arch}"),
            _ => format!("Windows (version not given){arch}"),
        }
    }
}

/// What the image file says of Windows as a whole: the distinct
/// [`Image::windows`] of its images, in order ("Windows 11 24H2 x64"; two
/// joined by " and " for a file that mixes them).
pub fn summary(images: &[Image]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for i in images {
        let w = i.windows();
        if !seen.contains(&w) {
            seen.push(w);
        }
    }
    seen.join(" and ")
}

/// Why no image was picked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PickError {
    /// The file lists no image.
    Empty,
    /// `--edition NAME` matches none of them.
    Unknown(String),
}

/// The image an unattended install uses: `wanted` (an image's name or
/// edition id, any case) when given; else the Pro edition (edition id
/// `Professional`, else a name ending in " Pro", else one with " Pro " in
/// it); else the first.
pub fn pick<'a>(images: &'a [Image], wanted: Option<&str>) -> Result<&'a Image, PickError> {
    if images.is_empty() {
        return Err(PickError::Empty);
    }
    if let Some(w) = wanted {
        let w = w.trim();
        return images
            .iter()
            .find(|i| i.name.eq_ignore_ascii_case(w))
            .or_else(|| {
                images.iter().find(|i| {
                    i.edition_id
                        .as_deref()
                        .is_some_and(|e| e.eq_ignore_ascii_case(w))
                })
            })
            .ok_or_else(|| PickError::Unknown(w.to_string()));
    }
    let by = |f: &dyn Fn(&Image) -> bool| images.iter().find(|i| f(i));
    Ok(by(&|i| i.edition_id.as_deref() == Some("Professional"))
        .or_else(|| by(&|i| i.name.ends_with(" Pro")))
        .or_else(|| by(&|i| i.name.contains(" Pro ")))
        .unwrap_or(&images[0]))
}

/// The images of the WIM or ESD file whose bytes are `extents` of `r`:
/// its header, then its XML, two positioned reads.
pub fn read_images(r: &mut dyn ReadAt, extents: &[Extent]) -> Result<Vec<Image>, WimError> {
    let io = |e: std::io::Error| WimError::Io(e.to_string());
    let file_len: u64 = extents.iter().map(|e| e.len).sum();
    if file_len < HEADER_LEN as u64 {
        return Err(WimError::NotWim);
    }
    let header = parse_header(&read_range(r, extents, 0, HEADER_LEN).map_err(io)?)?;
    let xml = header.xml;
    if xml.flags & COMPRESSED != 0 {
        return Err(WimError::Bad("its XML resource is compressed".into()));
    }
    if xml.size == 0 || xml.size > XML_MAX {
        return Err(WimError::Bad(format!(
            "its XML resource is {} bytes",
            xml.size
        )));
    }
    if xml
        .offset
        .checked_add(xml.size)
        .is_none_or(|end| end > file_len)
    {
        return Err(WimError::Bad(format!(
            "its XML resource ({} bytes at {}) lies beyond its {file_len} bytes",
            xml.size, xml.offset
        )));
    }
    let bytes = read_range(r, extents, xml.offset, xml.size as usize).map_err(io)?;
    parse_xml(&decode_xml(&bytes)?)
}

#[cfg(test)]
mod tests {
    // why: tests read fixtures and set up the files and processes they look at.
    #![allow(clippy::disallowed_methods, clippy::disallowed_types)]

    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let p = format!("{}/fixtures/wim/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    /// A file of this machine's memory, as an image.
    struct Bytes(Vec<u8>);
    impl ReadAt for Bytes {
        fn read_at(&mut self, off: u64, len: usize) -> std::io::Result<Vec<u8>> {
            let start = (off as usize).min(self.0.len());
            let end = start.saturating_add(len).min(self.0.len());
            Ok(self.0[start..end].to_vec())
        }
    }

    fn images_of(name: &str) -> Vec<Image> {
        let b = fixture(name);
        let len = b.len() as u64;
        read_images(&mut Bytes(b), &[Extent { offset: 0, len }]).unwrap()
    }

    #[test]
    fn the_header_says_where_the_xml_is() {
        let b = fixture("win11-24h2-x64.wim");
        let h = parse_header(&b[..HEADER_LEN]).unwrap();
        assert_eq!(h.image_count, 3);
        assert_eq!(h.xml.flags & COMPRESSED, 0);
        assert_eq!(h.xml.size, h.xml.original_size);
        assert_eq!(h.xml.offset + h.xml.size, b.len() as u64);
        assert_eq!(
            parse_header(b"MSWIM\0\0\0short"),
            Err(WimError::Bad("the header is cut short at 13 bytes".into()))
        );
        assert_eq!(parse_header(&[0u8; 208]), Err(WimError::NotWim));
    }

    #[test]
    fn a_multi_edition_wim_lists_its_images() {
        let images = images_of("win11-24h2-x64.wim");
        let names: Vec<&str> = images.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(
            names,
            ["Windows 11 Home", "Windows 11 Pro", "Windows 11 Education"]
        );
        let pro = &images[1];
        assert_eq!(pro.index, 2);
        assert_eq!(pro.edition_id.as_deref(), Some("Professional"));
        assert_eq!(pro.arch, Some(Arch::X64));
        assert_eq!(
            (pro.major, pro.minor, pro.build, pro.spbuild),
            (Some(10), Some(0), Some(26100), Some(1742))
        );
        assert_eq!(pro.windows(), "Windows 11 24H2 x64");
        assert_eq!(pro.full_build().as_deref(), Some("26100.1742"));
        assert!(images.iter().all(Image::is_windows11_x64));
        assert_eq!(summary(&images), "Windows 11 24H2 x64");
        assert_eq!(pick(&images, None).unwrap().index, 2);
    }

    #[test]
    fn an_esd_reads_the_same() {
        assert_eq!(
            images_of("win11-24h2-x64.esd"),
            images_of("win11-24h2-x64.wim")
        );
    }

    #[test]
    fn other_windows_are_named_for_what_they_are() {
        let w10 = images_of("win10-22h2-x64.wim");
        assert_eq!(summary(&w10), "Windows 10 22H2 x64");
        assert!(!w10[0].is_windows11_x64());
        let arm = images_of("win11-24h2-arm64.wim");
        assert_eq!(summary(&arm), "Windows 11 24H2 ARM64");
        assert!(!arm[0].is_windows11_x64());
        let home = images_of("win11-23h2-x64-home.wim");
        assert_eq!(summary(&home), "Windows 11 23H2 x64");
        // No Pro: the first.
        assert_eq!(pick(&home, None).unwrap().name, "Windows 11 Home");
    }

    fn image(index: u32, name: &str, edition: Option<&str>, build: u32, kind: &str) -> Image {
        Image {
            index,
            name: name.into(),
            display_name: None,
            edition_id: edition.map(String::from),
            installation_type: Some(kind.into()),
            arch: Some(Arch::X64),
            major: Some(10),
            minor: Some(0),
            build: Some(build),
            spbuild: None,
        }
    }

    #[test]
    fn releases_by_build_and_unknown_builds_by_number() {
        assert_eq!(
            image(1, "a", None, 26200, "Client").windows(),
            "Windows 11 25H2 x64"
        );
        assert_eq!(
            image(1, "a", None, 22000, "Client").windows(),
            "Windows 11 21H2 x64"
        );
        assert_eq!(
            image(1, "a", None, 27000, "Client").windows(),
            "Windows 11 build 27000 x64"
        );
        assert!(image(1, "a", None, 27000, "Client").is_windows11_x64());
        assert!(!image(1, "a", None, 21999, "Client").is_windows11_x64());
        // Server 2025 shares 24H2's build; it is not Windows 11.
        let server = image(1, "Windows Server 2025 Standard", None, 26100, "Server");
        assert_eq!(server.windows(), "Windows Server build 26100 x64");
        assert!(!server.is_windows11_x64());
        let mut old = image(1, "a", None, 9600, "Client");
        old.major = Some(6);
        old.minor = Some(3);
        assert_eq!(old.windows(), "Windows 6.3 build 9600 x64");
        let mut bare = image(1, "a", None, 1, "Client");
        (bare.build, bare.arch) = (None, None);
        assert_eq!(
            bare.windows(),
            "Windows (version not given) (architecture not given)"
        );
        let mut odd = image(1, "a", None, 26100, "Client");
        odd.arch = Some(Arch::from_number(5));
        assert_eq!(odd.windows(), "Windows 11 24H2 architecture 5");
        assert_eq!(Arch::from_number(0).to_string(), "x86");
    }

    #[test]
    fn the_pro_edition_is_picked_unless_another_is_asked_for() {
        let images = [
            image(1, "Windows 11 Home", Some("Core"), 26100, "Client"),
            image(
                2,
                "Windows 11 Pro N",
                Some("ProfessionalN"),
                26100,
                "Client",
            ),
            image(
                3,
                "Windows 11 Pro Education",
                Some("ProfessionalEducation"),
                26100,
                "Client",
            ),
            image(4, "Windows 11 Pro", Some("Professional"), 26100, "Client"),
        ];
        assert_eq!(pick(&images, None).unwrap().index, 4);
        // A renamed Pro keeps its edition id.
        let mut renamed = images.clone();
        renamed[3].name = "Windows 11 Professional".into();
        assert_eq!(pick(&renamed, None).unwrap().index, 4);
        // Without the id: the name.
        let mut no_ids = images.to_vec();
        for i in &mut no_ids {
            i.edition_id = None;
        }
        assert_eq!(pick(&no_ids, None).unwrap().index, 4);
        no_ids.pop();
        assert_eq!(pick(&no_ids, None).unwrap().index, 2);
        assert_eq!(pick(&images, Some("windows 11 pro n")).unwrap().index, 2);
        assert_eq!(pick(&images, Some("Core")).unwrap().index, 1);
        assert_eq!(
            pick(&images, Some("Windows 11 Ultimate")),
            Err(PickError::Unknown("Windows 11 Ultimate".into()))
        );
        assert_eq!(pick(&[], None), Err(PickError::Empty));
    }

    #[test]
    fn damaged_files_say_what_is_wrong() {
        let mut b = fixture("win11-24h2-x64.wim");
        let len = b.len() as u64;
        let whole = [Extent { offset: 0, len }];
        let mut compressed = b.clone();
        compressed[XML_RESHDR + 7] |= COMPRESSED;
        assert_eq!(
            read_images(&mut Bytes(compressed), &whole),
            Err(WimError::Bad("its XML resource is compressed".into()))
        );
        // The XML said to be past the end.
        b[XML_RESHDR + 8..XML_RESHDR + 16].copy_from_slice(&len.to_le_bytes());
        let err = read_images(&mut Bytes(b), &whole).unwrap_err();
        assert!(err.to_string().contains("lies beyond its"), "{err}");
        assert_eq!(
            decode_xml(&[0x3c]),
            Err(WimError::Bad("the XML has an odd number of bytes".into()))
        );
        assert!(
            parse_xml("<NOTWIM/>")
                .unwrap_err()
                .to_string()
                .contains("<NOTWIM>")
        );
        assert!(parse_xml("<WIM><IMAGE/></WIM>").is_err());
    }

    #[test]
    fn a_file_split_over_extents_is_read_across_them() {
        let b = fixture("win11-24h2-x64.wim");
        let n = b.len() as u64;
        // The file's first 1000 bytes at 9000, the rest at 100 of the image.
        let mut img = vec![0u8; 10_000];
        img[9000..10_000].copy_from_slice(&b[..1000]);
        img[100..100 + (n as usize - 1000)].copy_from_slice(&b[1000..]);
        let extents = [
            Extent {
                offset: 9000,
                len: 1000,
            },
            Extent {
                offset: 100,
                len: n - 1000,
            },
        ];
        let mut r = Bytes(img);
        assert_eq!(read_range(&mut r, &extents, 990, 20).unwrap(), b[990..1010]);
        assert_eq!(
            read_images(&mut r, &extents).unwrap(),
            images_of("win11-24h2-x64.wim")
        );
        assert!(read_range(&mut r, &extents, n - 5, 10).is_err());
    }
}
