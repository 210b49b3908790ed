//! `select!` and `select_async!`: crossbeam-channel's case syntax, expanded onto gort-chan's engine.
//!
//! The user-facing macros are `macro_rules!` wrappers in gort-chan that call the hidden
//! `select_impl!` with the path of gort-chan (`$crate`) and the flavour (`sync` or `async`) in front
//! of the cases, so the expansion names gort-chan's items whichever crate re-exports the macros.
//! The work is in [`expand_select`], which takes and returns `proc_macro2` tokens so that unit tests
//! can call it.
//!
//! # Expansion
//!
//! ```text
//! select! {                                  match (receiver_of(&(r)), sender_of(&(s))) {
//!     recv(r) -> a => A,                         (t0, t1) => {    // channels, once, in order
//!     send(s, v) -> b => B,                          let c0 = RecvCase::new(t0);
//!     default => D,                                  let c1 = SendCase::new(t1);
//! }                                                  match select([&c0, &c1], Mode::NonBlock) {
//!                                                        0 => { let r = c0.into_result(); drop(c1);
//!                                                               let a = r; A }
//!                                                        1 => { let r = c1.complete(v); drop(c0);
//!                                                               let b = r; B }
//!                                                        _ => { drop(c0); drop(c1); D }
//!                                                    }
//!                                                }
//!                                            }
//! ```
//!
//! `v` appears only in its own arm, so it is evaluated (and moved) only if its case fired. Every case
//! is consumed or dropped before a body runs, so bodies may assign to the channel variables (Go's
//! `c = nil` idiom becomes `c = None`). `default(t)` evaluates `t` with the channels, in source order,
//! and waits with `Mode::timeout(t)`. `select_async!` replaces the call by
//! `SelectFuture::new([...], has_default).await`. Generated names have mixed-site hygiene.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{token, Expr, Ident, Pat, Token};

/// The message of every "this is not a case" error.
pub(crate) const USAGE: &str = "gort: select! expects cases of the form `recv(r) -> res => body`, \
    `send(s, v) -> res => body`, `default => body` or `default(timeout) => body`";

/// The parsed input of `select_impl!`.
struct Input {
    /// The path to gort-chan, as the wrapper macro passed it (`$crate`).
    krate: TokenTree,
    asynchronous: bool,
    cases: Vec<Case>,
    default: Option<Default>,
}

enum Op {
    Recv { chan: Expr },
    Send { chan: Expr, msg: Expr },
}

struct Case {
    op: Op,
    pat: Pat,
    body: Expr,
}

struct Default {
    timeout: Option<Expr>,
    /// How many channel cases come before it (the timeout is evaluated in source order).
    position: usize,
    body: Expr,
}

