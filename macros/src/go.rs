//! `go!`: Go's `go` statement.
//!
//! The work is in [`expand_go`], which takes and returns `proc_macro2`
//! tokens so that unit tests can call it.

use proc_macro2::{Delimiter, Group, Ident, Span, TokenStream};
use quote::{quote, ToTokens};
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::token::{Comma, Paren};
use syn::{Expr, ExprCall, ExprMethodCall};

/// The message of every "this is not something go! can start" error.
pub(crate) const USAGE: &str =
    "gort: go! expects a closure, a block, or a call such as go!(f(x)) or go!(obj.method(x))";

/// Expands `go!(input)`.
///
/// | input                  | expansion                                                                   |
/// |------------------------|-----------------------------------------------------------------------------|
/// | a closure `\|\| e`     | `::gort::spawn(\|\| e)`                                                      |
/// | a block `{ s }`        | `::gort::spawn(move \|\| { s })`                                             |
/// | a call `f(a, b)`       | `{ let __gort_a0 = a; let __gort_a1 = b; ::gort::spawn(move \|\| f(__gort_a0, __gort_a1)) }` |
/// | a call `g()(a)`        | `{ let __gort_f = g(); let __gort_a0 = a; ::gort::spawn(move \|\| __gort_f(__gort_a0)) }` |
/// | a method call `r.m(a)` | `{ let __gort_r = r; let __gort_a0 = a; ::gort::spawn(move \|\| __gort_r.m(__gort_a0)) }` |
///
/// In a call, a callee that is a path (`f`, `m::f`, `Type::f::<T>`) is used
/// as it is: naming a function has no effect to order, and a local closure
/// named so is moved into the goroutine by `move`. A closure literal given as
/// an argument (`go!(run(|x| x + 1))`) is not bound either: it is written in
/// the goroutine's call, where the callee's signature lets Rust infer its
/// parameter types, and what it captures is moved into the goroutine by the
/// outer `move`. Every other callee, receiver and argument is bound in the
/// caller, left to right, before `go!` returns. The temporaries have
/// mixed-site hygiene, so they can neither see nor shadow the caller's names.
///
/// A top-level pair of parentheses, or the invisible group that a
/// `macro_rules!` `$e:expr` fragment makes, is looked through.
pub(crate) fn expand_go(input: TokenStream) -> syn::Result<TokenStream> {
    let expr = parse_input(input)?;
    match peel(expr) {
        Expr::Closure(closure) => {
            if let Some(asyncness) = &closure.asyncness {
                return Err(syn::Error::new_spanned(
                    asyncness,
                    format!(
                        "{USAGE}; an async closure would only make a future in the new goroutine, \
                         not run it: write go!(move || gort::block_on(async move {{ ... }}))"
                    ),
                ));
            }
            reject_attrs(&closure.attrs)?;
            Ok(quote!(::gort::spawn(#closure)))
        }
        Expr::Block(block) => {
            reject_attrs(&block.attrs)?;
            Ok(quote!(::gort::spawn(move || #block)))
        }
        Expr::Unsafe(block) => {
            reject_attrs(&block.attrs)?;
            Ok(quote!(::gort::spawn(move || #block)))
        }
        Expr::Call(call) => {
            reject_attrs(&call.attrs)?;
            Ok(expand_call(call))
        }
        Expr::MethodCall(call) => {
            reject_attrs(&call.attrs)?;
            Ok(expand_method_call(call))
        }
        Expr::Async(block) => Err(syn::Error::new_spanned(
            &block,
            format!(
                "{USAGE}; to run a future in a new goroutine, \
                 write go!(move || gort::block_on(async move {{ ... }}))"
            ),
        )),
        other => Err(syn::Error::new_spanned(other, USAGE)),
    }
}

/// Parses the whole input as one expression, with [`USAGE`] errors for an
/// empty input, something that is not an expression, or tokens after it (a
/// trailing comma, a second expression).
fn parse_input(input: TokenStream) -> syn::Result<Expr> {
    if input.is_empty() {
        return Err(syn::Error::new(Span::call_site(), USAGE));
    }
    let parser = |stream: ParseStream| -> syn::Result<Expr> {
        let expr: Expr = stream.parse().map_err(|err| {
            syn::Error::new(err.span(), format!("{USAGE} (could not parse it: {err})"))
        })?;
        if !stream.is_empty() {
            let rest: TokenStream = stream.parse()?;
            return Err(syn::Error::new_spanned(
                rest,
                format!("{USAGE}; found more tokens after the expression"),
            ));
        }
        Ok(expr)
    };
    parser.parse2(input)
}

/// Looks through parentheses and invisible groups around an expression.
fn peel(expr: Expr) -> Expr {
    match expr {
        Expr::Paren(paren) if paren.attrs.is_empty() => peel(*paren.expr),
        Expr::Group(group) if group.attrs.is_empty() => peel(*group.expr),
        other => other,
    }
}

/// Attributes on the expression given to `go!` have nowhere to go.
fn reject_attrs(attrs: &[syn::Attribute]) -> syn::Result<()> {
    match attrs.first() {
        None => Ok(()),
        Some(attr) => Err(syn::Error::new_spanned(
            attr,
            "gort: go! does not take attributes on its expression; \
             put them on the enclosing statement or item",
        )),
    }
}

/// A temporary with mixed-site hygiene, located at `at` so that errors about
/// it point into the user's code.
fn temp(name: &str, at: Span) -> Ident {
    Ident::new(name, Span::mixed_site().located_at(at))
}

/// `{ let ...; ::gort::spawn(move || call) }`, or just the spawn if nothing
/// had to be bound.
fn finish(bindings: TokenStream, call: TokenStream) -> TokenStream {
    if bindings.is_empty() {
        quote!(::gort::spawn(move || #call))
    } else {
        quote!({
            #bindings
            ::gort::spawn(move || #call)
        })
    }
}

/// Binds each argument in the caller (but closure literals, see
/// [`expand_go`]) and returns the parenthesised argument list for the call in
/// the goroutine, carrying the span of the user's parentheses.
fn bind_args(
    args: Punctuated<Expr, Comma>,
    paren: Paren,
    bindings: &mut TokenStream,
) -> TokenStream {
    let mut list = TokenStream::new();
    for (index, arg) in args.into_iter().enumerate() {
        if index > 0 {
            list.extend(quote!(,));
        }
        match peel(arg) {
            closure @ Expr::Closure(_) => closure.to_tokens(&mut list),
            arg => {
                let name = temp(&format!("__gort_a{index}"), arg.span());
                bindings.extend(quote!(let #name = #arg;));
                name.to_tokens(&mut list);
            }
        }
    }
    let mut group = Group::new(Delimiter::Parenthesis, list);
    group.set_span(paren.span.join());
    group.into_token_stream()
}

/// `go!(f(a, b))`.
fn expand_call(call: ExprCall) -> TokenStream {
    let ExprCall {
        func,
        paren_token,
        args,
        ..
    } = call;
    let mut bindings = TokenStream::new();
    let callee = match peel(*func) {
        Expr::Path(path) if path.attrs.is_empty() => path.into_token_stream(),
        other => {
            let name = temp("__gort_f", other.span());
            bindings.extend(quote!(let #name = #other;));
            name.into_token_stream()
        }
    };
    let args = bind_args(args, paren_token, &mut bindings);
    finish(bindings, quote!(#callee #args))
}

/// `go!(recv.method::<T>(a))`.
fn expand_method_call(call: ExprMethodCall) -> TokenStream {
    let ExprMethodCall {
        receiver,
        dot_token,
        method,
        turbofish,
        paren_token,
        args,
        ..
    } = call;
    let mut bindings = TokenStream::new();
    let receiver = peel(*receiver);
    let recv = temp("__gort_r", receiver.span());
    bindings.extend(quote!(let #recv = #receiver;));
    let args = bind_args(args, paren_token, &mut bindings);
    finish(bindings, quote!(#recv #dot_token #method #turbofish #args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(input: TokenStream) -> String {
        match expand_go(input) {
            Ok(tokens) => tokens.to_string(),
            Err(err) => panic!("unexpected error: {err}"),
        }
    }

    fn error(input: TokenStream) -> String {
        match expand_go(input) {
            Ok(tokens) => panic!("expected an error, got `{tokens}`"),
            Err(err) => err.to_string(),
        }
    }

    /// The tokens' text without whitespace: syn prints a closure's `||` as
    /// two single `|` tokens, which `quote!` joins.
    fn squeezed(text: &str) -> String {
        text.split_whitespace().collect()
    }

    #[test]
    fn closures_are_spawned_as_they_are() {
        for (input, want) in [
            (
                quote!(move || work(x)),
                quote!(::gort::spawn(move || work(x))),
            ),
            (quote!(|| 42), quote!(::gort::spawn(|| 42))),
            (
                quote!(move || -> u8 { 1 }),
                quote!(::gort::spawn(move || -> u8 { 1 })),
            ),
        ] {
            assert_eq!(squeezed(&expand(input)), squeezed(&want.to_string()));
        }
    }

    #[test]
    fn blocks_become_move_closures() {
        assert_eq!(
            expand(quote!({
                let y = x + 1;
                send(y);
            })),
            quote!(::gort::spawn(move || {
                let y = x + 1;
                send(y);
            }))
            .to_string()
        );
        assert_eq!(
            expand(quote!(unsafe { ffi() })),
            quote!(::gort::spawn(move || unsafe { ffi() })).to_string()
        );
    }

    #[test]
    fn call_binds_arguments_in_order() {
        assert_eq!(
            expand(quote!(f(a, b))),
            quote!({
                let __gort_a0 = a;
                let __gort_a1 = b;
                ::gort::spawn(move || f(__gort_a0, __gort_a1))
            })
            .to_string()
        );
    }

    #[test]
    fn call_with_a_trailing_comma_inside_the_parentheses() {
        assert_eq!(
            expand(quote!(f(a, b,))),
            quote!({
                let __gort_a0 = a;
                let __gort_a1 = b;
                ::gort::spawn(move || f(__gort_a0, __gort_a1))
            })
            .to_string()
        );
    }

    #[test]
    fn call_without_arguments_needs_no_block() {
        assert_eq!(
            expand(quote!(worker())),
            quote!(::gort::spawn(move || worker())).to_string()
        );
    }

    #[test]
    fn path_callees_are_not_bound() {
        assert_eq!(
            expand(quote!(<T as Tr>::run::<u8>(x))),
            quote!({
                let __gort_a0 = x;
                ::gort::spawn(move || <T as Tr>::run::<u8>(__gort_a0))
            })
            .to_string()
        );
        assert_eq!(
            expand(quote!(my::module::work(x))),
            quote!({
                let __gort_a0 = x;
                ::gort::spawn(move || my::module::work(__gort_a0))
            })
            .to_string()
        );
    }

    #[test]
    fn computed_callees_are_bound_first() {
        assert_eq!(
            expand(quote!(f(a)(b))),
            quote!({
                let __gort_f = f(a);
                let __gort_a0 = b;
                ::gort::spawn(move || __gort_f(__gort_a0))
            })
            .to_string()
        );
        assert_eq!(
            expand(quote!((self.handler)(req))),
            quote!({
                let __gort_f = self.handler;
                let __gort_a0 = req;
                ::gort::spawn(move || __gort_f(__gort_a0))
            })
            .to_string()
        );
    }

    #[test]
    fn macro_calls_in_arguments() {
        assert_eq!(
            expand(quote!(f(vec![1, 2], format!("{}", x)))),
            quote!({
                let __gort_a0 = vec![1, 2];
                let __gort_a1 = format!("{}", x);
                ::gort::spawn(move || f(__gort_a0, __gort_a1))
            })
            .to_string()
        );
    }

    #[test]
    fn closure_arguments_stay_in_the_call() {
        let want = quote!({
            let __gort_a0 = n;
            ::gort::spawn(move || run(__gort_a0, |x| x + 1))
        });
        assert_eq!(
            squeezed(&expand(quote!(run(n, |x| x + 1)))),
            squeezed(&want.to_string())
        );
    }

    #[test]
    fn method_call_binds_receiver_then_arguments() {
        assert_eq!(
            expand(quote!(server.serve(addr, cfg.clone()))),
            quote!({
                let __gort_r = server;
                let __gort_a0 = addr;
                let __gort_a1 = cfg.clone();
                ::gort::spawn(move || __gort_r.serve(__gort_a0, __gort_a1))
            })
            .to_string()
        );
    }

    #[test]
    fn method_call_with_turbofish_and_computed_receiver() {
        assert_eq!(
            expand(quote!(Arc::clone(&s).run::<u32, _>())),
            quote!({
                let __gort_r = Arc::clone(&s);
                ::gort::spawn(move || __gort_r.run::<u32, _>())
            })
            .to_string()
        );
    }

    #[test]
    fn parentheses_around_the_whole_expression_are_looked_through() {
        assert_eq!(
            expand(quote!((f(a)))),
            quote!({
                let __gort_a0 = a;
                ::gort::spawn(move || f(__gort_a0))
            })
            .to_string()
        );
    }

    #[test]
    fn invisible_groups_from_macro_rules_are_looked_through() {
        let inner = quote!(f(a));
        let input = Group::new(Delimiter::None, inner).into_token_stream();
        assert_eq!(
            expand(input),
            quote!({
                let __gort_a0 = a;
                ::gort::spawn(move || f(__gort_a0))
            })
            .to_string()
        );
    }

    #[test]
    fn user_names_like_temporaries_still_expand() {
        // The temporaries carry mixed-site spans, so a user variable that
        // happens to be called `__gort_a0` stays a different name; as text,
        // the expansion just shows both.
        assert_eq!(
            expand(quote!(f(__gort_a0))),
            quote!({
                let __gort_a0 = __gort_a0;
                ::gort::spawn(move || f(__gort_a0))
            })
            .to_string()
        );
    }

    #[test]
    fn other_expressions_are_rejected() {
        for input in [
            quote!(f),
            quote!(42),
            quote!(println!("x")),
            quote!(a + b),
            quote!(x.field),
            quote!(loop {}),
            quote!(if c {
                f()
            }),
        ] {
            assert_eq!(error(input), USAGE);
        }
    }

    #[test]
    fn empty_input_is_rejected() {
        assert_eq!(error(quote!()), USAGE);
    }

    #[test]
    fn trailing_tokens_are_rejected() {
        for input in [quote!(f(x),), quote!(f(x), g(y)), quote!(f(x) g)] {
            let msg = error(input);
            assert!(msg.starts_with(USAGE), "{msg}");
            assert!(msg.contains("more tokens after the expression"), "{msg}");
        }
    }

    #[test]
    fn non_expressions_are_rejected() {
        let msg = error(quote!(
            fn f() {}
        ));
        assert!(msg.starts_with(USAGE), "{msg}");
    }

    #[test]
    fn async_blocks_and_closures_are_rejected_with_a_hint() {
        let msg = error(quote!(async move { x.await }));
        assert!(msg.starts_with(USAGE), "{msg}");
        assert!(msg.contains("block_on"), "{msg}");
        let msg = error(quote!(async move || x.await));
        assert!(msg.starts_with(USAGE), "{msg}");
        assert!(msg.contains("block_on"), "{msg}");
    }

    #[test]
    fn attributes_on_the_expression_are_rejected() {
        let msg = error(quote!(
            #[allow(unused)]
            f(x)
        ));
        assert!(
            msg.starts_with("gort: go! does not take attributes"),
            "{msg}"
        );
    }
}
