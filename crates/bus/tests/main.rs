//! Integration tests of relais-bus against the real PostgreSQL and RabbitMQ servers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod config;
mod consumer;
mod events;
mod outbox;
mod relay;