impl Parse for Input {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let krate: TokenTree = input.parse()?;
        input.parse::<Token![,]>()?;
        let asynchronous = if input.peek(Token![async]) {
            input.parse::<Token![async]>()?;
            true
        } else {
            let flavour: Ident = input.parse()?;
            if flavour != "sync" {
                return Err(syn::Error::new(
                    flavour.span(),
                    "gort: select_impl! is gort-chan's plumbing; use select! or select_async!",
                ));
            }
            false
        };
        input.parse::<Token![,]>()?;
        let name = if asynchronous {
            "select_async!"
        } else {
            "select!"
        };
        let mut cases = Vec::new();
        let mut default: Option<Default> = None;
        while !input.is_empty() {
            let keyword: Ident = input
                .call(syn::ext::IdentExt::parse_any)
                .map_err(|e| syn::Error::new(e.span(), USAGE))?;
            match keyword.to_string().as_str() {
                "recv" => {
                    let args = parenthesized(input, &keyword)?;
                    let chan: Expr = args.parse()?;
                    if args.peek(Token![,]) {
                        args.parse::<Token![,]>()?;
                    }
                    if !args.is_empty() {
                        return Err(args.error(
                            "gort: recv takes one argument, the receiver: `recv(r) -> res => body`",
                        ));
                    }
                    let pat = result_pattern(input, "recv(r)")?;
                    arrow(input)?;
                    let body = case_body(input)?;
                    cases.push(Case {
                        op: Op::Recv { chan },
                        pat,
                        body,
                    });
                }
                "send" => {
                    let args = parenthesized(input, &keyword)?;
                    let chan: Expr = args.parse()?;
                    if args.is_empty() {
                        return Err(syn::Error::new(
                            keyword.span(),
                            "gort: send takes two arguments, the sender and the value: \
                             `send(s, v) -> res => body`",
                        ));
                    }
                    args.parse::<Token![,]>()?;
                    let msg: Expr = args.parse()?;
                    if args.peek(Token![,]) {
                        args.parse::<Token![,]>()?;
                    }
                    if !args.is_empty() {
                        return Err(args.error(
                            "gort: send takes two arguments, the sender and the value: \
                             `send(s, v) -> res => body`",
                        ));
                    }
                    let pat = result_pattern(input, "send(s, v)")?;
                    arrow(input)?;
                    let body = case_body(input)?;
                    cases.push(Case {
                        op: Op::Send { chan, msg },
                        pat,
                        body,
                    });
                }
                "default" => {
                    if default.is_some() {
                        return Err(syn::Error::new(
                            keyword.span(),
                            format!("gort: {name} takes at most one `default` case"),
                        ));
                    }
                    let timeout = if input.peek(token::Paren) {
                        let args = parenthesized(input, &keyword)?;
                        let t: Expr = args.parse()?;
                        if args.peek(Token![,]) {
                            args.parse::<Token![,]>()?;
                        }
                        if !args.is_empty() {
                            return Err(args.error(
                                "gort: default takes at most one argument, the timeout: \
                                 `default(timeout) => body`",
                            ));
                        }
                        if asynchronous {
                            return Err(syn::Error::new(
                                keyword.span(),
                                "gort: select_async! has no `default(timeout)`; add a `recv` \
                                 case on a channel that a timer sends to instead",
                            ));
                        }
                        Some(t)
                    } else {
                        None
                    };
                    if input.peek(Token![->]) {
                        return Err(input
                            .error("gort: a default case has no result: write `default => body`"));
                    }
                    arrow(input)?;
                    let body = case_body(input)?;
                    default = Some(Default {
                        timeout,
                        position: cases.len(),
                        body,
                    });
                }
                other => {
                    return Err(syn::Error::new(
                        keyword.span(),
                        format!("{USAGE}; found `{other}`"),
                    ));
                }
            }
        }
        Ok(Input {
            krate,
            asynchronous,
            cases,
            default,
        })
    }
}

/// The parenthesized arguments after a case keyword.
fn parenthesized<'a>(
    input: ParseStream<'a>,
    keyword: &Ident,
) -> syn::Result<syn::parse::ParseBuffer<'a>> {
    if !input.peek(token::Paren) {
        return Err(syn::Error::new(
            keyword.span(),
            format!("gort: expected `(` after `{keyword}`; {}", &USAGE[6..]),
        ));
    }
    let content;
    syn::parenthesized!(content in input);
    Ok(content)
}

/// `-> pattern` after a channel case.
fn result_pattern(input: ParseStream, case: &str) -> syn::Result<Pat> {
    if !input.peek(Token![->]) {
        return Err(input.error(format!(
            "gort: expected `-> res` after `{case}`, as in `{case} -> res => body` \
             (write `-> _` to ignore the result)"
        )));
    }
    input.parse::<Token![->]>()?;
    Pat::parse_multi_with_leading_vert(input)
}

/// The `=>` before a body.
fn arrow(input: ParseStream) -> syn::Result<()> {
    if !input.peek(Token![=>]) {
        return Err(input.error("gort: expected `=>` before the case's body"));
    }
    input.parse::<Token![=>]>()?;
    Ok(())
}

