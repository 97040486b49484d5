//! Integration tests against a real PM2 (the version package.json pins), each in its own
//! `PM2_HOME`: what logagg's `pm2` modules assume about PM2 is checked here, not trusted.

mod bus;
// The logagg daemon harness, shared with the `daemon` test binary.
#[allow(dead_code)]
#[path = "../daemon/harness.rs"]
mod daemon_harness;
mod harness;
mod kit;
mod rotation;
mod rpc;
mod tail;
mod torture;
