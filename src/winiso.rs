//! The Windows 11 ISO from Microsoft: the request sequence public clients
//! use today (the download page, a session, the ov-df challenge, the SKU
//! and link endpoints; see docs/windows-iso.md of the shared notes) and a
//! pure parser for each answer. Nothing here was tried against Microsoft:
//! it is tested against a local stand-in that answers as specified.

// why: part of the download's transport, as src/download.rs: its HTTP
// requests, the session id's random bytes and the challenge's clock.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::time::Duration;

use anyhow::{Result, anyhow};
use serde::Deserialize;

use crate::download::shown;
use crate::settings::Download;
use crate::ui::HintExt;

/// Where a user is sent when Microsoft refuses bkt.
pub const MANUAL_PAGE: &str = "https://www.microsoft.com/software-download/windows11";
/// "Windows 11 (multi-edition ISO for x64 devices)" in 2026, which clients
/// fall back to when the page lists none.
pub const FALLBACK_EDITION: &str = "3321";
pub const DEFAULT_LANGUAGE: &str = "English (United States)";
const PROFILE: &str = "606624d44113";
const INSTANCE_ID: &str = "560dc9f3-1aa5-4a2f-b63c-9e18f8d0e175";
const ORG_ID: &str = "y6jn8c31";

/// The three Microsoft hosts, as base URLs (the settings override them).
#[derive(Debug, Clone)]
pub struct Hosts {
    pub www: String,
    pub vlscppe: String,
    pub ovdf: String,
}

impl Hosts {
    pub fn of(s: &Download) -> Hosts {
        let or = |v: &Option<String>, d: &str| {
            v.clone()
                .unwrap_or_else(|| d.to_string())
                .trim_end_matches('/')
                .to_string()
        };
        Hosts {
            www: or(&s.ms_www_url, "https://www.microsoft.com"),
            vlscppe: or(&s.ms_vlscppe_url, "https://vlscppe.microsoft.com"),
            ovdf: or(&s.ms_ovdf_url, "https://ov-df.microsoft.com"),
        }
    }
}

/// Why the flow stopped, by step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Microsoft refuses this address (Sentinel, 715-123130).
    Refused(String),
    /// An answer is not what the public clients expect: the page or the
    /// API changed.
    Changed(String),
}