/// A case's body: an expression and a comma, or a block-like expression (comma optional), as in a
/// `match` arm.
fn case_body(input: ParseStream) -> syn::Result<Expr> {
    let body: Expr = input.parse()?;
    if input.is_empty() {
        return Ok(body);
    }
    if input.peek(Token![,]) {
        input.parse::<Token![,]>()?;
        return Ok(body);
    }
    if block_like(&body) {
        return Ok(body);
    }
    Err(input.error("gort: expected `,` after the case's body"))
}

/// Whether an expression ends with a block, so a following case needs no comma (as in `match`).
fn block_like(e: &Expr) -> bool {
    matches!(
        e,
        Expr::Block(_)
            | Expr::If(_)
            | Expr::Match(_)
            | Expr::Loop(_)
            | Expr::While(_)
            | Expr::ForLoop(_)
            | Expr::Unsafe(_)
            | Expr::Const(_)
    )
}

/// The binding of case `i`'s channel: mixed-site hygiene (invisible to the user's code) but located
/// at the user's expression, so that a type error in `recv(...)`/`send(...)` points there.
fn target_ident(i: usize, chan: &Expr) -> Ident {
    format_ident!(
        "__gort_t{}",
        i,
        span = Span::mixed_site().located_at(chan.span())
    )
}

