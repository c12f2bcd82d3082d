//! Integration tests of the demo IdP, through its HTTP endpoints only. One binary: links are slow.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cases;
