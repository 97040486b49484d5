//! What logagg knows about stock PM2: how it names log files (and later its bus and RPC).

pub mod amp;
pub mod naming;
pub mod rpc;
