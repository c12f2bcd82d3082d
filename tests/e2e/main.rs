//! End-to-end tests: the whole hub (every service, real PostgreSQL and RabbitMQ) with the
//! demo IdP, driven as a browser and an SP would drive it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod access;
mod backchannel;
mod database;
mod flows;
mod harness;
mod history;
mod incidents;
mod investigations;
mod keys;
mod outage;
mod proof_file;
mod rejections;
mod security;
mod signin;
mod sso;
mod support_api;
mod theft;
mod witness;
