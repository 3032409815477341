//! Shared helpers of the integration tests and benchmarks.
#![allow(dead_code)]

pub mod bench;
pub mod counting;
pub mod loopback;
pub mod user_lines;
