//! The front's rules, with no I/O.

pub mod accounts;
pub mod acr;
pub mod authorize;
pub mod claims;
pub mod client_auth;
pub mod flow;
pub mod id_token;
pub mod logout_confirmation;
pub mod refusals;
pub mod secrets;
pub mod throttle;
pub mod types;