/// The product edition id of the first "Windows 11" option on the page.
pub fn edition_id(page: &str) -> Option<String> {
    let re = regex::Regex::new(r#"(?i)<option[^>]*value="(\d+)"[^>]*>\s*Windows 11"#).unwrap();
    re.captures(page).map(|c| c[1].to_string())
}

/// The page's table of published SHA-256s: (language as written, hash in
/// lower case).
pub fn published_hashes(page: &str) -> Vec<(String, String)> {
    let re = regex::Regex::new(
        r"(?is)<td[^>]*>\s*([^<]+?)\s*</td>\s*<td[^>]*>\s*([0-9a-f]{64})\s*</td>",
    )
    .unwrap();
    re.captures_iter(page)
        .map(|c| (c[1].to_string(), c[2].to_ascii_lowercase()))
        .collect()
}

/// A language as the hash table and the SKU list both can name it:
/// "English 64-bit" and "English (United States)" are one.
fn language_key(name: &str) -> String {
    let n = name.to_ascii_lowercase();
    let n = n.trim_end_matches("64-bit").trim_end_matches("x64").trim();
    match n {
        "english (united states)" => "english".to_string(),
        _ => n.to_string(),
    }
}

/// The published hash of `language`'s ISO, when the page has one.
pub fn hash_for(hashes: &[(String, String)], language: &str) -> Option<String> {
    let want = language_key(language);
    hashes
        .iter()
        .find(|(l, _)| language_key(l) == want)
        .map(|(_, h)| h.clone())
}

/// `w` and `rticks` from ov-df's mdt.js.
pub fn challenge(js: &str) -> std::result::Result<(String, String), Failure> {
    let w = regex::Regex::new(r"[?&]w=([A-F0-9]+)").unwrap();
    let t = regex::Regex::new(r#"rticks="\+?(\d+)"#).unwrap();
    match (w.captures(js), t.captures(js)) {
        (Some(w), Some(t)) => Ok((w[1].to_string(), t[1].to_string())),
        (None, _) => Err(Failure::Changed(
            "mdt.js has no `w=` challenge (regex [?&]w=([A-F0-9]+))".into(),
        )),
        (_, None) => Err(Failure::Changed(
            "mdt.js has no `rticks` (regex rticks=\"+?(\\d+))".into(),
        )),
    }
}

/// One language of the edition.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Sku {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Language")]
    pub language: String,
    #[serde(rename = "LocalizedLanguage", default)]
    pub localized: String,
}

#[derive(Debug, Deserialize)]
struct ApiError {
    #[serde(rename = "Type", default)]
    kind: Option<serde_json::Value>,
    #[serde(rename = "Key", default)]
    key: Option<String>,
    #[serde(rename = "Value", default)]
    value: Option<String>,
}

/// Output of getskuinformationbyproductedition: `Skus[]`, or `Errors[]`.
#[derive(Debug, Deserialize)]
struct SkuAnswer {
    #[serde(rename = "Skus", default)]
    skus: Option<Vec<Sku>>,
    #[serde(rename = "Errors", default)]
    errors: Option<Vec<ApiError>>,
}

#[derive(Debug, Deserialize)]
struct DownloadOption {
    #[serde(rename = "Uri")]
    uri: String,
    #[serde(rename = "DownloadType")]
    kind: i64,
}

/// Output of GetProductDownloadLinksBySku.
#[derive(Debug, Deserialize)]
struct LinkAnswer {
    #[serde(rename = "ProductDownloadOptions", default)]
    options: Option<Vec<DownloadOption>>,
    #[serde(rename = "Errors", default)]
    errors: Option<Vec<ApiError>>,
}

/// A refusal or another error of `Errors[]`.
fn api_errors(errors: &[ApiError]) -> Failure {
    let text: Vec<String> = errors
        .iter()
        .map(|e| {
            let kind = e.kind.as_ref().map(|k| k.to_string()).unwrap_or_default();
            format!(
                "{}{}{}",
                e.key.as_deref().unwrap_or(""),
                if kind.is_empty() {
                    String::new()
                } else {
                    format!(" (Type {kind})")
                },
                e.value
                    .as_deref()
                    .map(|v| format!(": {v}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    // Microsoft's words are data: nothing in them may act on a terminal.
    let text = crate::ui::escaped(&text.join("; "));
    let refused = errors.iter().any(|e| {
        e.key.as_deref() == Some("ErrorSettings.SentinelReject")
            || e.kind.as_ref().and_then(|k| k.as_i64()) == Some(9)
            || e.value.as_deref().unwrap_or("").contains("715-123130")
    });
    if refused {
        Failure::Refused(text)
    } else {
        Failure::Changed(format!("an error answer: {text}"))
    }
}

pub fn skus(json: &str) -> std::result::Result<Vec<Sku>, Failure> {
    let a: SkuAnswer = serde_json::from_str(json)
        .map_err(|e| Failure::Changed(format!("not the JSON expected ({e})")))?;
    match (a.skus, a.errors) {
        (_, Some(errs)) if !errs.is_empty() => Err(api_errors(&errs)),
        (Some(s), _) if !s.is_empty() => {
            // The id goes into the link step's URL and onto the screen:
            // Microsoft's are decimal numbers, anything else is a change.
            match s
                .iter()
                .find(|k| k.id.is_empty() || !k.id.chars().all(|c| c.is_ascii_digit()))
            {
                Some(k) => Err(Failure::Changed(format!(
                    "a SKU id is not a number (\"{}\" for {})",
                    crate::ui::escaped(&k.id),
                    crate::ui::escaped(&k.language)
                ))),
                None => Ok(s),
            }
        }
        _ => Err(Failure::Changed("no `Skus` in the answer".into())),
    }
}

/// The x64 ISO's link (`DownloadType` 1).
pub fn x64_link(json: &str) -> std::result::Result<String, Failure> {
    let a: LinkAnswer = serde_json::from_str(json)
        .map_err(|e| Failure::Changed(format!("not the JSON expected ({e})")))?;
    if let Some(errs) = a.errors.filter(|e| !e.is_empty()) {
        return Err(api_errors(&errs));
    }
    let opts = a.options.unwrap_or_default();
    let uri = opts
        .iter()
        .find(|o| o.kind == 1)
        .map(|o| o.uri.clone())
        .ok_or_else(|| {
            Failure::Changed(format!(
                "no x64 link (DownloadType 1) among {} `ProductDownloadOptions`",
                opts.len()
            ))
        })?;
    // Microsoft hands out https links only; nothing but HTTPS vouches for
    // a file whose page publishes no hash, so anything else is refused.
    if !uri
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
    {
        return Err(Failure::Changed(format!(
            "the x64 link is not an https URL ({})",
            crate::ui::escaped(&shown(&uri))
        )));
    }
    Ok(uri)
}

/// The ISO's file name: the last part of the link's path, when it is a
/// plain `NAME.iso`.
pub fn iso_file_name(uri: &str) -> Option<String> {
    let path = uri.split(['?', '#']).next()?;
    let name = path.rsplit('/').next()?;
    let ok = name.len() > 4
        && name.to_ascii_lowercase().ends_with(".iso")
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c));
    ok.then(|| name.to_string())
}

/// Microsoft's name of the language of a POSIX locale (`de_DE.UTF-8`).
pub fn locale_language(locale: &str) -> Option<&'static str> {
    let tag = locale.split(['.', '@']).next()?;
    let (lang, region) = tag.split_once('_').unwrap_or((tag, ""));
    Some(match (lang, region) {
        ("en", "US") | ("en", "") => "English (United States)",
        ("en", _) => "English International",
        ("fr", "CA") => "French Canadian",
        ("fr", _) => "French",
        ("es", "MX") => "Spanish (Mexico)",
        ("es", _) => "Spanish",
        ("pt", "BR") => "Brazilian Portuguese",
        ("pt", _) => "Portuguese",
        ("zh", "TW" | "HK") => "Chinese Traditional",
        ("zh", _) => "Chinese Simplified",
        ("sr", _) => "Serbian Latin",
        ("nb" | "nn" | "no", _) => "Norwegian",
        (l, _) => {
            [
                ("ar", "Arabic"),
                ("bg", "Bulgarian"),
                ("hr", "Croatian"),
                ("cs", "Czech"),
                ("da", "Danish"),
                ("nl", "Dutch"),
                ("et", "Estonian"),
                ("fi", "Finnish"),
                ("de", "German"),
                ("el", "Greek"),
                ("he", "Hebrew"),
                ("hu", "Hungarian"),
                ("it", "Italian"),
                ("ja", "Japanese"),
                ("ko", "Korean"),
                ("lv", "Latvian"),
                ("lt", "Lithuanian"),
                ("pl", "Polish"),
                ("ro", "Romanian"),
                ("ru", "Russian"),
                ("sk", "Slovak"),
                ("sl", "Slovenian"),
                ("sv", "Swedish"),
                ("th", "Thai"),
                ("tr", "Turkish"),
                ("uk", "Ukrainian"),
            ]
            .iter()
            .find(|(code, _)| *code == l)?
            .1
        }
    })
}

/// A random version-4 UUID, the session id.
fn session_id() -> Result<String> {
    use std::io::Read;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| anyhow!("cannot read /dev/urandom for a session id: {e}"))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

/// The steps, as errors and `-v` name them.
pub const STEPS: [&str; 5] = [
    "step 1/5, the download page",
    "step 2/5, the session (vlscppe)",
    "step 3/5, the ov-df challenge",
    "step 4/5, the languages (getskuinformationbyproductedition)",
    "step 5/5, the download link (GetProductDownloadLinksBySku)",
];

/// The error a user sees for a failed step, with the way out.
pub fn step_error(step: usize, f: Failure) -> anyhow::Error {
    let step = STEPS[step - 1];
    match f {
        Failure::Refused(why) => Err::<(), _>(anyhow!(
            "Microsoft refused to hand out the Windows 11 ISO to this address ({step}: {why})"
        ))
        .hint(format!(
            "Microsoft blocks some addresses for a while (VPNs, data centres, many downloads); a browser on this network is refused too. Try again later or from another network, or download the ISO in a browser from {MANUAL_PAGE} and then run: bkt vm create NAME --iso PATH"
        ))
        .unwrap_err(),
        Failure::Changed(why) => Err::<(), _>(anyhow!(
            "Microsoft's answer at {step} is not what bkt expects: {why}; Microsoft may have changed its page or API"
        ))
        .hint(format!(
            "try again later; if it persists, download the ISO in a browser from {MANUAL_PAGE} and run: bkt vm create NAME --iso PATH (or use --iso-url with a mirror)"
        ))
        .unwrap_err(),
    }
}

/// A session with Microsoft's download service (steps 1-3 done).
pub struct Session {
    agent: ureq::Agent,
    hosts: Hosts,
    id: String,
    pub edition: String,
    /// Whether the page listed the edition (else the fallback is used).
    pub edition_listed: bool,
    pub hashes: Vec<(String, String)>,
}

/// GET `url` with an optional Referer: (status, body). `-v` shows the
/// request line (bkt's own session id is in it; no cookie or token is).
fn get(agent: &ureq::Agent, url: &str, referer: Option<&str>) -> Result<(u16, String), String> {
    crate::exec::log_line(&format!("GET {}", shown_if_signed(url)));
    let mut req = agent.get(url);
    if let Some(r) = referer {
        req = req.header("Referer", r);
    }
    let mut resp = req.call().map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(8 << 20)
        .read_to_string()
        .map_err(|e| e.to_string())?;
    Ok((status, body))
}

/// Microsoft's API URLs carry no secret; only a download link's query
/// (its signature) is hidden.
fn shown_if_signed(url: &str) -> String {
    if url.contains("software-download-connector") || !url.contains(".iso") {
        url.to_string()
    } else {
        shown(url)
    }
}

/// One step's GET, its failures named by the step.
fn step_get(agent: &ureq::Agent, step: usize, url: &str, referer: Option<&str>) -> Result<String> {
    match get(agent, url, referer) {
        Ok((200, body)) => Ok(body),
        Ok((status, _)) => Err(step_error(
            step,
            Failure::Changed(format!("HTTP {status} from {url} (expected 200)")),
        )),
        Err(e) => Err(anyhow!("{}: cannot reach {url}: {e}", STEPS[step - 1]))
            .hint("check the network connection, then run it again"),
    }
}

impl Session {
    /// Steps 1-3: the page (edition and hashes), a session, the challenge.
    pub fn start(s: &Download) -> Result<Session> {
        let agent = crate::download::agent(s)?;
        let hosts = Hosts::of(s);
        let page = step_get(
            &agent,
            1,
            &format!("{}/en-us/software-download/windows11", hosts.www),
            None,
        )?;
        let listed = edition_id(&page);
        let id = session_id()?;
        step_get(
            &agent,
            2,
            &format!("{}/tags?org_id={ORG_ID}&session_id={id}", hosts.vlscppe),
            None,
        )?;
        let js = step_get(
            &agent,
            3,
            &format!(
                "{}/mdt.js?instanceId={INSTANCE_ID}&PageId=si&session_id={id}",
                hosts.ovdf
            ),
            None,
        )?;
        let (w, rticks) = challenge(&js).map_err(|f| step_error(3, f))?;
        // The protocol's own pause between the script and its reply (the
        // clients wait about 0.2 s, as a browser running it would).
        std::thread::sleep(Duration::from_millis(200));
        let mdt = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        step_get(
            &agent,
            3,
            &format!(
                "{}/?session_id={id}&CustomerId={INSTANCE_ID}&PageId=si&w={w}&mdt={mdt}&rticks={rticks}",
                hosts.ovdf
            ),
            None,
        )?;
        Ok(Session {
            agent,
            hosts,
            id,
            edition_listed: listed.is_some(),
            edition: listed.unwrap_or_else(|| FALLBACK_EDITION.to_string()),
            hashes: published_hashes(&page),
        })
    }

    /// Step 4: the languages, tried three times 2 s apart (it is flaky).
    pub fn skus(&self) -> Result<Vec<Sku>> {
        let url = format!(
            "{}/software-download-connector/api/getskuinformationbyproductedition?profile={PROFILE}&productEditionId={}&SKU=undefined&friendlyFileName=undefined&Locale=en-US&sessionID={}",
            self.hosts.www, self.edition, self.id
        );
        let mut last = None;
        for attempt in 0..3 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_secs(2));
            }
            match step_get(&self.agent, 4, &url, None).map(|b| skus(&b)) {
                Ok(Ok(s)) => return Ok(s),
                Ok(Err(f @ Failure::Refused(_))) => return Err(step_error(4, f)),
                Ok(Err(f)) => last = Some(step_error(4, f)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("three tries"))
    }

    /// Step 5: the x64 link for a SKU.
    pub fn link(&self, sku: &str) -> Result<String> {
        let url = format!(
            "{}/software-download-connector/api/GetProductDownloadLinksBySku?profile={PROFILE}&productEditionId=undefined&SKU={sku}&friendlyFileName=undefined&Locale=en-US&sessionID={}",
            self.hosts.www, self.id
        );
        let body = step_get(&self.agent, 5, &url, Some(MANUAL_PAGE))?;
        x64_link(&body).map_err(|f| step_error(5, f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = include_str!("../fixtures/microsoft/page.html");

    #[test]
    fn the_page_gives_the_edition_and_the_hashes() {
        assert_eq!(edition_id(PAGE).as_deref(), Some("3321"));
        assert_eq!(
            edition_id("<select><option value=\"\">Select</option></select>"),
            None
        );
        let h = published_hashes(PAGE);
        assert_eq!(h.len(), 3);
        assert_eq!(
            hash_for(&h, "English (United States)").as_deref(),
            Some(&h[0].1[..])
        );
        assert_eq!(h[0].0, "English 64-bit");
        assert_eq!(hash_for(&h, "German").as_deref(), Some(&h[2].1[..]));
        assert_eq!(
            hash_for(&h, "English International").as_deref(),
            Some(&h[1].1[..])
        );
        assert_eq!(hash_for(&h, "Polish"), None);
    }

    #[test]
    fn the_challenge_gives_w_and_rticks() {
        let js = include_str!("../fixtures/microsoft/mdt.js");
        assert_eq!(
            challenge(js),
            Ok(("3F9A1C0B7E".to_string(), "638901234567890123".to_string()))
        );
        assert!(matches!(challenge("var x=1;"), Err(Failure::Changed(_))));
        assert!(matches!(
            challenge("a?w=ABC;"),
            Err(Failure::Changed(m)) if m.contains("rticks")
        ));
    }

    #[test]
    fn skus_links_and_refusals() {
        let s = skus(include_str!("../fixtures/microsoft/skus.json")).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].language, "English (United States)");
        assert_eq!(s[0].id, "19061");
        assert_eq!(s[2].localized, "Deutsch");
        let link = x64_link(include_str!("../fixtures/microsoft/links.json")).unwrap();
        assert!(link.contains("/Win11_25H2_English_x64.iso?t="));
        assert_eq!(
            iso_file_name(&link).as_deref(),
            Some("Win11_25H2_English_x64.iso")
        );
        assert_eq!(
            x64_link(include_str!("../fixtures/microsoft/sentinel.json")),
            Err(Failure::Refused(
                "ErrorSettings.SentinelReject (Type 9): Sentinel marked this request as rejected."
                    .into()
            ))
        );
        assert!(matches!(skus("<html>"), Err(Failure::Changed(_))));
        assert_eq!(
            skus(r#"{"Skus":[{"Id":"1&SKU=2\u001b[31m","Language":"English"}]}"#),
            Err(Failure::Changed(
                "a SKU id is not a number (\"1&SKU=2\\x1b[31m\" for English)".into()
            ))
        );
        assert!(matches!(
            skus(r#"{"Skus":[{"Id":"","Language":"English"}]}"#),
            Err(Failure::Changed(m)) if m.contains("not a number")
        ));
        assert!(matches!(skus("{}"), Err(Failure::Changed(_))));
        assert!(matches!(
            x64_link(r#"{"ProductDownloadOptions":[{"Uri":"x","DownloadType":0}]}"#),
            Err(Failure::Changed(m)) if m.contains("DownloadType 1")
        ));
        assert_eq!(
            x64_link(
                r#"{"ProductDownloadOptions":[{"Uri":"http://d/W.iso?t=tok","DownloadType":1}]}"#
            ),
            Err(Failure::Changed(
                "the x64 link is not an https URL (http://d/W.iso?…)".into()
            ))
        );
        assert!(
            x64_link(r#"{"ProductDownloadOptions":[{"Uri":"HTTPS://d/W.iso","DownloadType":1}]}"#)
                .is_ok()
        );
        assert!(matches!(
            x64_link(r#"{"Errors":[{"Key":"Other","Type":3,"Value":"busy"}]}"#),
            Err(Failure::Changed(m)) if m.contains("Other (Type 3): busy")
        ));
    }

    #[test]
    fn file_names_and_shown_links() {
        assert_eq!(iso_file_name("https://m/x/../a b.iso"), None);
        assert_eq!(iso_file_name("https://m/x/.iso"), None);
        assert_eq!(iso_file_name("https://m/x/file.img"), None);
        assert_eq!(
            iso_file_name("https://m/Win11.ISO#x").as_deref(),
            Some("Win11.ISO")
        );
        assert_eq!(shown("https://d/W.iso?t=secret&P1=2"), "https://d/W.iso?…");
        assert_eq!(shown("https://d/W.iso"), "https://d/W.iso");
    }

    #[test]
    fn locales_map_to_microsofts_names() {
        for (loc, want) in [
            ("en_US.UTF-8", Some("English (United States)")),
            ("en_GB.UTF-8", Some("English International")),
            ("de_DE.UTF-8", Some("German")),
            ("de_AT@euro", Some("German")),
            ("pt_BR", Some("Brazilian Portuguese")),
            ("fr_CA.UTF-8", Some("French Canadian")),
            ("zh_TW.UTF-8", Some("Chinese Traditional")),
            ("C", None),
            ("POSIX", None),
            ("C.UTF-8", None),
        ] {
            assert_eq!(locale_language(loc), want, "{loc}");
        }
    }

    #[test]
    fn session_ids_are_version_4_uuids() {
        let a = session_id().unwrap();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert_ne!(a, session_id().unwrap());
    }
}
