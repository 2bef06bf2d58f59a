//! `bkt vm enable-rdp NAME`: turn on Remote Desktop in an installed
//! Windows with a script CD and one double-click (see `rdp::setup`).

use std::time::Duration;

use anyhow::Result;
use clap::Args;

use crate::names::VmName;
use crate::vm::ctx::Ctx;
use crate::vm::rdp::setup as rdp_setup;

/// Turn on Remote Desktop in an installed Windows (one double-click inside).
#[derive(Debug, Args)]
#[command(
    long_about = "Turn on Remote Desktop in an installed Windows.\n\n\
    BitLocker keeps the registry out of reach from the host, so bkt builds a small ISO \
    with enable-rdp.ps1 (allow connections, keep Network Level Authentication, open the \
    Remote Desktop firewall rules by their language-independent group, let RemoteApp \
    start any program for `bkt vm run`) and a one-click \
    enable-rdp.cmd that runs it as administrator, puts it in the VM's CD-ROM drive, tells \
    you what to click, and waits until port 3389 answers. Then the drive gets its old \
    medium back, the ISO is deleted, and the manifest notes that RDP is on. Running it \
    again is harmless: a VM set up before `run` existed gets the RemoteApp settings so.",
    after_help = "Examples:\n  bkt vm enable-rdp windows\n  bkt vm enable-rdp windows --timeout 1800"
)]
pub struct EnableRdpArgs {
    /// The VM's name.
    pub name: VmName,
    /// Seconds to wait for Remote Desktop to answer.
    #[arg(long, default_value_t = 900, value_name = "SECONDS")]
    pub timeout: u64,
}

pub fn run(ctx: &Ctx, args: EnableRdpArgs) -> Result<()> {
    ctx.require(&args.name)?;
    rdp_setup::enable(ctx, &args.name, Duration::from_secs(args.timeout))
}
