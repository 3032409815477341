//! The job runtime: cooperative jobs polled by a pool on one worker thread.

pub mod helpers;
