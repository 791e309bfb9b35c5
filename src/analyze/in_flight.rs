//! The queries read and not yet answered, by id, so that a `terminate` action can reach them.
//!
//! A query is registered when its line has been read and its position accepted, before any
//! worker sees it, and stays registered until its [`Registration`] is dropped (right after its
//! answer is sent). Ids are compared as JSON values, through their canonical text (objects'
//! keys sorted): `1` and `1.0` are different ids, `{"a":1,"b":2}` and `{"b":2,"a":1}` the same.

use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Per id (its JSON text): the serial number and stop flag of each query with that id.
type ById = HashMap<String, Vec<(u64, Arc<AtomicBool>)>>;

/// The queries in flight of one server.
#[derive(Debug, Default)]
pub struct InFlight {
    queries: Mutex<ById>,
    next_serial: AtomicU64,
}

impl InFlight {
    fn lock(&self) -> MutexGuard<'_, ById> {
        self.queries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a query with `id` until the registration is dropped.
    pub fn register(self: &Arc<Self>, id: &Value) -> Registration {
        let key = id.to_string();
        let serial = self.next_serial.fetch_add(1, Ordering::Relaxed);
        let terminate = Arc::new(AtomicBool::new(false));
        self.lock()
            .entry(key.clone())
            .or_default()
            .push((serial, terminate.clone()));
        Registration {
            in_flight: self.clone(),
            key,
            serial,
            terminate,
        }
    }

    /// Asks every query in flight with `id` to stop; returns how many there were.
    pub fn terminate(&self, id: &Value) -> usize {
        let queries = self.lock();
        let Some(same_id) = queries.get(&id.to_string()) else {
            return 0;
        };
        for (_, flag) in same_id {
            flag.store(true, Ordering::Relaxed);
        }
        same_id.len()
    }
}

/// A query's place among those in flight: its stop flag, and its removal when dropped.
#[derive(Debug)]
pub struct Registration {
    in_flight: Arc<InFlight>,
    key: String,
    serial: u64,
    terminate: Arc<AtomicBool>,
}

impl Registration {
    /// Whether a `terminate` action has named this query.
    pub fn is_terminated(&self) -> bool {
        self.terminate.load(Ordering::Relaxed)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut queries = self.in_flight.lock();
        if let Some(same_id) = queries.get_mut(&self.key) {
            same_id.retain(|&(serial, _)| serial != self.serial);
            if same_id.is_empty() {
                queries.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn terminate_reaches_the_registered_queries_with_that_id_until_they_are_dropped() {
        let in_flight = Arc::new(InFlight::default());
        let a = in_flight.register(&json!({"x": 1, "y": [2]}));
        let b = in_flight.register(&json!({"y": [2], "x": 1}));
        let c = in_flight.register(&json!(1));
        assert_eq!(in_flight.terminate(&json!(1.0)), 0, "1.0 is not the id 1");
        assert!(!c.is_terminated());
        assert_eq!(in_flight.terminate(&json!({"y": [2], "x": 1})), 2);
        assert!(a.is_terminated() && b.is_terminated() && !c.is_terminated());
        drop(a);
        assert_eq!(in_flight.terminate(&json!({"x": 1, "y": [2]})), 1);
        drop((b, c));
        assert_eq!(in_flight.terminate(&json!(1)), 0);
        assert!(in_flight.lock().is_empty());
    }
}
