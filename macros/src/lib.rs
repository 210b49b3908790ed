//! Procedural macros of **gort**, the Go runtime rebuilt as a Rust crate.
//!
//! This crate owns the three macros of gort's surface syntax:
//!
//! - [`#[gort::main]`](macro@main): run `fn main` (or `async fn main`) as the
//!   main goroutine of a fresh gort runtime;
//! - [`#[gort::test]`](macro@test): run a `#[test]` function (or an async one)
//!   as a goroutine;
//! - [`go!`](macro@go): Go's `go` statement, starting a closure, a block or a
//!   call in a new goroutine.
//!
//! It also holds the hidden engine of `gort::select!` and `gort::select_async!`
//! (`select_impl!`, in `select.rs`), which gort-chan's wrapper macros call.
//!
//! Do not depend on `gort-macros` directly: use the macros through the `gort`
//! crate, which re-exports them as `gort::main`, `gort::test` and `gort::go`.
//! Their expansions name items of that facade by absolute paths
//! (`::gort::spawn`, `::gort::block_on`, `::gort::__private::run_main`,
//! `::gort::__private::run_test`), so the crate using them must have `gort`
//! as a dependency under that name.
//!
//! The expansions are written as functions from `proc_macro2` tokens to
//! `proc_macro2` tokens, which the unit tests of this crate call directly;
//! the exported macros are thin wrappers around them.

mod entry;
mod go;
mod select;
mod trace;

use proc_macro::TokenStream;

/// Runs `fn main` as the main goroutine of a gort runtime.
///
/// ```ignore
/// #[gort::main]
/// fn main() {
///     for id in 0..4 {
///         gort::go!(move || println!("hello from goroutine {id}"));
///     }
///     println!("hello from the main goroutine");
/// }
/// ```
///
/// The body becomes the main goroutine: it runs on the runtime's scheduler, so
/// it can start goroutines with [`go!`](macro@go) and park on gort's channels
/// and locks like any other goroutine. When the body returns, `main` returns
/// its value; if it panics, the panic is reported and the process exits with
/// status 101, as an uncaught panic would end it.
///
/// # Return types
///
/// `main` may return anything the standard `main` can, such as
/// `Result<(), E>`, and `?` works in the body as it would without the
/// attribute:
///
/// ```ignore
/// #[gort::main]
/// fn main() -> Result<(), std::io::Error> {
///     let text = std::fs::read_to_string("Cargo.toml")?;
///     println!("{} bytes", text.len());
///     Ok(())
/// }
/// ```
///
/// # `async fn main`
///
/// `async fn main` is accepted too: its body is an `async` block driven by
/// `gort::block_on` on the main goroutine, so `.await` and gort's blocking
/// calls can both be used in it.
///
/// ```ignore
/// #[gort::main]
/// async fn main() {
///     let value = async { 6 * 7 }.await;
///     assert_eq!(value, 42);
/// }
/// ```
///
/// # Expansion
///
/// The function keeps its attributes, visibility and signature (less
/// `async`); only its body changes:
///
/// ```ignore
/// // fn main() -> R { body }  becomes
/// fn main() -> R {
///     ::gort::__private::run_main(move || -> R { body })
/// }
///
/// // async fn main() -> R { body }  becomes
/// fn main() -> R {
///     ::gort::__private::run_main(move || -> R { ::gort::block_on(async move { body }) })
/// }
/// ```
///
/// The closure's `-> R` is left out when `main` has no return type, or one
/// that mentions `impl Trait`.
///
/// # Errors
///
/// The attribute gives a compile error, starting with `gort: `, when it is
/// put on anything but a function named `main`, on a `main` that takes
/// arguments, is generic or is `const`, or when it is given arguments:
/// `#[gort::main(...)]` takes none for now (they are kept for runtime options
/// later).
#[proc_macro_attribute]
pub fn main(attr: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand_or_error(entry::Entry::Main, attr.into(), item.into()).into()
}

/// Runs a test as a goroutine on gort's runtime.
///
/// Put `#[gort::test]` where you would put `#[test]`; it adds `#[test]`
/// itself, so do not write both.
///
/// ```ignore
/// #[gort::test]
/// fn goroutines_start() {
///     let handle = gort::go!(move || 6 * 7);
///     drop(handle); // detached: it runs on
///     assert_eq!(1 + 1, 2);
/// }
/// ```
///
/// The body runs as a goroutine on the process's global gort runtime (shared
/// by all the tests of the binary), and the test thread waits for it. A panic
/// in the body is resumed on the test thread, so a failing assertion fails the
/// test with its own message, and `#[should_panic]` works. The other
/// attributes of the function, such as `#[should_panic]` and `#[ignore]`, are
/// kept.
///
/// ```ignore
/// #[gort::test]
/// #[should_panic(expected = "boom")]
/// fn it_panics() {
///     panic!("boom");
/// }
/// ```
///
/// # Return types and `async`
///
/// The test may return a `Result` (the test fails on `Err`), and may be an
/// `async fn`, whose body is driven by `gort::block_on` on the goroutine:
///
/// ```ignore
/// #[gort::test]
/// async fn reads_the_manifest() -> Result<(), std::io::Error> {
///     let text = async { std::fs::read_to_string("Cargo.toml") }.await?;
///     assert!(text.contains("[package]"));
///     Ok(())
/// }
/// ```
///
/// # Expansion
///
/// ```ignore
/// // #[gort::test] #[attrs] async fn name() -> R { body }  becomes
/// #[::core::prelude::v1::test]
/// #[attrs]
/// fn name() -> R {
///     ::gort::__private::run_test(move || -> R { ::gort::block_on(async move { body }) })
/// }
/// ```
///
/// and without `async`, the closure is `move || -> R { body }`. The
/// closure's `-> R` is left out when the test has no return type, or one that
/// mentions `impl Trait`.
///
/// # Errors
///
/// The attribute gives a compile error, starting with `gort: `, when it is
/// put on anything but a function, on a function that takes arguments, is
/// generic or is `const`, on a function that already has a test attribute
/// (`#[test]`, `#[tokio::test]`, ...), or when it is given arguments:
/// `#[gort::test(...)]` takes none for now.
#[proc_macro_attribute]
pub fn test(attr: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand_or_error(entry::Entry::Test, attr.into(), item.into()).into()
}

