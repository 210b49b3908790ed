//! What every bench file shares: quick mode, the runtimes' shapes, the tokio driver.
//!
//! Each bench is its own crate and uses a subset of these, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::future::Future;

/// Children per skynet node, as in Go's anchor.
pub const SKYNET_DIV: usize = 10;

/// `GORT_BENCH_QUICK=1`: shrink every workload for a smoke run (CI's `cargo bench -- --test`).
pub fn quick() -> bool {
    std::env::var_os("GORT_BENCH_QUICK").is_some_and(|v| !v.is_empty() && v != "0")
}

/// The full-size workload `n`, or `n / 100` in quick mode.
pub fn scaled(n: usize) -> usize {
    if quick() {
        n / 100
    } else {
        n
    }
}

/// The machine's CPUs: gort gets a P per CPU, tokio a worker per CPU.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A multi-thread tokio runtime with a worker per CPU; `time` enables its timer driver.
pub fn tokio_rt(time: bool) -> tokio::runtime::Runtime {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.worker_threads(cpus());
    if time {
        b.enable_time();
    }
    b.build().expect("tokio runtime")
}

/// Runs `fut` as a task on a tokio worker thread and waits for it (the tokio side's "main goroutine").
pub fn tokio_run<F>(rt: &tokio::runtime::Runtime, fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    rt.block_on(async move { tokio::spawn(fut).await.expect("driver task panicked") })
}
