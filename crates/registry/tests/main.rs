//! Integration tests of relais-registry: the real service, seeded from a file, against the
//! real PostgreSQL and RabbitMQ servers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod authenticate;
mod common;
mod lookup;
mod people;
mod secrets;
mod seeding;
mod status;
