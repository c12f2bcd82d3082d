//! The gateway against a fake oidc-front, over real sockets on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api;
mod config;
mod failures;
mod flow;
mod pages;
mod proxy;
mod support;
mod tls;
