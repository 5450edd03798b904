//! Heap allocations per inference, counted by a global allocator. Plans and arenas
//! are built by the first run; on one thread, later runs allocate only the output
//! tensors and the plan-cache key. Parallel runs also allocate the kernels' task
//! lists (printed, not asserted).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Output tensor (data, shape, shared buffer) and the plan-cache key.
const MAX_SEQUENTIAL_ALLOCATIONS: usize = 8;

fn allocations_per_run(name: &str, threads: usize) -> usize {
    let zoo = kiln::zoo::build(name).unwrap();
    let options = kiln::SessionOptions {
        threads: Some(threads),
        ..Default::default()
    };
    let session = kiln::Session::from_bytes(zoo.onnx, options).unwrap();
    let [_, c, h, w] = zoo.input_shape;
    let input = kiln::Tensor::random_normal(vec![1, c, h, w], 7).unwrap();
    session.run(std::slice::from_ref(&input)).unwrap();
    let runs = 4;
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..runs {
        session.run(std::slice::from_ref(&input)).unwrap();
    }
    (ALLOCATIONS.load(Ordering::Relaxed) - before) / runs
}

// One test, so no other test's allocations land in the count.
#[test]
fn steady_state_runs_allocate_only_their_outputs() {
    for name in ["resnet18", "mobilenet_v2"] {
        let sequential = allocations_per_run(name, 1);
        let parallel = allocations_per_run(name, 2);
        println!("{name}: {sequential} allocations per run on 1 thread, {parallel} on 2");
        assert!(
            sequential <= MAX_SEQUENTIAL_ALLOCATIONS,
            "{name}: {sequential} allocations per single-thread run"
        );
    }
}
