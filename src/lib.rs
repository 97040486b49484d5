//! logagg: a log aggregation and rotation daemon that runs beside stock PM2.
//!
//! The binary (`main.rs`) is a thin shell around [`cli::run`]; everything else lives in
//! the modules below, wired together in [`daemon`]. See docs/ARCHITECTURE.md for the map.

pub mod api;
pub mod cli;
pub mod client;
pub mod config;
pub mod daemon;
pub mod index;
pub mod live;
pub mod memory;
pub mod metrics;
pub mod parse;
pub mod pm2;
pub mod priority;
pub mod record;
pub mod rotate;
pub mod tail;
pub mod units;