/// Starts a goroutine, like Go's `go` statement.
///
/// `go!` takes one of three forms, and returns the new goroutine's
/// `gort::JoinHandle`, which may be dropped (the goroutine then runs on
/// detached, as in Go) or joined for the goroutine's value.
///
/// # A closure
///
/// ```ignore
/// let handle = gort::go!(move || 6 * 7);
/// ```
///
/// The closure is passed to `gort::spawn` as it is, so it must be
/// `Send + 'static`: write `move` when it uses local variables.
///
/// # A block
///
/// ```ignore
/// let name = String::from("a goroutine");
/// gort::go!({
///     let greeting = format!("hello from {name}");
///     println!("{greeting}");
/// });
/// ```
///
/// The block becomes the body of a `move` closure, as `go func() { ... }()`
/// is written in Go: the variables it uses are moved into the goroutine.
///
/// # A call
///
/// ```ignore
/// fn worker(id: usize, jobs: Jobs) { /* ... */ }
///
/// gort::go!(worker(next_id(), jobs.clone()));
/// gort::go!(server.serve(listener));
/// ```
///
/// As in Go, the function value and every argument are evaluated now, in the
/// calling goroutine, left to right, before `go!` returns; only the call
/// itself runs in the new goroutine. Above, `next_id()` and `jobs.clone()`
/// run in the caller, and `worker` gets their values. The callee may itself
/// be computed: in `go!(make_handler(cfg)(request))`, `make_handler(cfg)`
/// runs in the caller too.
///
/// For a method call, the receiver is evaluated in the caller and **moved**
/// into the goroutine, as Go copies the receiver value: `go!(obj.run())`
/// moves `obj` even when `run` takes `&self`. To keep using `obj`, share it
/// first and give the goroutine its own handle:
///
/// ```ignore
/// let obj = std::sync::Arc::new(obj);
/// gort::go!(obj.clone().run());   // `obj.clone()` runs here; the clone moves
/// obj.status();                   // still ours
/// ```
///
/// Two kinds of callee and argument are written straight into the
/// goroutine's call instead of being evaluated first, where evaluating them
/// would do nothing observable: a callee that is a path (`f`, `m::f`,
/// `Type::new`, `<T as Trait>::f::<U>`), and an argument that is a closure
/// literal (`go!(retry(3, || fetch(url)))`), which so gets its parameter
/// types from the callee; a closure literal's captures are moved into the
/// goroutine.
///
/// # Expansion
///
/// ```ignore
/// go!(|| e)            // ::gort::spawn(|| e)
/// go!({ s })           // ::gort::spawn(move || { s })
/// go!(f(a, b))         // { let a0 = a; let a1 = b; ::gort::spawn(move || f(a0, a1)) }
/// go!(g(x)(a))         // { let f = g(x); let a0 = a; ::gort::spawn(move || f(a0)) }
/// go!(r.m::<T>(a))     // { let r = r; let a0 = a; ::gort::spawn(move || r.m::<T>(a0)) }
/// ```
///
/// The temporaries are hygienic (they are named `__gort_f`, `__gort_r` and
/// `__gort_a0`, `__gort_a1`, ... with mixed-site spans), so they can neither
/// see nor shadow the caller's variables. Parentheses around the whole
/// expression are looked through.
///
/// # Errors
///
/// Anything else, such as a path, a literal, a macro call, an `async` block,
/// an empty input or a trailing comma, is a compile error:
/// `gort: go! expects a closure, a block, or a call such as go!(f(x)) or
/// go!(obj.method(x))`. To run a future in a new goroutine, write
/// `go!(move || gort::block_on(async move { ... }))`.
#[proc_macro]
pub fn go(input: TokenStream) -> TokenStream {
    match go::expand_go(input.into()) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

/// The engine behind gort-chan's `select!` and `select_async!` (hidden plumbing).
///
/// Do not call it directly: use `gort::select!` / `gort::select_async!`, which pass gort-chan's
/// path and the flavour in front of the cases: `select_impl!($crate, sync, cases...)`. The case
/// syntax and the expansion are documented in `select.rs` and on the public macros.
#[doc(hidden)]
#[proc_macro]
pub fn select_impl(input: TokenStream) -> TokenStream {
    match select::expand_select(input.into()) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

/// `#[derive(Trace)]`: lets a struct or enum live in gort's traced heap (`gort::gc::Gc`).
///
/// Every field is traced unless marked `#[gc(skip)]` (for fields that hold no `Gc`, or hold
/// handles that should act as roots); every type parameter gets a `Trace` bound. Use it through
/// the facade as `#[derive(gort::Trace)]`. The container attribute `#[gc(crate = path)]` names
/// the gc crate when it is not `::gort::gc`. Unions and other `#[gc]` attributes are compile
/// errors. The expansion is documented in `trace.rs`.
#[proc_macro_derive(Trace, attributes(gc))]
pub fn derive_trace(input: TokenStream) -> TokenStream {
    match trace::expand_trace(input.into()) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}
