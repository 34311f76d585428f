//! Actors' data keys as a follower of the log needs them: read from the key store once, forgotten
//! when the actor enrolls again (it may come with a new key), gone after a purge.

use std::collections::HashMap;

use stratos_schema::events::Event;
use stratos_schema::events::seal::DataKey;
use stratos_store::{Store, StoreError};

/// A cache of data keys, kept in step with the events a follower applies.
pub struct DataKeys {
    store: Store,
    keys: HashMap<String, Option<DataKey>>,
}

impl DataKeys {
    /// An empty cache over `store`'s key store.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            keys: HashMap::new(),
        }
    }

    /// The data key of `did`; `None` once it was destroyed.
    pub async fn get(&mut self, did: &str) -> Result<Option<DataKey>, StoreError> {
        if let Some(key) = self.keys.get(did) {
            return Ok(key.clone());
        }
        let key = self.store.data_key(did).await?;
        self.keys.insert(did.to_string(), key.clone());
        Ok(key)
    }

    /// Follows what `event` does to its actor's key.
    pub fn observe(&mut self, event: &Event) {
        match event {
            Event::Enrollment(event) => {
                self.keys.remove(event.did.as_str());
            }
            Event::Unenroll(event) if event.purge => {
                self.keys.insert(event.did.to_string(), None);
            }
            _ => {}
        }
    }
}
