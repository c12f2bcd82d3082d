//! Integration tests of relais-trace: the real service, fed through a real outbox, against
//! the real PostgreSQL and RabbitMQ servers; the log's tree and checkpoints against a second
//! implementation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod chain;
mod common;
mod connections;
mod export;
mod legacy;
mod log;
mod measure;
mod proof_file;
mod retention;
mod search;
mod witness;
