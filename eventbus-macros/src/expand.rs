//! Code generation of `#[subscribe]` on functions and of `#[consumer]` on impl blocks.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{ImplItem, ItemFn, ItemImpl, Type};

use crate::options::{Options, crate_path, spanned_err};
use crate::signature::{self, Handler};

/// `Consumer` methods shared by both forms.
fn consumer_methods(
    krate: &TokenStream,
    name: TokenStream,
    options: &Options,
    handler: &Handler,
    call: impl FnOnce(&[syn::Ident]) -> TokenStream,
) -> TokenStream {
    let subscription = options.subscription(krate);
    let check = handler.check_body(krate);
    let body = handler.body(krate, call);
    let private = quote!(#krate::__private);
    // A batch handler's `handle` runs a single event as a batch of one.
    let (handle_body, batch_methods) = if handler.is_batch() {
        let single = quote! {
            let __one = [__envelope];
            #private::only_result(#private::Consumer::handle_batch(self, &__one, __ctx).await)
        };
        let batch = quote! {
            fn takes_batches(&self) -> bool {
                true
            }
            async fn handle_batch(
                &self,
                __envelopes: &[::std::sync::Arc<#private::Envelope>],
                __ctx: &#private::Context,
            ) -> ::std::vec::Vec<#private::HandlerResult> {
                #body
            }
        };
        (single, batch)
    } else {
        (body, quote!())
    };
    quote! {
        fn name(&self) -> &str {
            #name
        }
        fn subscription(&self) -> #private::Subscription {
            #subscription
        }
        fn check(&self, __ctx: &#private::Context) -> ::core::result::Result<(), #private::MissingState> {
            #check
        }
        async fn handle(
            &self,
            __envelope: ::std::sync::Arc<#private::Envelope>,
            __ctx: &#private::Context,
        ) -> #private::HandlerResult {
            #handle_body
        }
        #batch_methods
    }
}

