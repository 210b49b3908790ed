//! `#[derive(Trace)]`: an `unsafe impl gort::gc::Trace` that traces every field.
//!
//! | input | expansion of `trace(&self, t)` |
//! | --- | --- |
//! | `struct S { a: A, #[gc(skip)] b: B }` | `Trace::trace(&self.a, t);` |
//! | `struct T(A, B)` | `Trace::trace(&self.0, t); Trace::trace(&self.1, t);` |
//! | `enum E { V(A), W { x: X } }` | `match self { E::V(f0) => Trace::trace(f0, t), E::W { x } => ... }` |
//!
//! Every type parameter gets a `Trace` bound. The impl is sound because it reports each field
//! through that field's own `Trace` impl, unconditionally and in a fixed order; a skipped field's
//! handles (if any) are simply not reported, which the heap treats as outside handles (a leak at
//! worst, never a premature free). Unions, and `#[gc(...)]` attributes other than `skip` (and the
//! container's `crate = path`), are compile errors starting with `gort:`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{parse_quote, Data, DeriveInput, Field, Fields};

/// Whether `field` carries `#[gc(skip)]`; any other `#[gc]` content is an error.
fn skipped(field: &Field) -> syn::Result<bool> {
    let mut skip = false;
    for attr in &field.attrs {
        if !attr.path().is_ident("gc") {
            continue;
        }
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("skip") {
                skip = true;
                Ok(())
            } else {
                Err(meta.error(
                    "gort: unknown #[gc] field attribute; the only one is #[gc(skip)] (leave a \
                     field untraced)",
                ))
            }
        })?;
    }
    Ok(skip)
}

/// The container's `#[gc(crate = path)]`, default `::gort::gc`.
fn crate_path(input: &DeriveInput) -> syn::Result<syn::Path> {
    let mut path: syn::Path = parse_quote!(::gort::gc);
    for attr in &input.attrs {
        if !attr.path().is_ident("gc") {
            continue;
        }
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                path = meta.value()?.parse()?;
                Ok(())
            } else {
                Err(meta.error(
                    "gort: unknown #[gc] container attribute; the only one is #[gc(crate = path)] \
                     (#[gc(skip)] goes on fields)",
                ))
            }
        })?;
    }
    Ok(path)
}

