//! The bridge against the demo IdP, called as oidc-front calls it: one test binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod round_trip;
mod support;
