//! The testkit's own tests: what it creates exists, works, and is gone afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bus;
mod db;
mod proxy;
