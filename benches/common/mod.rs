//! What every bench file shares: quick mode, the runtimes' shapes, the tokio driver.
//!
//! Each bench is its own crate and uses a subset of these, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::future::Future;
use std::sync::OnceLock;

use gort::runtime::{Builder, Runtime};

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

/// The one explicit gort runtime a bench's gort drivers run on, with a P per CPU (a runtime lives
/// until the process exits, so it is built once).
pub fn gort_rt() -> Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    *RT.get_or_init(|| Builder::new().max_procs(cpus()).build())
}

/// Which of tokio's drivers a bench's runtime needs (each one it does not need would only add to
/// tokio's park and unpark costs).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Drivers {
    None,
    Time,
    Io,
}

/// A multi-thread tokio runtime with a worker per CPU and the given driver.
pub fn tokio_rt(drivers: Drivers) -> tokio::runtime::Runtime {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.worker_threads(cpus());
    match drivers {
        Drivers::None => {}
        Drivers::Time => {
            b.enable_time();
        }
        Drivers::Io => {
            b.enable_io();
        }
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
