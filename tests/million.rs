//! One million goroutines parked at the same time, on this machine's stock settings
//! (`vm.max_map_count` = 65530: a mapping per stack would die near 32k).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use gort::sync::WaitGroup;

#[test]
fn one_million_parked_goroutines() {
    const N: usize = 1_000_000;
    let rt = gort::runtime::Builder::new().build();
    let parked = WaitGroup::new();
    let release = WaitGroup::new();
    let finished = Arc::new(AtomicUsize::new(0));
    parked.add(N);
    release.add(1);
    let handles = {
        let (parked, release, finished) = (parked.clone(), release.clone(), finished.clone());
        rt.run(move || {
            let mut handles = Vec::with_capacity(N);
            for i in 0..N {
                let (parked, release, finished) =
                    (parked.clone(), release.clone(), finished.clone());
                handles.push(gort::spawn(move || {
                    parked.done();
                    release.wait();
                    finished.fetch_add(1, Ordering::Relaxed);
                    i
                }));
            }
            handles
        })
    };
    parked.wait();
    assert!(
        rt.num_goroutine() >= N,
        "only {} goroutines alive",
        rt.num_goroutine()
    );
    let maps = std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .count();
    assert!(
        maps < 30_000,
        "{maps} mappings for {N} goroutines: stacks are not sharing mappings"
    );
    release.done();
    let mut sum = 0usize;
    for h in handles {
        sum += h.join().unwrap();
    }
    assert_eq!(sum, N * (N - 1) / 2);
    assert_eq!(finished.load(Ordering::Relaxed), N);
}
