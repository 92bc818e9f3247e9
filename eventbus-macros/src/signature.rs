//! What a handler's signature says: its event type, the other arguments the
//! framework supplies, its return type; and the code that calls it.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, PathArguments, ReturnType, Signature, Type};

/// One argument (the receiver excluded).
pub(crate) struct Arg {
    pub ty: Type,
    /// `Some(T)` for the `Event<T>` argument.
    pub event_data: Option<Type>,
    /// `Some(T)` for a `Vec<Event<T>>` argument: the handler takes whole batches.
    pub batch_data: Option<Type>,
}

/// A checked handler signature.
pub(crate) struct Handler {
    pub args: Vec<Arg>,
    pub ret: Type,
    pub has_receiver: bool,
}

/// `T` of `Wrapper<T>` when the type's last path segment is `wrapper`.
fn only_type_argument<'a>(ty: &'a Type, wrapper: &str) -> Option<&'a Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != wrapper {
        return None;
    }
    let PathArguments::AngleBracketed(generics) = &last.arguments else { return None };
    match generics.args.first()? {
        GenericArgument::Type(inner) if generics.args.len() == 1 => Some(inner),
        _ => None,
    }
}

/// `T` of `Event<T>`.
fn event_data(ty: &Type) -> Option<&Type> {
    only_type_argument(ty, "Event")
}

/// `T` of `Vec<Event<T>>`.
fn batch_data(ty: &Type) -> Option<&Type> {
    only_type_argument(ty, "Vec").and_then(event_data)
}

fn contains_impl_trait(ty: &Type) -> bool {
    match ty {
        Type::ImplTrait(_) => true,
        Type::Reference(r) => contains_impl_trait(&r.elem),
        Type::Path(p) => p.path.segments.iter().any(|s| match &s.arguments {
            PathArguments::AngleBracketed(a) => {
                a.args.iter().any(|g| matches!(g, GenericArgument::Type(t) if contains_impl_trait(t)))
            }
            _ => false,
        }),
        _ => false,
    }
}

/// Checks the signature; every problem is an error on its own token.
pub(crate) fn analyse(sig: &Signature) -> syn::Result<Handler> {
    let mut errors: Option<syn::Error> = None;
    let mut push = |error: syn::Error| match &mut errors {
        Some(all) => all.combine(error),
        None => errors = Some(error),
    };
    if sig.asyncness.is_none() {
        push(syn::Error::new(sig.fn_token.span(), "a handler must be an `async fn`"));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        push(syn::Error::new(sig.generics.span(), "a handler cannot be generic: its event type must be concrete"));
    }
    if let Some(variadic) = &sig.variadic {
        push(syn::Error::new(variadic.span(), "a handler cannot be variadic"));
    }
    let mut args = Vec::new();
    let mut has_receiver = false;
    let mut event_seen = false;
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => {
                if receiver.reference.is_none() || receiver.mutability.is_some() {
                    push(syn::Error::new(receiver.span(), "a handler method takes `&self`"));
                }
                has_receiver = true;
            }
            FnArg::Typed(typed) => {
                let ty = (*typed.ty).clone();
                if contains_impl_trait(&ty) {
                    push(syn::Error::new(ty.span(), "a handler argument cannot be `impl Trait`: name a concrete type"));
                    continue;
                }
                let data = event_data(&ty).cloned();
                let batch = batch_data(&ty).cloned();
                if data.is_some() || batch.is_some() {
                    if event_seen {
                        push(syn::Error::new(
                            ty.span(),
                            "a handler takes exactly one `Event<T>` (or `Vec<Event<T>>`) argument",
                        ));
                    }
                    event_seen = true;
                }
                args.push(Arg { ty, event_data: data, batch_data: batch });
            }
        }
    }
    if !event_seen {
        push(syn::Error::new(
            sig.ident.span(),
            "a handler takes an `Event<T>` argument, e.g. `event: Event<OrderCompleted>` (or `Vec<Event<T>>` for whole batches)",
        ));
    }
    let ret = match &sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => {
            if contains_impl_trait(ty) {
                push(syn::Error::new(
                    ty.span(),
                    "a handler cannot return `impl Trait`: use `()`, `Outcome` or `Result<(), E>`",
                ));
            }
            (**ty).clone()
        }
    };
    match errors {
        Some(errors) => Err(errors),
        None => Ok(Handler { args, ret, has_receiver }),
    }
}

