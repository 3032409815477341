//! A global allocator that counts live heap bytes, for the benchmarks that
//! report memory (`benches/hubs.rs`, `benches/nmdc_users.rs`,
//! `benches/runtime.rs`). A benchmark installs it with
//! `#[global_allocator] static GLOBAL: Counting = Counting;` and reads
//! [`live`] before and after what it measures.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

/// Forwards to the system allocator, counting bytes requested minus freed.
pub struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

/// Live heap bytes now (capacity requested, not pages touched).
pub fn live() -> isize {
    LIVE.load(Ordering::SeqCst)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
