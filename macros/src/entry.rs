//! `#[gort::main]` and `#[gort::test]`: turn a function into one whose body
//! runs as a goroutine on gort's runtime.
//!
//! Both attributes share one expansion, [`expand_entry`]; they differ only in
//! the runner they call (`run_main` or `run_test`), in the checks they make,
//! and in `#[gort::test]` adding `#[test]`.

use proc_macro2::{TokenStream, TokenTree};
use quote::{quote, ToTokens};
use syn::{Attribute, ItemFn, ReturnType, Signature, Type};

/// Which entry-point attribute is being expanded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    /// `#[gort::main]`: the body runs through `::gort::__private::run_main`.
    Main,
    /// `#[gort::test]`: the body runs through `::gort::__private::run_test`
    /// and the function gets `#[test]`.
    Test,
}

impl Entry {
    /// The attribute as the user writes it, for error messages.
    fn name(self) -> &'static str {
        match self {
            Entry::Main => "#[gort::main]",
            Entry::Test => "#[gort::test]",
        }
    }

    /// The facade function that runs the body as a goroutine.
    fn runner(self) -> TokenStream {
        match self {
            Entry::Main => quote!(::gort::__private::run_main),
            Entry::Test => quote!(::gort::__private::run_test),
        }
    }
}

/// Expands `#[gort::main]` / `#[gort::test]`; on error, returns the error
/// followed by the item unchanged, so that the one mistake does not also
/// produce "cannot find function" or "`main` function not found" errors.
pub(crate) fn expand_or_error(kind: Entry, attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand_entry(kind, attr, item.clone()) {
        Ok(tokens) => tokens,
        Err(err) => {
            let mut tokens = err.to_compile_error();
            tokens.extend(item);
            tokens
        }
    }
}