/// Calls for the fields of one struct or variant, given how to name each field.
fn field_calls(
    fields: &Fields,
    krate: &syn::Path,
    access: impl Fn(usize, &Field) -> TokenStream,
) -> syn::Result<Vec<TokenStream>> {
    let mut calls = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        if skipped(f)? {
            continue;
        }
        let place = access(i, f);
        calls.push(quote!(#krate::Trace::trace(#place, __gort_tracer);));
    }
    Ok(calls)
}

/// The derive's expansion (see the module docs).
pub(crate) fn expand_trace(input: TokenStream) -> syn::Result<TokenStream> {
    let mut input: DeriveInput = syn::parse2(input)?;
    let krate = crate_path(&input)?;
    let name = &input.ident;
    let body = match &input.data {
        Data::Struct(s) => {
            let calls = field_calls(&s.fields, &krate, |i, f| match &f.ident {
                Some(id) => quote!(&self.#id),
                None => {
                    let idx = syn::Index::from(i);
                    quote!(&self.#idx)
                }
            })?;
            quote!(#(#calls)*)
        }
        Data::Enum(e) => {
            let mut arms = Vec::new();
            for v in &e.variants {
                let vname = &v.ident;
                let binding = |i: usize, f: &Field| match &f.ident {
                    Some(id) => format_ident!("__gort_{}", id),
                    None => format_ident!("__gort_f{}", i),
                };
                let calls = field_calls(&v.fields, &krate, |i, f| {
                    let b = binding(i, f);
                    quote!(#b)
                })?;
                let pat = match &v.fields {
                    Fields::Named(named) => {
                        let binds = named.named.iter().enumerate().map(|(i, f)| {
                            let id = f.ident.as_ref().expect("named field");
                            let b = binding(i, f);
                            quote!(#id: #b)
                        });
                        quote!(#name::#vname { #(#binds),* })
                    }
                    Fields::Unnamed(unnamed) => {
                        let binds = unnamed
                            .unnamed
                            .iter()
                            .enumerate()
                            .map(|(i, f)| binding(i, f));
                        quote!(#name::#vname ( #(#binds),* ))
                    }
                    Fields::Unit => quote!(#name::#vname),
                };
                arms.push(quote!(#pat => { #(#calls)* }));
            }
            if arms.is_empty() {
                quote!(match *self {})
            } else {
                quote! {
                    #[allow(unused_variables)]
                    match self { #(#arms)* }
                }
            }
        }
        Data::Union(u) => {
            return Err(syn::Error::new(
                u.union_token.span(),
                "gort: #[derive(Trace)] does not support unions (the collector could not know \
                 which field holds handles); implement Trace by hand",
            ))
        }
    };
    let plain = plain_drop(&input, &krate)?;
    let params: Vec<_> = input
        .generics
        .type_params()
        .map(|p| p.ident.clone())
        .collect();
    {
        let wc = input.generics.make_where_clause();
        for p in params {
            wc.predicates.push(parse_quote!(#p: #krate::Trace));
        }
    }
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        // SAFETY: generated by #[derive(Trace)]: reports every non-skipped field through the
        // field's own Trace impl, unconditionally and in a fixed order.
        #[automatically_derived]
        unsafe impl #impl_generics #krate::Trace for #name #ty_generics #where_clause {
            #[allow(unused_variables)]
            fn trace(&self, __gort_tracer: &mut #krate::Tracer<'_>) {
                #body
            }
            #plain
        }
    })
}

/// The `plain_drop` and `drop_is_handles_only` overrides: the type has no `Drop` impl of its own
/// (found with an inherent-impl probe: an inherent associated const bounded by `Drop` wins over the
/// trait's default exactly when the bound holds, and a `Drop` impl always covers every instance of
/// a generic type), its traced fields are all plain and its skipped fields need no drop. Nothing is
/// emitted (the defaults) when a type parameter may be unsized. A struct's last field may be
/// unsized whatever its spelling (a type alias of a slice, say): it is asked through a sizedness
/// probe, an inherent associated const that exists only for sized types, with a `false` fallback
/// for unsized ones.
fn plain_drop(input: &DeriveInput, krate: &syn::Path) -> syn::Result<TokenStream> {
    let maybe_unsized = |b: &syn::TypeParamBound| match b {
        syn::TypeParamBound::Trait(t) => {
            matches!(t.modifier, syn::TraitBoundModifier::Maybe(_))
        }
        _ => false,
    };
    if input
        .generics
        .type_params()
        .any(|p| p.bounds.iter().any(maybe_unsized))
    {
        return Ok(TokenStream::new());
    }
    if let Some(wc) = &input.generics.where_clause {
        for pred in &wc.predicates {
            if let syn::WherePredicate::Type(t) = pred {
                if t.bounds.iter().any(maybe_unsized) {
                    return Ok(TokenStream::new());
                }
            }
        }
    }
    let (fields, last_may_be_unsized): (Vec<&Field>, bool) = match &input.data {
        Data::Struct(s) => (s.fields.iter().collect(), true),
        Data::Enum(e) => (
            e.variants.iter().flat_map(|v| v.fields.iter()).collect(),
            false,
        ),
        Data::Union(_) => return Ok(TokenStream::new()),
    };
    let count = fields.len();
    let mut plain = Vec::new();
    let mut handles_only = Vec::new();
    for (i, f) in fields.into_iter().enumerate() {
        let ty = &f.ty;
        let skip = skipped(f)?;
        if last_may_be_unsized && i + 1 == count {
            if skip {
                plain.push(quote!(<__GortSizedProbe<#ty>>::NO_DROP));
                handles_only.push(quote!(<__GortSizedProbe<#ty>>::NO_DROP));
            } else {
                plain.push(quote!((<__GortSizedProbe<#ty>>::PLAIN)()));
                handles_only.push(quote!((<__GortSizedProbe<#ty>>::HANDLES_ONLY)()));
            }
        } else if skip {
            plain.push(quote!(!::core::mem::needs_drop::<#ty>()));
            handles_only.push(quote!(!::core::mem::needs_drop::<#ty>()));
        } else {
            plain.push(quote!(<#ty as #krate::Trace>::plain_drop()));
            handles_only.push(quote!(<#ty as #krate::Trace>::drop_is_handles_only()));
        }
    }
    let probe = quote! {
        struct __GortSizedProbe<T: ?Sized>(::core::marker::PhantomData<T>);
        trait __GortUnsized {
            const PLAIN: fn() -> bool = || false;
            const HANDLES_ONLY: fn() -> bool = || false;
            const NO_DROP: bool = false;
        }
        impl<T: ?Sized> __GortUnsized for __GortSizedProbe<T> {}
        #[allow(dead_code)]
        impl<T: #krate::Trace> __GortSizedProbe<T> {
            const PLAIN: fn() -> bool = T::plain_drop;
            const HANDLES_ONLY: fn() -> bool = T::drop_is_handles_only;
        }
        #[allow(dead_code)]
        impl<T> __GortSizedProbe<T> {
            const NO_DROP: bool = !::core::mem::needs_drop::<T>();
        }
        struct __GortDropProbe<T: ?Sized>(::core::marker::PhantomData<T>);
        trait __GortNoDropImpl {
            const HAS_DROP_IMPL: bool = false;
        }
        impl<T: ?Sized> __GortNoDropImpl for __GortDropProbe<T> {}
        #[allow(drop_bounds, dead_code)]
        impl<T: ?Sized + ::core::ops::Drop> __GortDropProbe<T> {
            const HAS_DROP_IMPL: bool = true;
        }
    };
    Ok(quote! {
        fn plain_drop() -> bool {
            #probe
            !<__GortDropProbe<Self>>::HAS_DROP_IMPL #(&& #plain)*
        }
        fn drop_is_handles_only() -> bool {
            #probe
            !<__GortDropProbe<Self>>::HAS_DROP_IMPL #(&& #handles_only)*
        }
    })
}

#[cfg(test)]
mod tests {
    use super::expand_trace;
    use quote::quote;

    fn expand(input: proc_macro2::TokenStream) -> String {
        match expand_trace(input) {
            Ok(t) => t.to_string(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn struct_fields_are_traced_and_skips_left_out() {
        let out = expand(quote!(
            struct S<T> {
                a: Gc<T>,
                #[gc(skip)]
                b: String,
            }
        ));
        assert!(out.contains("self . a"), "{out}");
        assert!(!out.contains("self . b"), "{out}");
        assert!(out.contains("T : :: gort :: gc :: Trace"), "{out}");
    }

    #[test]
    fn enums_bind_every_variant() {
        let out = expand(quote!(
            enum E {
                A(Gc<u8>, u8),
                B { x: Gc<u8> },
                C,
            }
        ));
        assert!(out.contains("E :: A (__gort_f0 , __gort_f1)"), "{out}");
        assert!(out.contains("E :: B { x : __gort_x }"), "{out}");
        assert!(out.contains("E :: C"), "{out}");
    }

    #[test]
    fn unions_and_unknown_attributes_are_errors() {
        assert!(expand(quote!(
            union U {
                a: u8,
            }
        ))
        .contains("gort: #[derive(Trace)] does not support unions"));
        assert!(expand(quote!(
            struct S {
                #[gc(skipp)]
                a: u8,
            }
        ))
        .contains("gort: unknown #[gc] field attribute"));
    }

    #[test]
    fn crate_path_can_be_overridden() {
        let out = expand(quote!(
            #[gc(crate = gort_gc)]
            struct S(u8);
        ));
        assert!(out.contains("unsafe impl gort_gc :: Trace for S"), "{out}");
    }
}