impl Handler {
    /// `__arg0, __arg1, …`
    pub(crate) fn arg_names(&self) -> Vec<syn::Ident> {
        (0..self.args.len()).map(|i| format_ident!("__arg{}", i)).collect()
    }

    pub(crate) fn arg_types(&self) -> Vec<&Type> {
        self.args.iter().map(|a| &a.ty).collect()
    }

    /// The body of `Consumer::handle`: decode the event, take the other
    /// arguments from the context, call, convert the result. Trait paths carry
    /// the span of the type they are about, so an unsupported type gets one
    /// error, on its own token.
    pub(crate) fn handle_body(
        &self,
        krate: &TokenStream,
        call: impl FnOnce(&[syn::Ident]) -> TokenStream,
    ) -> TokenStream {
        let names = self.arg_names();
        let bindings = self.args.iter().zip(&names).map(|(arg, name)| match &arg.event_data {
            Some(data) => {
                let decode = quote_spanned!(data.span()=> <#data as #krate::EventData>::decode(&__envelope));
                quote! {
                    let #name = match #decode {
                        ::core::result::Result::Ok(data) => #krate::Event::new(__envelope, data),
                        ::core::result::Result::Err(error) => return ::core::result::Result::Err(#krate::HandlerError::permanent(error)),
                    };
                }
            }
            None => {
                let ty = &arg.ty;
                let take = quote_spanned!(ty.span()=> <#ty as #krate::FromContext>::from_context(__ctx));
                quote!(let #name = #take?;)
            }
        });
        let ret = &self.ret;
        let convert = quote_spanned!(ret.span()=> <#ret as #krate::IntoOutcome>::into_outcome(__result));
        let call = call(&names);
        quote! {
            ::std::boxed::Box::pin(async move {
                #(#bindings)*
                let __result: #ret = #call.await;
                #convert
            })
        }
    }

    /// `true` when the handler takes `Vec<Event<T>>`.
    pub(crate) fn is_batch(&self) -> bool {
        self.args.iter().any(|a| a.batch_data.is_some())
    }

    /// An expression (of type `Vec<HandlerResult>`) that runs a batch
    /// handler on `__envelopes: &[Arc<Envelope>]`.
    pub(crate) fn batch_body(
        &self,
        krate: &TokenStream,
        call: impl FnOnce(&[syn::Ident]) -> TokenStream,
    ) -> TokenStream {
        let names = self.arg_names();
        let mut data = None;
        let bindings: Vec<TokenStream> = self
            .args
            .iter()
            .zip(&names)
            .filter_map(|(arg, name)| {
                if let Some(batch) = &arg.batch_data {
                    data = Some(batch.clone());
                    return None;
                }
                let ty = &arg.ty;
                let take = quote_spanned!(ty.span()=> <#ty as #krate::FromContext>::from_context(__ctx));
                Some(quote! {
                    let #name = match #take {
                        ::core::result::Result::Ok(value) => value,
                        ::core::result::Result::Err(error) => return #krate::__private::failed_batch(__envelopes.len(), error),
                    };
                })
            })
            .collect();
        let batch_name = self.args.iter().zip(&names).find(|(a, _)| a.batch_data.is_some()).map(|(_, n)| n.clone());
        let call = call(&names);
        quote! {
            async {
                #(#bindings)*
                #krate::decode_batch::<#data, _, _>(__envelopes, move |#batch_name| #call).await
            }
            .await
        }
    }

    /// The body of `Consumer::check`.
    pub(crate) fn check_body(&self, krate: &TokenStream) -> TokenStream {
        let checks = self.args.iter().filter(|a| a.event_data.is_none() && a.batch_data.is_none()).map(|arg| {
            let ty = &arg.ty;
            quote_spanned!(ty.span()=> <#ty as #krate::FromContext>::check(__ctx)?;)
        });
        quote! {
            #(#checks)*
            ::core::result::Result::Ok(())
        }
    }
}
