//! End-to-end tests of the fake EHR over real HTTP on loopback.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test: a panic is how it fails, with its message"
)]

mod auth;
mod bulk;
mod changes;
mod common;
mod data;
mod faults;
mod hydration;
mod latency;
mod quarter;
mod search;
mod switches;
