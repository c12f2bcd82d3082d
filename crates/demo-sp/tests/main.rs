//! The demo SP signing in through a demo IdP started in the same test. One binary: links are slow.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cases;
