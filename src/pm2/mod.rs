//! What logagg knows about stock PM2: how it names log files, its bus (restart and crash
//! markers) and its RPC socket.

pub mod amp;
pub mod bus;
pub mod events;
pub mod naming;
pub mod rpc;
pub mod status;
