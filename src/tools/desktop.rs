//! Menu entries for the Linux desktop (freedesktop.org Desktop Entry
//! Specification 1.4, the newest desktop-file-validate 0.26 knows): rendering `.desktop` files, the shared-mime-info
//! database's `globs2` file (extension → MIME type), the check of an icon
//! (a PNG that decodes, of a size the icon theme has a place for), and
//! `update-desktop-database`.

use crate::exec::Cmd;

/// One launcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub comment: String,
    /// The command, one word each (quoted here as the spec says).
    pub exec: Vec<String>,
    /// A field code appended unquoted (`%F`: the files to open).
    pub field_code: Option<&'static str>,
    pub try_exec: String,
    pub icon: String,
    pub categories: &'static str,
    pub wm_class: Option<String>,
    pub mime_types: Vec<String>,
    /// bkt's marks: which VM on which connection, which app (none for the
    /// whole desktop). `destroy` and `--uninstall` go by these.
    pub vm: String,
    pub uri: String,
    pub app: Option<String>,
}

/// A value of type string: `\`, and the control characters the spec names,
/// escaped.
fn string_value(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// One argument of Exec: quoted when it holds a reserved character (with
/// `"`, `` ` ``, `$` and `\` escaped inside), `%` doubled. The string
/// escape of the whole value comes on top ([`string_value`]), so a literal
/// backslash in a quoted argument ends up as four.
pub fn exec_arg(arg: &str) -> String {
    let arg = arg.replace('%', "%%");
    let reserved = |c: char| " \t\n\"'\\><~|&;$*?#()`".contains(c);
    if !arg.is_empty() && !arg.contains(reserved) {
        return arg;
    }
    let mut out = String::from("\"");
    for c in arg.chars() {
        if matches!(c, '"' | '`' | '$' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The `.desktop` file.
pub fn render(e: &Entry) -> String {
    let mut exec: Vec<String> = e.exec.iter().map(|a| exec_arg(a)).collect();
    if let Some(f) = e.field_code {
        exec.push(f.to_string());
    }
    let mut out = String::from("[Desktop Entry]\nType=Application\nVersion=1.4\n");
    out.push_str(&format!("Name={}\n", string_value(&e.name)));
    out.push_str(&format!("Comment={}\n", string_value(&e.comment)));
    out.push_str(&format!("Exec={}\n", string_value(&exec.join(" "))));
    out.push_str(&format!("TryExec={}\n", string_value(&e.try_exec)));
    out.push_str(&format!("Icon={}\n", string_value(&e.icon)));
    out.push_str("Terminal=false\n");
    out.push_str(&format!("Categories={}\n", e.categories));
    if let Some(w) = &e.wm_class {
        out.push_str(&format!("StartupWMClass={}\n", string_value(w)));
    }
    if !e.mime_types.is_empty() {
        out.push_str(&format!("MimeType={};\n", e.mime_types.join(";")));
    }
    out.push_str(&format!("X-Bkt-VM={}\n", string_value(&e.vm)));
    out.push_str(&format!("X-Bkt-URI={}\n", string_value(&e.uri)));
    if let Some(a) = &e.app {
        out.push_str(&format!("X-Bkt-App={}\n", string_value(a)));
    }
    out
}

/// A key's value in a `.desktop` file bkt wrote (its `[Desktop Entry]`
/// group), unescaped as far as bkt escapes.
pub fn value_of(text: &str, key: &str) -> Option<String> {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))?;
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('s') => out.push(' '),
            Some(o) => out.push(o),
            None => {}
        }
    }
    Some(out)
}

/// One pattern of shared-mime-info's `globs2` (`WEIGHT:TYPE:GLOB[:FLAGS]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pub weight: u32,
    pub mime: String,
    pub glob: String,
    pub case_sensitive: bool,
}

/// Parse a `globs2` file (comments start with `#`).
pub fn parse_globs2(text: &str) -> Vec<Glob> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let mut f = l.splitn(4, ':');
            let weight = f.next()?.parse().ok()?;
            let mime = f.next()?.to_string();
            let glob = f.next()?.to_string();
            let case_sensitive = f
                .next()
                .is_some_and(|flags| flags.split(',').any(|x| x == "cs"));
            Some(Glob {
                weight,
                mime,
                glob,
                case_sensitive,
            })
        })
        .collect()
}

