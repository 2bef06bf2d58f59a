//! Option groups that more than one command takes: below the commands, so
//! that `cli.rs` (which lists the commands) and the commands that flatten
//! these never import each other.

use clap::{Args, ValueEnum};

/// A setting that is on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

/// Where the downloads come from.
#[derive(Debug, Args, Clone, Default)]
pub struct DownloadSources {
    /// Where to get virtio-win.iso (a mirror) [default: the virtio-win project's stable URL].
    #[arg(long, value_name = "URL")]
    pub virtio_url: Option<String>,
    /// Where to get virtio-win-guest-tools.exe (with `download`).
    #[arg(long, value_name = "URL")]
    pub guest_tools_url: Option<String>,
    /// The SHA-256 virtio-win.iso must have.
    #[arg(long, value_name = "HEX")]
    pub virtio_sha256: Option<String>,
    /// Never touch the network: use the cache or say what to place where.
    #[arg(long)]
    pub offline: bool,
}

/// The Windows 11 ISO, for `download` (and the ISO it shares with `create`'s offer).
#[derive(Debug, Args, Clone, Default)]
pub struct WindowsIsoArgs {
    /// Download the latest Windows 11 x64 ISO from Microsoft into the cache
    /// (resumable, verified against the SHA-256 Microsoft's page publishes).
    #[arg(long)]
    pub windows: bool,
    /// The ISO's language as Microsoft names it ("German", "English
    /// International"), or `list` [default: the locale's, else English (United States)].
    #[arg(long, value_name = "LANGUAGE", requires = "windows")]
    pub lang: Option<String>,
    /// Download the Windows ISO from this mirror (http or https) instead of Microsoft.
    #[arg(long, value_name = "URL", conflicts_with = "lang")]
    pub iso_url: Option<String>,
    /// The SHA-256 the mirror's ISO must have (without it, nothing vouches for the file).
    #[arg(long, value_name = "HEX", requires = "iso_url")]
    pub iso_sha256: Option<String>,
}
