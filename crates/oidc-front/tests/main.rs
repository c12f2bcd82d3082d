//! The front with a real registry, bridge and demo IdP in-process, called as the gateway
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! calls it, against a database of the test's own: one test binary.

mod flow;
mod keys;
mod support;
mod suspension;