/// Expands `select_impl!(krate, sync|async, cases...)`.
pub(crate) fn expand_select(input: TokenStream) -> syn::Result<TokenStream> {
    let input: Input = syn::parse2(input)?;
    let krate = &input.krate;
    let private = quote!(#krate::__private);
    let site = Span::mixed_site();

    // The scrutinee: every channel (by reference) and the timeout (by value), in source order.
    let mut scrutinee = Vec::new();
    let mut bindings = Vec::new();
    let mut timeout_binding = None;
    for i in 0..=input.cases.len() {
        if let Some(Default {
            timeout: Some(t),
            position,
            ..
        }) = &input.default
        {
            if *position == i {
                let name = Ident::new("__gort_timeout", site);
                scrutinee.push(quote!((#t)));
                bindings.push(name.clone());
                timeout_binding = Some(name);
            }
        }
        if let Some(case) = input.cases.get(i) {
            // `receiver_of(&(r))`: the temporary lives to the end of the match, and a wrong type is
            // reported on the user's expression.
            let (chan, convert) = match &case.op {
                Op::Recv { chan } => (chan, quote_spanned!(chan.span()=> #private::receiver_of)),
                Op::Send { chan, .. } => (chan, quote_spanned!(chan.span()=> #private::sender_of)),
            };
            scrutinee.push(quote_spanned!(chan.span()=> #convert(&(#chan))));
            bindings.push(target_ident(i, chan));
        }
    }

    let case_names: Vec<Ident> = (0..input.cases.len())
        .map(|i| format_ident!("__gort_c{}", i, span = site))
        .collect();
    let constructors = input.cases.iter().enumerate().map(|(i, case)| {
        let name = &case_names[i];
        let target = match &case.op {
            Op::Recv { chan } | Op::Send { chan, .. } => target_ident(i, chan),
        };
        match &case.op {
            Op::Recv { chan } => {
                quote_spanned!(chan.span()=> let #name = #private::RecvCase::new(#target);)
            }
            Op::Send { chan, .. } => {
                quote_spanned!(chan.span()=> let #name = #private::SendCase::new(#target);)
            }
        }
    });
    let case_trait = if input.asynchronous {
        quote!(&(dyn #private::Case + ::core::marker::Sync))
    } else {
        quote!(&dyn #private::Case)
    };
    let case_refs = case_names.iter().map(|n| quote!(&#n as #case_trait));

    let has_default = input.default.is_some();
    let index = Ident::new("__gort_index", site);
    let run = if input.asynchronous {
        quote!(#private::SelectFuture::new([#(#case_refs),*], #has_default).await)
    } else {
        let mode = match (&input.default, &timeout_binding) {
            (Some(_), Some(t)) => quote!(#private::Mode::timeout(#t)),
            (Some(_), None) => quote!(#private::Mode::NonBlock),
            (None, _) => quote!(#private::Mode::Block),
        };
        quote!(#private::select([#(#case_refs),*], #mode))
    };

    let result = Ident::new("__gort_result", site);
    let arms = input.cases.iter().enumerate().map(|(i, case)| {
        let name = &case_names[i];
        let pat = &case.pat;
        let body = &case.body;
        let others = case_names.iter().filter(|n| *n != name);
        let take = match &case.op {
            Op::Recv { .. } => quote!(#private::RecvCase::into_result(#name)),
            Op::Send { msg, .. } => quote!(#private::SendCase::complete(#name, #msg)),
        };
        quote! {
            #i => {
                let #result = #take;
                #( ::core::mem::drop(#others); )*
                let #pat = #result;
                #body
            }
        }
    });
    let fallback = match &input.default {
        Some(d) => {
            let body = &d.body;
            quote! {
                _ => {
                    #( ::core::mem::drop(#case_names); )*
                    #body
                }
            }
        }
        None => quote! {
            _ => ::core::unreachable!("gort: select! ended without a case"),
        },
    };

    Ok(quote! {
        match (#(#scrutinee,)*) {
            (#(#bindings,)*) => {
                #(#constructors)*
                let #index: usize = #run;
                match #index {
                    #(#arms)*
                    #fallback
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(input: TokenStream) -> String {
        expand_select(input).unwrap().to_string()
    }

    fn error(input: TokenStream) -> String {
        expand_select(input).unwrap_err().to_string()
    }

    #[test]
    fn send_value_appears_only_in_its_arm() {
        let out = expand(quote!(krate, sync, recv(r) -> a => 1, send(s, make_value()) -> b => 2,));
        assert_eq!(out.matches("make_value").count(), 1);
        assert!(out.contains("Mode :: Block"));
    }

    #[test]
    fn default_and_timeout_pick_the_mode() {
        assert!(expand(quote!(k, sync, recv(r) -> a => 1, default => 2)).contains("NonBlock"));
        let out = expand(quote!(k, sync, recv(r) -> a => 1, default(d) => 2));
        assert!(out.contains("Mode :: timeout"));
        let out = expand(quote!(k, async, recv(r) -> a => 1, default => 2));
        assert!(out.contains("SelectFuture :: new") && out.contains("true"));
    }

    #[test]
    fn blocks_need_no_comma_but_expressions_do() {
        expand(quote!(k, sync, recv(r) -> a => { 1 } recv(q) -> b => { 2 }));
        assert!(
            error(quote!(k, sync, recv(r) -> a => 1 recv(q) -> b => 2)).contains("expected `,`")
        );
    }

    #[test]
    fn errors_name_the_mistake() {
        assert!(error(quote!(k, sync, recv(r) => 1)).contains("expected `-> res`"));
        assert!(error(quote!(k, sync, send(s) -> r => 1)).contains("two arguments"));
        assert!(error(quote!(k, sync, recv(a, b) -> r => 1)).contains("one argument"));
        assert!(error(quote!(k, sync, default => 1, default => 2)).contains("at most one"));
        assert!(error(quote!(k, sync, wait(r) -> x => 1)).contains("found `wait`"));
        assert!(error(quote!(k, async, default(t) => 1)).contains("no `default(timeout)`"));
        assert!(error(quote!(k, sync, default -> x => 1)).contains("no result"));
        assert!(error(quote!(k, sync, recv r -> x => 1)).contains("expected `(`"));
        for e in [
            error(quote!(k, sync, recv(r) -> a 1)),
            error(quote!(k, sync, recv(r) => 1)),
        ] {
            assert!(e.starts_with("gort: "), "{e}");
        }
    }

    #[test]
    fn empty_select_blocks() {
        let out = expand(quote!(k, sync,));
        assert!(out.contains("unreachable"));
    }
}
