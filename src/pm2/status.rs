//! The last status PM2 told us for each service (`online`, `stopping`, `stopped`,
//! `errored`, ...), as seen in the `process` object of its `process:event`s. The bus
//! thread writes it; `/api/services` reads it. Nothing else of the event is kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::events::Proc;

/// Services PM2 has told us about; far above any real PM2's count, so a peer sending
/// made-up names cannot grow the map without limit.
const MAX_SERVICES: usize = 10_000;

#[derive(Clone, Debug, Default)]
pub struct Pm2Status {
    by_service: Arc<Mutex<HashMap<String, String>>>,
}

impl Pm2Status {
    /// Notes the status in one bus message, if it is a process event that has one.
    pub fn note(&self, topic: &str, payload: &Value) {
        if topic != "process:event" {
            return;
        }
        let Some(proc) = payload.get("process").and_then(Proc::from_value) else {
            return;
        };
        // The worker a cluster reload replaces says nothing about the service.
        if proc.old {
            return;
        }
        let Some(status) = proc.status else {
            return;
        };
        if let Ok(mut map) = self.by_service.lock() {
            if map.len() >= MAX_SERVICES && !map.contains_key(&proc.service) {
                map.clear();
            }
            map.insert(proc.service, status);
        }
    }

    /// The last status of `service`, None when PM2 never said.
    pub fn get(&self, service: &str) -> Option<String> {
        self.by_service.lock().ok()?.get(service).cloned()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn keeps_the_latest_status_of_each_service() {
        let s = Pm2Status::default();
        let ev = |name: &str, id: Value, status: &str| json!({"event": "x", "process": {"name": name, "pm_id": id, "status": status}});
        s.note("process:event", &ev("duck", json!(0), "online"));
        s.note("process:event", &ev("duck", json!(0), "stopped"));
        s.note("process:event", &ev("duck", json!("_old_0"), "online"));
        s.note("log:out", &ev("api", json!(1), "online"));
        s.note("process:event", &ev("my app", json!(2), "errored"));
        assert_eq!(s.get("duck").as_deref(), Some("stopped"));
        assert_eq!(s.get("api"), None);
        // Under the name its log files carry.
        assert_eq!(s.get("my-app").as_deref(), Some("errored"));
    }
}
