//! The runtime as users see it: the global runtime, explicit runtimes, and Go's `runtime` package
//! functions (`NumGoroutine`, `GOMAXPROCS`, ...).
//!
//! The global runtime starts lazily, the first time anything needs it (a `spawn` from a plain
//! thread, `#[gort::main]`, ...), configured from the environment: `GORT_MAXPROCS` (number of Ps,
//! default: the machine's available parallelism) and `GORT_STACK_SIZE` (bytes of address space per
//! goroutine stack, default 256 KiB; suffixes K/KiB/M/MiB). [`Builder`] makes explicit runtimes with
//! other settings. A runtime lives until the process exits: its idle threads sleep on futexes and cost
//! nothing, as in Go, where there is exactly one runtime per process.
//!
//! Functions here act on the *current* runtime: the one whose goroutine (or thread) calls them, or the
//! global runtime when called from a plain thread.

use std::fmt;
use std::future::Future;
use std::process::{ExitCode, Termination};
use std::sync::OnceLock;

use crate::g::GoroutineId;
use crate::join::JoinHandle;
use crate::sched::{self, Sched, DEFAULT_MAX_THREADS, MAX_PROCS};
use crate::spawn as newproc;
use crate::stack;

pub use crate::sysmon::safe_point;

static GLOBAL: OnceLock<&'static Sched> = OnceLock::new();

/// The global runtime, started on first use.
pub(crate) fn global() -> &'static Sched {
    GLOBAL.get_or_init(|| {
        let procs = procs_from_env();
        let stack_size = stack::stack_size_from_env();
        Sched::new(procs, stack_size, DEFAULT_MAX_THREADS, "gort".to_string())
    })
}

/// The runtime of the calling thread if it is a runtime thread, else the global one.
#[inline]
pub(crate) fn current() -> &'static Sched {
    match sched::current_m() {
        Some(m) => m.sched,
        None => global(),
    }
}

fn default_procs() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_PROCS)
}

fn procs_from_env() -> usize {
    match std::env::var("GORT_MAXPROCS") {
        Ok(v) => parse_procs(&v).unwrap_or_else(|e| panic!("{e}")),
        Err(_) => default_procs(),
    }
}

fn parse_procs(v: &str) -> Result<usize, String> {
    match v.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_PROCS).contains(&n) => Ok(n),
        _ => Err(format!(
            "gort: GORT_MAXPROCS must be a whole number from 1 to {MAX_PROCS}, got {v:?}"
        )),
    }
}

/// Starts `f` as a goroutine on the current runtime and returns its handle.
///
/// `f` may block (join other goroutines, wait on channels and locks, sleep) without `async`: only the
/// goroutine waits, never its thread. A panic in `f` is caught, reported once on stderr as
/// `goroutine N panicked at ...`, and returned by [`JoinHandle::join`].
#[track_caller]
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    newproc::spawn_on(current(), f, std::panic::Location::caller())
}

/// Runs `fut` as an async task on the current runtime's Ps, beside its goroutines.
///
/// The task is polled on a runtime thread; it must not block the thread (use `.await`, not the
/// blocking APIs). Its panics are caught and reported like a goroutine's.
pub fn spawn_async<F>(fut: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    newproc::spawn_async_on(current(), fut)
}

/// The number of goroutines (and async tasks) that exist in the current runtime: started and not yet
/// finished, parked ones included (Go's `runtime.NumGoroutine`).
pub fn num_goroutine() -> usize {
    current().num_goroutine()
}

/// The number of Ps: how many goroutines can run at the same time (Go's `GOMAXPROCS(0)`).
pub fn max_procs() -> usize {
    current().max_procs()
}

/// Sets the number of Ps and returns the previous value (Go's `runtime.GOMAXPROCS(n)`); `0` only
/// reads it. Growing takes effect at once. Shrinking takes effect as each surplus P's thread next
/// enters the scheduler (at the running goroutine's next park or yield).
///
/// # Panics
/// If `n` exceeds 256.
pub fn set_max_procs(n: usize) -> usize {
    current().set_max_procs(n)
}

/// The id of the calling goroutine (or async task); `None` on a plain thread.
pub fn current_id() -> Option<GoroutineId> {
    sched::current_id()
}

