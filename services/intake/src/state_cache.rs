//! Recently written dossiers' states, kept so that the next command on a dossier this process
//! just wrote does not read and fold its events again (most commands follow one another on
//! the same dossier within minutes).
//!
//! The cache is never trusted for correctness: every append is conditional on the version the
//! command was decided against, so a stale entry (another process wrote the dossier) only costs
//! a version conflict, after which the entry is dropped and the state is read from the store.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;
use motcua_domain::lifecycle::DossierState;

#[derive(Debug)]
pub(crate) struct StateCache {
    entries: Option<Mutex<LruCache<String, DossierState>>>,
}

impl StateCache {
    /// A cache of at most `capacity` dossiers; 0 disables it.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: NonZeroUsize::new(capacity).map(|c| Mutex::new(LruCache::new(c))),
        }
    }

    fn lock(&self) -> Option<std::sync::MutexGuard<'_, LruCache<String, DossierState>>> {
        self.entries
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    pub(crate) fn get(&self, dossier_id: &str) -> Option<DossierState> {
        self.lock()?.get(dossier_id).cloned()
    }

    pub(crate) fn put(&self, state: DossierState) {
        if let Some(mut entries) = self.lock() {
            entries.put(state.dossier_id.clone(), state);
        }
    }

    /// Keeps `state` unless the entry already held is as new: a state read before a
    /// concurrent command's write must not replace the state that write left.
    pub(crate) fn offer(&self, state: DossierState) {
        if let Some(mut entries) = self.lock() {
            if entries
                .peek(state.dossier_id.as_str())
                .is_some_and(|held| held.version >= state.version)
            {
                return;
            }
            entries.put(state.dossier_id.clone(), state);
        }
    }

    /// Whether a state is held for `dossier_id` (without refreshing it).
    pub(crate) fn holds(&self, dossier_id: &str) -> bool {
        self.lock()
            .is_some_and(|entries| entries.contains(dossier_id))
    }

    /// Whether the cache is on at all.
    pub(crate) fn enabled(&self) -> bool {
        self.entries.is_some()
    }

    pub(crate) fn forget(&self, dossier_id: &str) {
        if let Some(mut entries) = self.lock() {
            entries.pop(dossier_id);
        }
    }
}