/// The MIME type of files ending in `ext` (`.docx`): the heaviest `*.ext`
/// pattern, the first one on a tie (the file's own order, as the spec
/// breaks ties).
pub fn mime_of(globs: &[Glob], ext: &str) -> Option<String> {
    let ext = ext.strip_prefix('.').unwrap_or(ext);
    if ext.is_empty() || ext.contains(['*', '?', '[']) {
        return None;
    }
    let want = format!("*.{ext}");
    let mut best: Option<&Glob> = None;
    for g in globs {
        let hit = if g.case_sensitive {
            g.glob == want
        } else {
            g.glob.eq_ignore_ascii_case(&want)
        };
        if hit && best.is_none_or(|b| g.weight > b.weight) {
            best = Some(g);
        }
    }
    best.map(|g| g.mime.clone())
}

/// The largest icon bkt writes, in either direction: the icon theme's
/// biggest usual size (`hicolor/512x512`); Windows's icons are 32 or 256.
pub const MAX_ICON: u32 = 512;

/// Width and height of an icon the guest sent, once it has decoded as a
/// PNG image of 1 to [`MAX_ICON`] pixels each way: the header alone could
/// be anything (the guest is not bkt's), and a file that does not decode
/// is one no menu can show. The decoder is the `png` crate's, its memory
/// limited well above what 512×512 at 16 bits and 4 channels needs.
pub fn icon_size(png: &[u8]) -> Result<(u32, u32), String> {
    if !png.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Err("not a PNG image".into());
    }
    let limits = png::Limits { bytes: 8 << 20 };
    let decoder = png::Decoder::new_with_limits(std::io::Cursor::new(png), limits);
    let mut reader = decoder
        .read_info()
        .map_err(|e| format!("its header does not read: {e}"))?;
    let (w, h) = reader.info().size();
    if w == 0 || h == 0 || w > MAX_ICON || h > MAX_ICON {
        return Err(format!(
            "it is {w}x{h} pixels, an icon is 1x1 to {MAX_ICON}x{MAX_ICON}"
        ));
    }
    let mut pixels = vec![0; reader.output_buffer_size().unwrap_or(0)];
    reader
        .next_frame(&mut pixels)
        .map_err(|e| format!("it does not decode: {e}"))?;
    Ok((w, h))
}

