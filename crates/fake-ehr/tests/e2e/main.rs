//! End-to-end tests of the fake EHR over real HTTP on loopback.

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
