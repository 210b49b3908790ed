//! Synchronization that parks goroutines, not threads.
//!
//! Every type here waits through the parking core (`crate::park`): a goroutine that waits gives its
//! thread to other goroutines; a plain thread that waits blocks as with std.

mod waitgroup;

pub use waitgroup::WaitGroup;
