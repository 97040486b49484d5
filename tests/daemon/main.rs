//! Integration tests against the real `logagg` binary: real files, a real tantivy index
//! on disk and the HTTP API on `127.0.0.1:0`.

mod api_extras;
mod config;
mod crash;
mod harness;
// npm ci of package.json's pins, shared with the `pm2` test binary.
#[allow(dead_code)]
#[path = "../pm2/harness.rs"]
mod node_harness;
mod reading;
mod rotation;
mod search;
mod tail;
mod torture;
mod torture_props;
mod web;
