//! Test support for every Relais crate: real servers, isolated per test.
//!
//! It owns throwaway resources on the shared PostgreSQL and RabbitMQ servers — a fresh
//! database per [`TestDb`], uniquely named exchanges and queues per [`TestBus`] — and a
//! [`TcpProxy`] that cuts and restores a link on demand, so a test can take the broker
//! away from the hub without touching the shared server. Everything it creates it
//! removes afterwards. It is a dev-dependency only: it panics with a clear message
//! instead of returning errors, and it must never stop, reconfigure or drop anything it
//! did not create.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bus;
mod db;
mod proxy;

pub use bus::{Listener, TestBus};
pub use db::TestDb;
pub use proxy::TcpProxy;