/// Locks the calling goroutine to the OS thread it runs on, until the returned guard drops (Go's
/// `runtime.LockOSThread`/`UnlockOSThread`, with the unlock tied to a scope).
///
/// Meanwhile the goroutine resumes on this same thread after every park, yield or preemption, and
/// the thread runs no other goroutine: thread-local state survives blocking calls, which is what
/// thread-bound C libraries (OpenGL contexts, some database clients), per-thread OS settings
/// (`setns`, signal masks, scheduling priority) and `std::thread_local!` values need. It is not a
/// speed-up: each time the goroutine wakes, whichever thread picks it up hands it to its own thread
/// (a futex wake-up), and the locked thread counts against [`Builder::max_threads`].
///
/// Guards nest: the goroutine stays locked until the last one drops. The guard is `!Send` and
/// must be dropped by the goroutine that made it; a goroutine that ends while locked (its guard
/// leaked with `mem::forget`) gives the thread back to the scheduler. Called from a plain thread or
/// inside an async task's poll (neither moves between threads while it runs), the guard does
/// nothing.
///
/// ```
/// gort_goroutine::runtime::Runtime::global().run(|| {
///     let _lock = gort_goroutine::runtime::lock_os_thread();
///     let thread = std::thread::current().id();
///     for _ in 0..100 {
///         gort_goroutine::time::sleep(std::time::Duration::from_micros(50));
///         gort_goroutine::yield_now();
///         assert_eq!(std::thread::current().id(), thread);
///     }
/// });
/// ```
pub fn lock_os_thread() -> OsThreadLock {
    let locked = sched::current_m().and_then(|m| {
        let g = m.curg.get();
        // SAFETY: the current G is alive while it runs, and this code runs on it.
        let g = unsafe { g.as_ref() }?;
        let depth = g.lock_depth.get();
        if depth == 0 {
            g.locked_m
                .store(m.id(), std::sync::atomic::Ordering::Relaxed);
        }
        g.lock_depth.set(
            depth
                .checked_add(1)
                .expect("gort: lock_os_thread nested more than u32::MAX times"),
        );
        Some(g.id)
    });
    OsThreadLock {
        goroutine: locked,
        _not_send: std::marker::PhantomData,
    }
}

/// Keeps the goroutine that made it locked to its OS thread; see [`lock_os_thread`].
///
/// It cannot leave its goroutine:
///
/// ```compile_fail
/// fn send_to_another_goroutine<T: Send>(_: T) {}
/// send_to_another_goroutine(gort_goroutine::runtime::lock_os_thread());
/// ```
#[must_use = "the goroutine is unlocked as soon as the guard drops"]
pub struct OsThreadLock {
    /// The locked goroutine; `None` for a guard made off a goroutine (it does nothing).
    goroutine: Option<GoroutineId>,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for OsThreadLock {
    fn drop(&mut self) {
        let Some(id) = self.goroutine else { return };
        let g = crate::g::current_g();
        // SAFETY: the current G is alive while it runs, and this code runs on it.
        match unsafe { g.as_ref() } {
            Some(g) if g.id == id => {
                let depth = g.lock_depth.get() - 1;
                g.lock_depth.set(depth);
                if depth == 0 {
                    g.locked_m.store(0, std::sync::atomic::Ordering::Relaxed);
                }
            }
            // The guard is `!Send`, so this takes a detour through thread-local storage; the
            // goroutine it names is gone (or elsewhere) and was unlocked when it ended.
            _ if std::thread::panicking() => {}
            _ => {
                panic!("gort: an OsThreadLock of goroutine {id} was dropped outside that goroutine")
            }
        }
    }
}

impl fmt::Debug for OsThreadLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OsThreadLock")
            .field("goroutine", &self.goroutine)
            .finish()
    }
}

/// A goroutine dump of the current runtime, as Go prints on SIGQUIT: for each live goroutine its id,
/// its state (`running`, `runnable`, or what it waits for — `chan receive`, `sleep`, `IO wait`,
/// `select`, ... — and for how long) and where it was spawned. With `GORT_DEBUG=waitstacks=1` in
/// the environment (read when the runtime starts), every park records its stack, at a cost of a few
/// microseconds per park, and the dump prints it under each parked goroutine, from the park down
/// to the goroutine's closure.
///
/// ```
/// let wg = gort_goroutine::sync::WaitGroup::new();
/// wg.add(1);
/// let w = wg.clone();
/// let h = gort_goroutine::spawn(move || w.wait());
/// std::thread::sleep(std::time::Duration::from_millis(20));
/// let dump = gort_goroutine::runtime::dump();
/// assert!(dump.contains(&format!("goroutine {} [sync.WaitGroup.Wait", h.id())), "{dump}");
/// wg.done();
/// h.join().unwrap();
/// ```
pub fn dump() -> String {
    current().dump()
}