/// Expands an entry-point attribute.
///
/// `attr` is what was written between the attribute's parentheses (it must be
/// empty), `item` the function it was put on. The function keeps its
/// attributes, visibility and signature (minus `async`); its body becomes
///
/// ```text
/// RUNNER(move || -> RET { body })                                   // fn
/// RUNNER(move || -> RET { ::gort::block_on(async move { body }) })  // async fn
/// ```
///
/// and the function's return type becomes `::std::process::ExitCode`: the
/// runner calls `Termination::report` on the body's value inside the goroutine.
/// `RUNNER` is `::gort::__private::run_main` or `run_test`, and
/// `-> RET` is the function's own return type, written out so that `?` in the
/// body converts errors to it as it would in the function (it is left out when
/// the function has no return type, or one with `impl Trait` in it, which a
/// closure cannot name).
pub(crate) fn expand_entry(
    kind: Entry,
    attr: TokenStream,
    item: TokenStream,
) -> syn::Result<TokenStream> {
    let name = kind.name();
    if !attr.is_empty() {
        return Err(syn::Error::new_spanned(
            &attr,
            format!("gort: {name} takes no arguments, found `{attr}`; write `{name}` alone"),
        ));
    }
    let func: ItemFn = syn::parse2(item).map_err(|err| {
        syn::Error::new(
            err.span(),
            format!("gort: {name} can only be put on a function ({err})"),
        )
    })?;
    check_signature(kind, &func.sig)?;
    if kind == Entry::Test {
        if let Some(attr) = func.attrs.iter().find(|a| is_test_attr(a)) {
            return Err(syn::Error::new_spanned(
                attr,
                format!(
                    "gort: this function already has a test attribute `{}`; \
                     {name} adds `#[test]` itself, so remove the other one",
                    attr.to_token_stream()
                ),
            ));
        }
    }

    let ItemFn {
        attrs,
        vis,
        mut sig,
        block,
    } = func;
    let is_async = sig.asyncness.take().is_some();
    let ret = match &sig.output {
        ReturnType::Type(arrow, ty) if !mentions_impl(ty) => quote!(#arrow #ty),
        _ => TokenStream::new(),
    };
    let closure_body = match (is_async, ret.is_empty()) {
        (false, _) => quote!(#ret #block),
        (true, true) => quote!(::gort::block_on(async move #block)),
        (true, false) => quote!(#ret { ::gort::block_on(async move #block) }),
    };
    // The runner reports the body's `Termination` value inside the goroutine and hands back only
    // the `ExitCode`, so a non-`Send` return type (`Box<dyn Error>`) never crosses threads.
    // A test without a return type keeps it (`#[should_panic]` requires `()`); its body's `()`
    // always reports success, so the exit code is dropped.
    let discard_code = kind == Entry::Test && matches!(sig.output, ReturnType::Default);
    if !discard_code {
        sig.output = syn::parse_quote!(-> ::std::process::ExitCode);
    }
    let runner = kind.runner();
    let test_attr = match kind {
        Entry::Main => TokenStream::new(),
        Entry::Test => quote!(#[::core::prelude::v1::test]),
    };
    let call = if discard_code {
        quote!(let _ = #runner(move || #closure_body);)
    } else {
        quote!(#runner(move || #closure_body))
    };
    Ok(quote! {
        #test_attr
        #(#attrs)*
        #vis #sig {
            #call
        }
    })
}

/// Rejects what an entry point cannot have: another name than `main` (for
/// `#[gort::main]`), parameters, generics, `const`.
fn check_signature(kind: Entry, sig: &Signature) -> syn::Result<()> {
    let name = kind.name();
    if kind == Entry::Main && sig.ident != "main" {
        return Err(syn::Error::new_spanned(
            &sig.ident,
            format!(
                "gort: {name} can only be put on `fn main`, not on `fn {}`",
                sig.ident
            ),
        ));
    }
    let what = match kind {
        Entry::Main => "`fn main`".to_owned(),
        Entry::Test => format!("a {name} function"),
    };
    if let Some(constness) = &sig.constness {
        return Err(syn::Error::new_spanned(
            constness,
            format!("gort: {what} cannot be `const`"),
        ));
    }
    if !sig.inputs.is_empty() || sig.variadic.is_some() {
        let mut spanned = sig.inputs.to_token_stream();
        sig.variadic.to_tokens(&mut spanned);
        return Err(syn::Error::new_spanned(
            spanned,
            format!("gort: {what} cannot take arguments"),
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        let mut spanned = sig.generics.to_token_stream();
        sig.generics.where_clause.to_tokens(&mut spanned);
        return Err(syn::Error::new_spanned(
            spanned,
            format!("gort: {what} cannot be generic"),
        ));
    }
    Ok(())
}

/// Whether `attr` is a test attribute: `#[test]`, `#[core::prelude::v1::test]`,
/// `#[tokio::test]`, a second `#[gort::test]`... Any of them next to
/// `#[gort::test]` would register the test twice or run it on another runtime.
fn is_test_attr(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|segment| segment.ident == "test")
}

/// Whether the type mentions `impl Trait` anywhere, which a closure's return
/// type may not.
fn mentions_impl(ty: &Type) -> bool {
    fn scan(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|tree| match tree {
            TokenTree::Ident(ident) => ident == "impl",
            TokenTree::Group(group) => scan(group.stream()),
            TokenTree::Punct(_) | TokenTree::Literal(_) => false,
        })
    }
    scan(ty.to_token_stream())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(kind: Entry, attr: TokenStream, item: TokenStream) -> String {
        match expand_entry(kind, attr, item) {
            Ok(tokens) => tokens.to_string(),
            Err(err) => panic!("unexpected error: {err}"),
        }
    }

    fn error(kind: Entry, attr: TokenStream, item: TokenStream) -> String {
        match expand_entry(kind, attr, item) {
            Ok(tokens) => panic!("expected an error, got `{tokens}`"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn main_plain() {
        let got = expand(
            Entry::Main,
            quote!(),
            quote! {
                fn main() {
                    println!("hi");
                }
            },
        );
        let want = quote! {
            fn main() -> ::std::process::ExitCode {
                ::gort::__private::run_main(move || {
                    println!("hi");
                })
            }
        };
        assert_eq!(got, want.to_string());
    }

    #[test]
    fn main_keeps_attrs_vis_and_return_type() {
        let got = expand(
            Entry::Main,
            quote!(),
            quote! {
                /// Docs.
                #[allow(unused)]
                pub fn main() -> Result<(), std::io::Error> {
                    std::fs::read("x")?;
                    Ok(())
                }
            },
        );
        let want = quote! {
            /// Docs.
            #[allow(unused)]
            pub fn main() -> ::std::process::ExitCode {
                ::gort::__private::run_main(move || -> Result<(), std::io::Error> {
                    std::fs::read("x")?;
                    Ok(())
                })
            }
        };
        assert_eq!(got, want.to_string());
    }

    #[test]
    fn main_async() {
        let got = expand(
            Entry::Main,
            quote!(),
            quote! {
                async fn main() {
                    work().await;
                }
            },
        );
        let want = quote! {
            fn main() -> ::std::process::ExitCode {
                ::gort::__private::run_main(move || ::gort::block_on(async move {
                    work().await;
                }))
            }
        };
        assert_eq!(got, want.to_string());
    }

    #[test]
    fn main_async_with_return_type() {
        let got = expand(
            Entry::Main,
            quote!(),
            quote! {
                async fn main() -> Result<(), E> {
                    work().await?;
                    Ok(())
                }
            },
        );
        let want = quote! {
            fn main() -> ::std::process::ExitCode {
                ::gort::__private::run_main(move || -> Result<(), E> {
                    ::gort::block_on(async move {
                        work().await?;
                        Ok(())
                    })
                })
            }
        };
        assert_eq!(got, want.to_string());
    }

    #[test]
    fn impl_trait_return_type_is_not_written_on_the_closure() {
        let got = expand(
            Entry::Main,
            quote!(),
            quote! {
                fn main() -> impl std::process::Termination {
                    ()
                }
            },
        );
        let want = quote! {
            fn main() -> ::std::process::ExitCode {
                ::gort::__private::run_main(move || {
                    ()
                })
            }
        };
        assert_eq!(got, want.to_string());
    }

    #[test]
    fn test_plain_keeps_other_attributes() {
        let got = expand(
            Entry::Test,
            quote!(),
            quote! {
                #[should_panic(expected = "boom")]
                #[ignore]
                fn it_panics() {
                    panic!("boom");
                }
            },
        );
        let want = quote! {
            #[::core::prelude::v1::test]
            #[should_panic(expected = "boom")]
            #[ignore]
            fn it_panics() {
                let _ = ::gort::__private::run_test(move || {
                    panic!("boom");
                });
            }
        };
        assert_eq!(got, want.to_string());
    }

    #[test]
    fn test_async_returning_result() {
        let got = expand(
            Entry::Test,
            quote!(),
            quote! {
                async fn it_works() -> Result<(), String> {
                    step().await?;
                    Ok(())
                }
            },
        );
        let want = quote! {
            #[::core::prelude::v1::test]
            fn it_works() -> ::std::process::ExitCode {
                ::gort::__private::run_test(move || -> Result<(), String> {
                    ::gort::block_on(async move {
                        step().await?;
                        Ok(())
                    })
                })
            }
        };
        assert_eq!(got, want.to_string());
    }

    #[test]
    fn test_async_plain() {
        let got = expand(
            Entry::Test,
            quote!(),
            quote! {
                async fn it_works() {
                    step().await;
                }
            },
        );
        let want = quote! {
            #[::core::prelude::v1::test]
            fn it_works() {
                let _ = ::gort::__private::run_test(move || ::gort::block_on(async move {
                    step().await;
                }));
            }
        };
        assert_eq!(got, want.to_string());
    }

    #[test]
    fn attribute_arguments_are_rejected() {
        let msg = error(
            Entry::Main,
            quote!(flavor = "x"),
            quote!(
                fn main() {}
            ),
        );
        assert!(
            msg.starts_with("gort: #[gort::main] takes no arguments"),
            "{msg}"
        );
        let msg = error(
            Entry::Main,
            quote!(x),
            quote!(
                fn main() {}
            ),
        );
        assert!(
            msg.starts_with("gort: #[gort::main] takes no arguments"),
            "{msg}"
        );
        let msg = error(
            Entry::Test,
            quote!(x),
            quote!(
                fn t() {}
            ),
        );
        assert!(
            msg.starts_with("gort: #[gort::test] takes no arguments"),
            "{msg}"
        );
    }

    #[test]
    fn main_must_be_named_main() {
        let msg = error(
            Entry::Main,
            quote!(),
            quote!(
                fn start() {}
            ),
        );
        assert_eq!(
            msg,
            "gort: #[gort::main] can only be put on `fn main`, not on `fn start`"
        );
    }

    #[test]
    fn arguments_are_rejected() {
        let msg = error(
            Entry::Main,
            quote!(),
            quote!(
                fn main(x: i32) {}
            ),
        );
        assert_eq!(msg, "gort: `fn main` cannot take arguments");
        let msg = error(
            Entry::Test,
            quote!(),
            quote!(
                async fn t(x: i32) {}
            ),
        );
        assert_eq!(msg, "gort: a #[gort::test] function cannot take arguments");
    }

    #[test]
    fn generics_are_rejected() {
        let msg = error(
            Entry::Main,
            quote!(),
            quote!(
                fn main<T>() {}
            ),
        );
        assert_eq!(msg, "gort: `fn main` cannot be generic");
        let msg = error(
            Entry::Main,
            quote!(),
            quote!(
                fn main()
                where
                    u8: Copy,
                {
                }
            ),
        );
        assert_eq!(msg, "gort: `fn main` cannot be generic");
        let msg = error(
            Entry::Test,
            quote!(),
            quote!(
                fn t<'a>() {}
            ),
        );
        assert_eq!(msg, "gort: a #[gort::test] function cannot be generic");
    }

    #[test]
    fn const_is_rejected() {
        let msg = error(
            Entry::Main,
            quote!(),
            quote!(
                const fn main() {}
            ),
        );
        assert_eq!(msg, "gort: `fn main` cannot be `const`");
    }

    #[test]
    fn non_functions_are_rejected() {
        let msg = error(
            Entry::Main,
            quote!(),
            quote!(
                struct Main;
            ),
        );
        assert!(
            msg.starts_with("gort: #[gort::main] can only be put on a function"),
            "{msg}"
        );
    }

    #[test]
    fn a_second_test_attribute_is_rejected() {
        for attr in [
            quote!(#[test]),
            quote!(#[::core::prelude::v1::test]),
            quote!(#[tokio::test]),
        ] {
            let msg = error(Entry::Test, quote!(), quote!(#attr fn t() {}));
            assert!(
                msg.starts_with("gort: this function already has a test attribute"),
                "{msg}"
            );
        }
    }

    #[test]
    fn errors_keep_the_item() {
        let item = quote!(
            fn start() {}
        );
        let out = expand_or_error(Entry::Main, quote!(), item.clone()).to_string();
        assert!(out.contains("compile_error"), "{out}");
        assert!(out.ends_with(&item.to_string()), "{out}");
    }
}
