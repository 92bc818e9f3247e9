//! Code generation of `#[subscribe]` on functions and of `#[consumer]` on impl blocks.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{ImplItem, ItemFn, ItemImpl, Type};

use crate::options::{Options, crate_path, spanned_err};
use crate::signature::{self, Handler};

/// How a registration gets its handler: `fn __handler(#param) -> impl
/// Handler<Args> { #body }`, called as `#make` in its methods.
struct HandlerFn {
    param: TokenStream,
    make: TokenStream,
    body: TokenStream,
}

/// The registration of one handler: the `Consumer` impl of the struct
/// `registration` (the name, the subscription and the options), which calls
/// the handler through the `Handler` trait, as `eventbus::handler` does.
fn registration(
    krate: &TokenStream,
    registration: &TokenStream,
    name: TokenStream,
    options: &Options,
    signature: &Handler,
    handler: HandlerFn,
) -> TokenStream {
    let HandlerFn { param: handler_arg, make: make_handler, body: handler } = handler;
    let private = quote!(#krate::__private);
    let subscription = options.subscription(krate);
    let args = signature.args_tuple();
    let checks = signature.checks(krate);
    quote! {
        impl #registration {
            fn __handler(#handler_arg) -> impl #private::Handler<#args> {
                #checks
                #handler
            }
        }

        impl #private::Consumer for #registration {
            fn name(&self) -> &str {
                #name
            }
            fn subscription(&self) -> #private::Subscription {
                #subscription
            }
            fn check(&self, __ctx: &#private::Context) -> ::core::result::Result<(), #private::MissingState> {
                #private::check::<#args, _>(&#make_handler, __ctx)
            }
            fn takes_batches(&self) -> bool {
                #private::takes_batches::<#args, _>(&#make_handler)
            }
            fn handle<'a>(
                &'a self,
                __delivery: #private::Delivery<'a>,
                __ctx: &'a #private::Context,
            ) -> impl ::core::future::Future<Output = #private::Answers> + ::core::marker::Send + 'a {
                let __handler = #make_handler;
                async move { #private::Handler::<#args>::call(&__handler, __delivery, __ctx).await }
            }
        }
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
    let registration = registration(
        &krate,
        &quote!(#name),
        quote!(::core::concat!(::core::module_path!(), "::", ::core::stringify!(#name))),
        &options,
        &handler,
        HandlerFn { param: quote!(), make: quote!(Self::__handler()), body: quote!(#name) },
    );
    let doc = format!("The subscription of [`{name}()`]: register it with `.consumer({name} {{}})`.");
    Ok(quote! {
        #function

        #[doc = #doc]
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug, Default)]
        #vis struct #name {}

        #registration
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
            fn handle<'a>(
                &'a self,
                __delivery: #private::Delivery<'a>,
                _: &'a #private::Context,
            ) -> impl ::core::future::Future<Output = #private::Answers> + ::core::marker::Send + 'a {
                async move { __delivery.answer(#krate::Outcome::Retry) }
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
            let (names, types) = (handler.arg_names(), &handler.args);
            let registration = registration(
                &crate_tokens,
                &quote!(#struct_name),
                quote!(#display),
                &options,
                &handler,
                HandlerFn {
                    param: quote!(__this: ::std::sync::Arc<#self_ty>),
                    make: quote!(Self::__handler(::std::sync::Arc::clone(&self.0))),
                    // The method as a function of its extractors, owning `self`.
                    body: quote! {
                        move |#(#names: #types),*| {
                            let __this = ::std::sync::Arc::clone(&__this);
                            async move { __this.#method_name(#(#names),*).await }
                        }
                    },
                },
            );
            generated.push(quote! {
                #[doc(hidden)]
                #[allow(non_camel_case_types)]
                struct #struct_name(::std::sync::Arc<#self_ty>);
                #registration
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
