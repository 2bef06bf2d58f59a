//! The user-facing commands, one file per `bkt vm` command. Each
//! orchestrates what the rooms beside it share (checks, media, power, rdp,
//! programs, net, wait) and, for every effect, the door ([`super::ctx`]);
//! none imports another command.

pub mod apps;
pub mod config;
pub mod connect;
pub mod create;
pub mod destroy;
pub mod doctor;
pub mod download;
pub mod enable_rdp;
pub mod iso_info;
pub mod run;
pub mod snapshot;
pub mod start;
pub mod status;
pub mod stop;
pub mod watch;
