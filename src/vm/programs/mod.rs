//! The guest's programs, shared by `apps`, `run` and `destroy`: which
//! Windows program an APP argument means ([`catalog`]), and the menu
//! entries that start them from this machine's desktop ([`launchers`]).

pub mod catalog;
pub mod launchers;
