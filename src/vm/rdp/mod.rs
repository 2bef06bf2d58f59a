//! Remote Desktop, shared by `connect`, `run`, `config`, `create`,
//! `enable-rdp` and `doctor`: running a client against a guest
//! ([`client`]), which client this machine has ([`clients`]), bkt's pin of
//! each VM's certificate ([`pins`]), and turning Remote Desktop on in an
//! installed Windows ([`setup`]).

pub mod client;
pub mod clients;
pub mod pins;
pub mod setup;
