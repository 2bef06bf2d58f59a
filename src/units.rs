//! Sizes as users type them (`80G`, `80GB`, `80GiB`, `81920M`) and as we
//! print them. All units are binary: `G`, `GB` and `GiB` all mean 2^30.

use anyhow::{Result, bail};

const KIB: u64 = 1024;
const MIB: u64 = KIB * 1024;
const GIB: u64 = MIB * 1024;
const TIB: u64 = GIB * 1024;

/// Parse a size into bytes. A bare number is taken as GiB, since that is
/// what every size `bkt vm` asks for is counted in.
pub fn parse_size(input: &str) -> Result<u64> {
    let s = input.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        bail!("invalid size {input:?}: expected a number with a unit, such as 80G or 81920M");
    }
    let n: u64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid size {input:?}: the number is too large"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "g" | "gb" | "gib" => GIB,
        "m" | "mb" | "mib" => MIB,
        "t" | "tb" | "tib" => TIB,
        "k" | "kb" | "kib" => KIB,
        other => bail!(
            "invalid size {input:?}: unknown unit {other:?} (use M, G or T, e.g. 80G or 81920M)"
        ),
    };
    let bytes = n
        .checked_mul(mult)
        .ok_or_else(|| anyhow::anyhow!("invalid size {input:?}: too large"))?;
    if bytes == 0 {
        bail!("invalid size {input:?}: must be more than zero");
    }
    Ok(bytes)
}

/// `8 GiB`, `23.1 GiB`, `512 MiB`: one decimal only where it says something.
pub fn human(bytes: u64) -> String {
    let (v, unit) = if bytes >= TIB {
        (bytes as f64 / TIB as f64, "TiB")
    } else if bytes >= GIB {
        (bytes as f64 / GIB as f64, "GiB")
    } else if bytes >= MIB {
        (bytes as f64 / MIB as f64, "MiB")
    } else if bytes >= KIB {
        (bytes as f64 / KIB as f64, "KiB")
    } else {
        return format!("{bytes} B");
    };
    if (v - v.round()).abs() < 0.05 {
        format!("{} {unit}", v.round() as u64)
    } else {
        format!("{v:.1} {unit}")
    }
}

/// GiB with one decimal, for the `used/size` column.
pub fn gib(bytes: u64) -> String {
    let v = bytes as f64 / GIB as f64;
    if (v - v.round()).abs() < 0.05 {
        format!("{}", v.round() as u64)
    } else {
        format!("{v:.1}")
    }
}

/// A size as people type it on the command line: `8G`, `3584M`, `1T`
/// (exact, in the largest unit that divides it).
pub fn typed(bytes: u64) -> String {
    for (unit, mult) in [("T", TIB), ("G", GIB), ("M", MIB), ("K", KIB)] {
        if bytes >= mult && bytes.is_multiple_of(mult) {
            return format!("{}{unit}", bytes / mult);
        }
    }
    format!("{}K", bytes.div_ceil(KIB))
}

pub const fn gib_bytes(n: u64) -> u64 {
    n * GIB
}

pub const fn mib(bytes: u64) -> u64 {
    bytes / MIB
}

/// How long a VM may sit unused before `bkt` saves it to disk: `15m`,
/// `20s`, `1h`, `90` (minutes), or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoSave {
    Off,
    After(std::time::Duration),
}

impl AutoSave {
    /// What new VMs get: a quarter of an hour unused.
    pub const DEFAULT: AutoSave = AutoSave::After(std::time::Duration::from_secs(15 * 60));

    /// The manifest's number: seconds, 0 for off.
    pub fn from_secs(secs: u64) -> AutoSave {
        match secs {
            0 => AutoSave::Off,
            s => AutoSave::After(std::time::Duration::from_secs(s)),
        }
    }

    pub fn as_secs(self) -> u64 {
        match self {
            AutoSave::Off => 0,
            AutoSave::After(d) => d.as_secs(),
        }
    }
}

impl std::fmt::Display for AutoSave {
    /// The way a user types it: `15m`, `1h30m`, `20s`, `off`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = match self {
            AutoSave::Off => return f.write_str("off"),
            AutoSave::After(d) => d.as_secs(),
        };
        let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
        let mut out = String::new();
        for (n, unit) in [(h, "h"), (m, "m"), (s, "s")] {
            if n > 0 {
                out.push_str(&format!("{n}{unit}"));
            }
        }
        f.write_str(&out)
    }
}

impl std::str::FromStr for AutoSave {
    type Err = String;