/// `update-desktop-database -q DIR`: the MIME cache of the menu entries in
/// DIR, so file managers offer the new launchers under "Open With".
pub fn update_desktop_database(dir: &str) -> Cmd {
    Cmd::new("update-desktop-database").arg("-q").arg(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fx(name: &str) -> String {
        crate::tools::fixture(&format!("mime/{name}"))
    }

    #[test]
    fn mime_types_from_the_real_database() {
        let g = parse_globs2(&fx("globs2"));
        assert!(g.len() > 500, "{}", g.len());
        assert_eq!(
            mime_of(&g, ".docx").as_deref(),
            Some("application/vnd.openxmlformats-officedocument.wordprocessingml.document")
        );
        assert_eq!(mime_of(&g, ".TXT").as_deref(), Some("text/plain"));
        assert_eq!(mime_of(&g, "rtf").as_deref(), Some("application/rtf"));
        assert_eq!(mime_of(&g, ".no-such-ext"), None);
        assert_eq!(mime_of(&g, ".*"), None);
        // A case-sensitive pattern matches only its own case.
        let cs = parse_globs2("50:text/x-c++src:*.C:cs\n50:text/x-csrc:*.c\n");
        assert_eq!(mime_of(&cs, ".C").as_deref(), Some("text/x-c++src"));
        assert_eq!(mime_of(&cs, ".c").as_deref(), Some("text/x-csrc"));
        // The heavier pattern wins; on a tie, the first.
        let w = parse_globs2("50:a/one:*.x\n60:a/two:*.x\n60:a/three:*.x\n");
        assert_eq!(mime_of(&w, ".x").as_deref(), Some("a/two"));
    }

    #[test]
    fn exec_quoting() {
        assert_eq!(exec_arg("/usr/bin/bkt"), "/usr/bin/bkt");
        assert_eq!(exec_arg("/opt/my tools/bkt"), "\"/opt/my tools/bkt\"");
        assert_eq!(exec_arg("a$b\"c\\d`e"), "\"a\\$b\\\"c\\\\d\\`e\"");
        assert_eq!(exec_arg("50%"), "50%%");
        assert_eq!(exec_arg(""), "\"\"");
        let e = Entry {
            name: "Word (windows)".into(),
            comment: "Word in the Windows VM windows".into(),
            exec: vec![
                r"/opt/a\b/bkt".into(),
                "vm".into(),
                "run".into(),
                "windows".into(),
                "word".into(),
            ],
            field_code: Some("%F"),
            try_exec: r"/opt/a\b/bkt".into(),
            icon: "bkt-windows-word".into(),
            categories: "Office;",
            wm_class: Some("bkt-windows-word".into()),
            mime_types: vec!["application/rtf".into(), "text/plain".into()],
            vm: "windows".into(),
            uri: "qemu:///system".into(),
            app: Some("word".into()),
        };
        let text = render(&e);
        assert_eq!(
            text,
            "[Desktop Entry]\nType=Application\nVersion=1.4\nName=Word (windows)\n\
             Comment=Word in the Windows VM windows\n\
             Exec=\"/opt/a\\\\\\\\b/bkt\" vm run windows word %F\nTryExec=/opt/a\\\\b/bkt\n\
             Icon=bkt-windows-word\nTerminal=false\nCategories=Office;\n\
             StartupWMClass=bkt-windows-word\nMimeType=application/rtf;text/plain;\n\
             X-Bkt-VM=windows\nX-Bkt-URI=qemu:///system\nX-Bkt-App=word\n"
        );
        assert_eq!(value_of(&text, "TryExec").as_deref(), Some(r"/opt/a\b/bkt"));
        assert_eq!(value_of(&text, "X-Bkt-App").as_deref(), Some("word"));
        assert_eq!(value_of(&text, "X-Bkt"), None);
    }

    /// A real PNG of that size, made by the `png` crate's encoder.
    fn png_of(w: u32, h: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let mut e = png::Encoder::new(&mut out, w, h);
        e.set_color(png::ColorType::Rgba);
        e.set_depth(png::BitDepth::Eight);
        let mut writer = e.write_header().unwrap();
        writer
            .write_image_data(&vec![0x80; (w * h * 4) as usize])
            .unwrap();
        writer.finish().unwrap();
        out
    }

    #[test]
    fn icons_are_pngs_that_decode_at_a_sane_size() {
        assert_eq!(icon_size(&png_of(48, 32)), Ok((48, 32)));
        assert_eq!(icon_size(&png_of(512, 1)), Ok((512, 1)));
        // The icons the discovery script sent (fixtures/guest).
        let apps = crate::tools::guest_agent::parse_apps(&crate::tools::fixture(
            "guest/apps-script-output.json",
        ))
        .unwrap();
        use base64::Engine;
        let icon = base64::engine::general_purpose::STANDARD
            .decode(apps[0].icon.as_ref().unwrap())
            .unwrap();
        assert_eq!(icon_size(&icon), Ok((32, 32)));
        // Cut short: the header reads, the pixels do not.
        let whole = png_of(64, 64);
        let err = icon_size(&whole[..whole.len() - 20]).unwrap_err();
        assert!(err.starts_with("it does not decode: "), "{err}");
        // Only the header: no image data at all.
        assert!(icon_size(&whole[..33]).is_err());
        // A header that claims 65535x65535 (its CRC made right), or 0 wide,
        // then a few bytes of image data: refused before any pixel is read.
        let header = |w: u32, h: u32| {
            let chunk = |png: &mut Vec<u8>, kind: &[u8], data: &[u8]| {
                let mut body = kind.to_vec();
                body.extend(data);
                png.extend((data.len() as u32).to_be_bytes());
                png.extend(&body);
                png.extend(crc32(&body).to_be_bytes());
            };
            let mut ihdr = w.to_be_bytes().to_vec();
            ihdr.extend(h.to_be_bytes());
            ihdr.extend([8, 6, 0, 0, 0]);
            let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
            chunk(&mut png, b"IHDR", &ihdr);
            chunk(&mut png, b"IDAT", &[0x78, 0x9c, 0x03, 0x00]);
            chunk(&mut png, b"IEND", &[]);
            png
        };
        assert_eq!(
            icon_size(&header(65535, 65535)),
            Err("it is 65535x65535 pixels, an icon is 1x1 to 512x512".into())
        );
        assert_eq!(
            icon_size(&header(513, 16)),
            Err("it is 513x16 pixels, an icon is 1x1 to 512x512".into())
        );
        let zero = icon_size(&header(0, 16)).unwrap_err();
        assert!(zero.starts_with("its header does not read: "), "{zero}");
        // Not a PNG.
        assert_eq!(
            icon_size(b"GIF89a\x01\0\x01\0"),
            Err("not a PNG image".into())
        );
        assert_eq!(icon_size(b""), Err("not a PNG image".into()));
    }

    /// The CRC-32 PNG chunks carry (ISO 3309, as the PNG spec gives it).
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for &b in bytes {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
}