/// Runs `f` with the calling M's P held, passing the P's index (below [`MAX_PROCS_LIMIT`]), or
/// `None` when the caller holds no P (a plain thread, or a goroutine whose P was just retaken).
///
/// For runtime-side crates (the `Gc` heap's allocation caches) that keep per-P state: while `f`
/// runs, no other thread uses the same index, because a held P cannot be retaken. `f` must be
/// short and must not block, park, yield or spawn (it runs with the scheduler's P locked; a
/// blocking `f` stalls that P's run queue, a re-entrant runtime call may deadlock).
#[doc(hidden)]
pub fn with_current_proc<R>(f: impl FnOnce(Option<usize>) -> R) -> R {
    current().with_current_proc(f)
}

/// The most Ps any runtime can have: the bound on the index [`with_current_proc`] passes.
#[doc(hidden)]
pub const MAX_PROCS_LIMIT: usize = MAX_PROCS;

/// A snapshot of the current runtime's scheduler.
pub fn stats() -> Stats {
    current().stats()
}

/// A snapshot of a runtime's scheduler, from [`stats`] or [`Runtime::stats`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Ps (`max_procs`).
    pub procs: usize,
    /// Ps with no M.
    pub idle_procs: usize,
    /// OS threads (Ms) started so far.
    pub threads: usize,
    /// Ms asleep in the idle list.
    pub idle_threads: usize,
    /// Ms looking for work.
    pub spinning_threads: usize,
    /// Live goroutines and async tasks.
    pub goroutines: usize,
    /// Goroutines and async tasks started since the runtime began.
    pub goroutines_spawned: u64,
    /// Length of the global run queue.
    pub global_queue: usize,
    /// Length of each P's local run queue (`runnext` included).
    pub local_queues: Vec<usize>,
    /// Goroutine stacks carved from the runtime's regions so far.
    pub stacks_allocated: usize,
    /// Stacks in the runtime's free list (Ps also cache a few each).
    pub stacks_free: usize,
    /// Bytes of address space per stack.
    pub stack_size: usize,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "procs={} idleprocs={} threads={} idlethreads={} spinningthreads={} goroutines={} spawned={} \
             runqueue={} local={:?} stacks={} (free {}) stacksize={}KiB",
            self.procs,
            self.idle_procs,
            self.threads,
            self.idle_threads,
            self.spinning_threads,
            self.goroutines,
            self.goroutines_spawned,
            self.global_queue,
            self.local_queues,
            self.stacks_allocated,
            self.stacks_free,
            self.stack_size / 1024
        )
    }
}

/// Configures an explicit runtime.
///
/// ```
/// let rt = gort_goroutine::runtime::Builder::new().max_procs(2).stack_size(64 * 1024).build();
/// assert_eq!(rt.run(|| 6 * 7), 42);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Builder {
    max_procs: Option<usize>,
    stack_size: Option<usize>,
    max_threads: Option<usize>,
    name: Option<String>,
}

impl Builder {
    /// Settings from the environment (`GORT_MAXPROCS`, `GORT_STACK_SIZE`) or the defaults.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// The number of Ps (1 to 256).
    pub fn max_procs(mut self, n: usize) -> Builder {
        self.max_procs = Some(n);
        self
    }

    /// Bytes of address space per goroutine stack (rounded up to whole pages, at least 16 KiB).
    /// Stacks are committed lazily, so a large value costs address space, not memory.
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes);
        self
    }

    /// The most OS threads the runtime may start (default 10,000, as Go's `debug.SetMaxThreads`).
    /// Threads beyond the processors exist while goroutines sit in blocking calls or hog their
    /// thread; a program that needs more than this is stuck, and is aborted with a message saying
    /// so, as Go does.
    pub fn max_threads(mut self, n: usize) -> Builder {
        self.max_threads = Some(n);
        self
    }

    /// A prefix for the runtime's thread names (default `gort`).
    pub fn thread_name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// Creates the runtime. Its threads start when it first has work.
    ///
    /// # Panics
    /// If `max_procs` is 0 or above 256 (with a message naming the value).
    pub fn build(self) -> Runtime {
        let procs = self.max_procs.unwrap_or_else(procs_from_env);
        assert!(
            (1..=MAX_PROCS).contains(&procs),
            "gort: Builder::max_procs must be from 1 to {MAX_PROCS}, got {procs}"
        );
        let stack_size = self
            .stack_size
            .map_or_else(stack::stack_size_from_env, stack::round_stack_size);
        let max_threads = self.max_threads.unwrap_or(DEFAULT_MAX_THREADS);
        assert!(
            max_threads > procs,
            "gort: Builder::max_threads({max_threads}) must exceed max_procs ({procs})"
        );
        Runtime {
            sched: Sched::new(
                procs,
                stack_size,
                max_threads,
                self.name.unwrap_or_else(|| "gort".into()),
            ),
        }
    }
}

