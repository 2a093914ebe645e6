//! End-to-end tests of the `clsync` binary: real daemon, real temp dirs, real rsync.
//!
//! Run with `cargo test --test e2e -- --nocapture` to see the timing notes.

mod e2e;
