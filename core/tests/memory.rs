//! The tower-layer behaviour suite and the store contract on the in-memory store.

mod support;

use std::sync::Arc;

use idempo::MemoryStore;

behaviour_suite!(Arc::new(MemoryStore::new()));

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_passes_the_contract() {
    idempo::testing::store_contract(Arc::new(MemoryStore::new())).await;
}