/// A handle to a runtime made with [`Builder`]. Cheap to copy; the runtime lives until the process
/// exits.
#[derive(Clone, Copy)]
pub struct Runtime {
    sched: &'static Sched,
}

impl Runtime {
    /// The global runtime (started now if it was not yet).
    pub fn global() -> Runtime {
        Runtime { sched: global() }
    }

    /// Starts `f` as a goroutine on this runtime.
    #[track_caller]
    pub fn spawn<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        newproc::spawn_on(self.sched, f, std::panic::Location::caller())
    }

    /// Starts `fut` as an async task on this runtime.
    pub fn spawn_async<F>(&self, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        newproc::spawn_async_on(self.sched, fut)
    }

    /// Runs `f` as a goroutine on this runtime and waits for its value; a panic in `f` resumes on the
    /// caller.
    #[track_caller]
    pub fn run<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        match self.spawn(f).join() {
            Ok(v) => v,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// Runs `fut` to completion as a task on this runtime and waits for its output.
    pub fn block_on<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match crate::park::block_on(self.spawn_async(fut)) {
            Ok(v) => v,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// The number of Ps of this runtime.
    pub fn max_procs(&self) -> usize {
        self.sched.max_procs()
    }

    /// Changes the number of Ps of this runtime (see [`set_max_procs`]).
    pub fn set_max_procs(&self, n: usize) -> usize {
        self.sched.set_max_procs(n)
    }

    /// Live goroutines and tasks of this runtime.
    pub fn num_goroutine(&self) -> usize {
        self.sched.num_goroutine()
    }

    /// A snapshot of this runtime's scheduler.
    pub fn stats(&self) -> Stats {
        self.sched.stats()
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("max_procs", &self.max_procs())
            .finish()
    }
}

/// `#[gort::main]`'s runner: runs `f` as the main goroutine of the global runtime, waits for it,
/// and turns its value into the process's exit code (reported inside the goroutine, so the value need
/// not be `Send`). A panic was already reported by the hook; the exit code is then 101, as for a
/// panicking Rust `main`. Other goroutines are not waited for, as in Go.
///
/// It also arms Go's process-level diagnostics, which only make sense for a program whose main is a
/// goroutine: the `all goroutines are asleep - deadlock!` report (exit status 2) and the goroutine
/// dump on SIGQUIT.
#[doc(hidden)]
#[track_caller]
pub fn run_main<F, T>(f: F) -> ExitCode
where
    F: FnOnce() -> T + Send + 'static,
    T: Termination + 'static,
{
    let sched = global();
    crate::sysmon::install_sigquit_dump(sched);
    let main = newproc::spawn_on(sched, move || f().report(), std::panic::Location::caller());
    sched
        .main_running
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let outcome = main.join();
    sched
        .main_running
        .store(false, std::sync::atomic::Ordering::SeqCst);
    match outcome {
        Ok(code) => code,
        Err(_) => ExitCode::from(101),
    }
}

/// `#[gort::test]`'s runner: runs `f` as a goroutine on the global runtime and waits; a panic is
/// resumed on the test thread so the test fails (or `#[should_panic]` passes).
#[doc(hidden)]
#[track_caller]
pub fn run_test<F, T>(f: F) -> ExitCode
where
    F: FnOnce() -> T + Send + 'static,
    T: Termination + 'static,
{
    match newproc::spawn_on(
        global(),
        move || f().report(),
        std::panic::Location::caller(),
    )
    .join()
    {
        Ok(code) => code,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::parse_procs;

    #[test]
    fn maxprocs_parsing() {
        assert_eq!(parse_procs("4"), Ok(4));
        assert_eq!(parse_procs(" 1 "), Ok(1));
        assert!(parse_procs("0").unwrap_err().contains("GORT_MAXPROCS"));
        assert!(parse_procs("lots").is_err());
        assert!(parse_procs("257").is_err());
    }
}
