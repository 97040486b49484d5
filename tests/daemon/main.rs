//! Integration tests against the real `logagg` binary: real files, a real tantivy index
//! on disk and the HTTP API on `127.0.0.1:0`.

mod api_extras;
mod config;
mod crash;
mod harness;
mod reading;
mod rotation;
mod search;
