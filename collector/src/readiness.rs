//! Readiness: the conditions under which ringtail runs but cannot do all of its job — its
//! checkpoints cannot be written, files wait for descriptors, directories could not be watched.
//! Stages set and clear their condition; `/readyz` reports them (503 while any holds), so a
//! node's trouble shows without the process being restarted.
//!
//! Shared vocabulary at the bottom of the crate: it imports nothing from ringtail.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// What keeps ringtail from being ready, by condition.
#[derive(Debug, Default)]
pub struct Readiness {
    conditions: Mutex<BTreeMap<&'static str, String>>,
}

impl Readiness {
    /// Sets condition `name` (`Some`: it holds, with why) or clears it (`None`).
    pub fn set(&self, name: &'static str, why: Option<String>) {
        let mut conditions = self.conditions.lock().unwrap_or_else(|e| e.into_inner());
        match why {
            Some(why) => {
                conditions.insert(name, why);
            }
            None => {
                conditions.remove(name);
            }
        }
    }

    /// The conditions that hold now, by name.
    pub fn conditions(&self) -> BTreeMap<&'static str, String> {
        self.conditions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
