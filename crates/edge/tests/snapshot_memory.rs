//! What an environment costs an edge, measured with a counting allocator on an environment of
//! 20 features (the shape `flagstone bench scale` uses): held but not compiled, it costs its
//! compressed document plus a small constant; compiled, the snapshot's estimate
//! ([`EnvSnapshot::heap_bytes`], what the memory budget counts) is within a factor of two of
//! the heap it really holds.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::Bytes;
use flagstone_edge::published::Published;
use flagstone_store::document::fixture::{self, Shape};
use flagstone_store::testing::test_store;

/// Counts the bytes this thread holds (allocations minus frees made on it): the measured
/// section runs synchronously on the test's thread, so other threads' work does not count.
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LIVE.try_with(|l| l.set(l.get() + layout.size() as isize));
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = LIVE.try_with(|l| l.set(l.get() - layout.size() as isize));
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = LIVE.try_with(|l| l.set(l.get() + new_size as isize - layout.size() as isize));
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.with(Cell::get)
}

#[tokio::test]
async fn a_held_environment_costs_its_compressed_document_and_the_budget_counts_compiled_ones_fairly(
) {
    let t = test_store().await;
    let shape = Shape {
        features: 20,
        mv_features: 0,
        segments: 0,
        overrides: 0,
    };
    let fx = fixture::create(&t.store, shape).await.unwrap();
    let doc = flagstone_store::document::build(&t.store, fx.environment_id, &Default::default())
        .await
        .unwrap();
    let body = Bytes::from(doc.body.clone());

    let before = live();
    let published = Published::new(
        fx.environment_id,
        doc.revision,
        &doc.etag,
        body.clone(),
        false,
        Some(doc.sdk_features.as_str()),
    )
    .unwrap();
    // The body is shared with `body` here; held alone it is the registry's.
    let cold = (live() - before) as usize + body.len();

    let before = live();
    let snap = published.build_snapshot().unwrap();
    let hot = (live() - before) as usize;

    let heads: usize = snap.features.values().map(|m| m.item_head.len()).sum();
    let before = live();
    let compiled = flagstone_engine::CompiledEnvironment::from_document(
        &serde_json::from_slice(&doc.json().unwrap()).unwrap(),
    );
    let engine = (live() - before) as usize;
    drop(compiled);
    eprintln!(
        "breakdown: /flags/ bodies {} + {}, item heads {heads}, compiled document {engine}",
        snap.flags_client.len(),
        snap.flags_server.len()
    );
    eprintln!(
        "20 features: document {} bytes ({} gzip); held {cold} bytes (counted {}); compiled {hot} bytes (estimated {})",
        doc.bytes,
        body.len(),
        published.cold_bytes(),
        snap.heap_bytes
    );
    assert!(
        cold <= 2 * body.len() + 1024,
        "held: {cold} bytes for a {}-byte compressed document",
        body.len()
    );
    assert!(
        published.cold_bytes() * 2 >= cold && published.cold_bytes() <= cold * 2,
        "counted {} against {cold}",
        published.cold_bytes()
    );
    assert!(
        snap.heap_bytes * 2 >= hot && snap.heap_bytes <= hot * 2,
        "estimated {} against {hot}",
        snap.heap_bytes
    );
}