/// `#[subscribe]` on a free function: the function stays as written; its
/// registration is a braced struct of the same name (types and values have
/// separate namespaces), registered with `.consumer(name {})` or
/// `consumers![name]`.
pub(crate) fn subscribe_fn(options: Options, function: ItemFn) -> syn::Result<TokenStream> {
    let handler = signature::analyse(&function.sig)?;
    if handler.has_receiver {
        return Err(spanned_err(
            &function.sig.inputs,
            "`#[subscribe]` on a method needs `#[eventbus::consumer]` on its impl block",
        ));
    }
    let krate = crate_path(&options.krate);
    let name = &function.sig.ident;
    let vis = &function.vis;
    let methods = consumer_methods(
        &krate,
        quote!(::core::concat!(::core::module_path!(), "::", ::core::stringify!(#name))),
        &options,
        &handler,
        |args| quote!(#name(#(#args),*)),
    );
    let doc = format!("The subscription of [`{name}()`]: register it with `.consumer({name} {{}})`.");
    Ok(quote! {
        #function

        #[doc = #doc]
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug, Default)]
        #vis struct #name {}

        impl #krate::__private::Consumer for #name {
            #methods
        }
    })
}

/// What `#[subscribe]` emits beside its error when the function is fine but
/// the attribute is not: the registration struct, so that the one mistake
/// gives one error rather than another at every `.consumer(name {})`.
pub(crate) fn stub(krate: &Option<syn::Path>, function: &ItemFn) -> TokenStream {
    let krate = crate_path(krate);
    let private = quote!(#krate::__private);
    let (vis, name) = (&function.vis, &function.sig.ident);
    quote! {
        #[allow(non_camel_case_types, dead_code)]
        #vis struct #name {}

        impl #private::Consumer for #name {
            fn name(&self) -> &str {
                ::core::stringify!(#name)
            }
            fn subscription(&self) -> #private::Subscription {
                #private::Subscription::new(::core::stringify!(#name))
            }
            async fn handle(
                &self,
                _: ::std::sync::Arc<#private::Envelope>,
                _: &#private::Context,
            ) -> #private::HandlerResult {
                ::core::result::Result::Ok(#private::Outcome::Retry)
            }
        }
    }
}

/// `#[consumer]` on an impl block: every method marked `#[subscribe]` stays a
/// plain method and gets a consumer beside it; `Arc<Self>` registers them all.
pub(crate) fn consumer_impl(krate: Option<syn::Path>, mut item: ItemImpl) -> syn::Result<TokenStream> {
    if !item.generics.params.is_empty() {
        return Err(spanned_err(&item.generics, "`#[eventbus::consumer]` does not support generic impl blocks"));
    }
    if let Some((_, path, _)) = &item.trait_ {
        return Err(spanned_err(path, "`#[eventbus::consumer]` goes on an inherent impl block, not a trait impl"));
    }
    let self_ty = (*item.self_ty).clone();
    let Type::Path(type_path) = &self_ty else {
        return Err(spanned_err(&self_ty, "`#[eventbus::consumer]` needs a named type"));
    };
    let type_name = type_path
        .path
        .segments
        .last()
        .map(|s| s.ident.clone())
        .ok_or_else(|| spanned_err(&self_ty, "expected a type name"))?;

    let mut errors: Option<syn::Error> = None;
    let mut generated = Vec::new();
    let mut constructors = Vec::new();
    let mut attribute_paths: Vec<syn::Path> = Vec::new();
    for impl_item in &mut item.items {
        let ImplItem::Fn(method) = impl_item else { continue };
        let Some(position) =
            method.attrs.iter().position(|a| a.path().segments.last().is_some_and(|s| s.ident == "subscribe"))
        else {
            continue;
        };
        let attribute = method.attrs.remove(position);
        if !attribute_paths.contains(attribute.path()) {
            attribute_paths.push(attribute.path().clone());
        }
        let result = attribute.parse_args::<Options>().and_then(|mut options| {
            let handler = signature::analyse(&method.sig)?;
            if !handler.has_receiver {
                return Err(spanned_err(
                    &method.sig.ident,
                    "a handler in a `#[eventbus::consumer]` impl takes `&self`",
                ));
            }
            options.krate = options.krate.take().or_else(|| krate.clone());
            let crate_tokens = crate_path(&options.krate);
            let method_name = &method.sig.ident;
            let struct_name = format_ident!("__eventbus_{}_{}", type_name, method_name);
            let display = format!("{type_name}::{method_name}");
            let methods = consumer_methods(
                &crate_tokens,
                quote!(#display),
                &options,
                &handler,
                |args| quote!(self.0.#method_name(#(#args),*)),
            );
            generated.push(quote! {
                #[doc(hidden)]
                #[allow(non_camel_case_types)]
                struct #struct_name(::std::sync::Arc<#self_ty>);
                impl #crate_tokens::__private::Consumer for #struct_name {
                    #methods
                }
            });
            constructors.push(
                quote!(#crate_tokens::__private::BoxedConsumer::new(#struct_name(::std::sync::Arc::clone(&self)))),
            );
            Ok(())
        });
        if let Err(error) = result {
            match &mut errors {
                Some(all) => all.combine(error),
                None => errors = Some(error),
            }
        }
    }
    if let Some(errors) = errors {
        let errors = errors.to_compile_error();
        return Ok(quote!(#item #errors));
    }
    if constructors.is_empty() {
        return Err(spanned_err(&item.self_ty, "no method of this impl block is marked `#[subscribe(\"topic\")]`"));
    }
    let krate = crate_path(&krate);
    Ok(quote! {
        #item
        // The `#[subscribe]` attributes were consumed here; this keeps their
        // imports from looking unused.
        const _: () = {
            #(#[allow(unused_imports)] use #attribute_paths as _;)*
        };
        #(#generated)*
        impl #krate::__private::SealedGroup for #self_ty {}
        impl #krate::__private::ConsumerGroup for #self_ty {
            fn consumers(self: ::std::sync::Arc<Self>) -> ::std::vec::Vec<#krate::__private::BoxedConsumer> {
                ::std::vec![#(#constructors),*]
            }
        }
    })
}