    /// `off`, or a duration of at least 10 seconds and at most a week: a
    /// number with `s`, `m` or `h` (a bare number is minutes), or several
    /// (`1h30m`).
    fn from_str(input: &str) -> std::result::Result<AutoSave, String> {
        let s = input.trim().to_ascii_lowercase();
        if matches!(s.as_str(), "off" | "never" | "no") {
            return Ok(AutoSave::Off);
        }
        let bad = || {
            format!("invalid duration {input:?}: expected off, or a time such as 15m, 90s or 1h")
        };
        if s.is_empty() {
            return Err(bad());
        }
        let mut total: u64 = 0;
        let mut rest = s.as_str();
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(bad());
            }
            let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit = rest.chars().next();
            let mult = match unit {
                Some('s') => 1,
                Some('m') => 60,
                Some('h') => 3600,
                None if total == 0 => 60,
                _ => return Err(bad()),
            };
            rest = unit.map_or(rest, |u| &rest[u.len_utf8()..]);
            total = n
                .checked_mul(mult)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(bad)?;
        }
        if total < 10 {
            return Err(format!(
                "invalid duration {input:?}: at least 10s (saving takes a moment; off turns it off)"
            ));
        }
        if total > 7 * 24 * 3600 {
            return Err(format!(
                "invalid duration {input:?}: at most a week (168h), or off"
            ));
        }
        Ok(AutoSave::After(std::time::Duration::from_secs(total)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_spellings_are_binary() {
        for s in ["80G", "80GB", "80GiB", "81920M", "80g", "80", " 80 G"] {
            assert_eq!(parse_size(s).unwrap(), 80 * GIB, "{s}");
        }
        assert_eq!(parse_size("1T").unwrap(), TIB);
        assert_eq!(parse_size("512MiB").unwrap(), 512 * MIB);
    }

    #[test]
    fn bad_sizes_say_why() {
        assert_eq!(
            parse_size("lots").unwrap_err().to_string(),
            "invalid size \"lots\": expected a number with a unit, such as 80G or 81920M"
        );
        assert_eq!(
            parse_size("80X").unwrap_err().to_string(),
            "invalid size \"80X\": unknown unit \"x\" (use M, G or T, e.g. 80G or 81920M)"
        );
        assert!(parse_size("0G").is_err());
        assert!(parse_size("-5G").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
        assert!(parse_size("18446744073709551615T").is_err());
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(8 * GIB), "8 GiB");
        assert_eq!(human(23 * GIB + GIB / 10), "23.1 GiB");
        assert_eq!(human(512 * MIB), "512 MiB");
        assert_eq!(human(100), "100 B");
        assert_eq!(gib(80 * GIB), "80");
        assert_eq!(gib(200704), "0");
        assert_eq!(gib(23 * GIB + GIB / 10), "23.1");
    }

    #[test]
    fn typed_sizes_parse_back() {
        assert_eq!(typed(8 * GIB), "8G");
        assert_eq!(typed(3 * GIB + 512 * MIB), "3584M");
        assert_eq!(typed(TIB), "1T");
        for b in [8 * GIB, 3584 * MIB, TIB, 80 * GIB] {
            assert_eq!(parse_size(&typed(b)).unwrap(), b);
        }
    }
    #[test]
    fn auto_save_reads_what_users_type() {
        let secs = |t: &str| t.parse::<AutoSave>().map(AutoSave::as_secs);
        assert_eq!(secs("15m"), Ok(900));
        assert_eq!(secs("15"), Ok(900), "a bare number is minutes");
        assert_eq!(secs("20s"), Ok(20));
        assert_eq!(secs("1h30m"), Ok(5400));
        assert_eq!(secs(" 2H "), Ok(7200));
        assert_eq!(secs("off"), Ok(0));
        assert_eq!(secs("168h"), Ok(604_800));
        for bad in [
            "",
            "m",
            "15x",
            "1h30",
            "-5m",
            "5s",
            "169h",
            "99999999999999999999h",
            "1.5h",
        ] {
            assert!(secs(bad).is_err(), "{bad:?} was taken");
        }
        assert_eq!(
            secs("5s").unwrap_err(),
            "invalid duration \"5s\": at least 10s (saving takes a moment; off turns it off)"
        );
    }

    #[test]
    fn auto_save_prints_as_typed() {
        for t in ["15m", "20s", "1h30m", "2h", "1h1s", "off"] {
            assert_eq!(t.parse::<AutoSave>().unwrap().to_string(), t);
        }
        assert_eq!(AutoSave::from_secs(0), AutoSave::Off);
        assert_eq!(AutoSave::DEFAULT.to_string(), "15m");
    }
}
