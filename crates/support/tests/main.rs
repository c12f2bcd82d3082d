//! Integration tests of relais-support: the real service, with a hand-moved clock,
//! against the real PostgreSQL and RabbitMQ servers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod deadlines;
mod incidents;
mod mail;
mod maildir;
mod metrics;
mod notify;
mod roles;
mod smtp_sink;
