//! What a handler's signature says: its arguments (extractors), whether it
//! takes whole batches, its return type; and the code that calls it.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, PathArguments, ReturnType, Signature, Type};

/// One argument (the receiver excluded).
pub(crate) struct Arg {
    pub ty: Type,
    /// `T` of an `Event<T>` argument, or of the `Vec<Event<T>>` argument of
    /// a batch handler: decoded through `EventData` directly, so a payload
    /// type that cannot decode is named in the error.
    pub event_data: Option<Type>,
    /// `true` for the `Vec<Event<T>>` argument of a batch handler.
    pub is_batch: bool,
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

/// `T` of `Vec<Event<T>>`: the argument that makes a handler a batch handler.
fn batch_data(ty: &Type) -> Option<&Type> {
    only_type_argument(ty, "Vec").and_then(|inner| only_type_argument(inner, "Event"))
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
    let mut batch_seen = false;
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
                let batch = batch_data(&ty).cloned();
                let event_data = batch.clone().or_else(|| only_type_argument(&ty, "Event").cloned());
                let batch = batch.is_some();
                if batch {
                    if batch_seen {
                        push(syn::Error::new(ty.span(), "a batch handler takes one `Vec<Event<T>>` argument"));
                    }
                    batch_seen = true;
                }
                args.push(Arg { ty, event_data, is_batch: batch });
            }
        }
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
    fn arg_names(&self) -> Vec<syn::Ident> {
        (0..self.args.len()).map(|i| format_ident!("__arg{}", i)).collect()
    }

    /// `true` when the handler takes `Vec<Event<T>>`.
    pub(crate) fn is_batch(&self) -> bool {
        self.args.iter().any(|a| a.is_batch)
    }

    /// The extractor trait of the arguments: `FromEvent`, or `FromBatch` for
    /// a batch handler (the same traits `eventbus::handler` and
    /// `eventbus::batch` require).
    fn extractor(&self, krate: &TokenStream) -> TokenStream {
        if self.is_batch() { quote!(#krate::__private::FromBatch) } else { quote!(#krate::__private::FromEvent) }
    }

    /// The statements of the `async fn` `Consumer::handle` (or, for a batch
    /// handler, `Consumer::handle_batch`): take every argument, call, convert the
    /// result. Trait paths carry the span of the type they are about, so an
    /// unsupported type gets one error, on its own token.
    pub(crate) fn body(&self, krate: &TokenStream, call: impl FnOnce(&[syn::Ident]) -> TokenStream) -> TokenStream {
        let names = self.arg_names();
        let extractor = self.extractor(krate);
        let ret = &self.ret;
        let call = call(&names);
        if self.is_batch() {
            let bindings = self.args.iter().zip(&names).map(|(arg, name)| {
                let ty = &arg.ty;
                let take = match (&arg.event_data, arg.is_batch) {
                    (Some(data), true) => {
                        quote_spanned!(data.span()=> #krate::__private::decode_batch::<#data>(&mut __batch))
                    }
                    _ => quote_spanned!(ty.span()=> <#ty as #extractor>::from_batch(&mut __batch, __ctx)),
                };
                quote! {
                    let #name = match #take {
                        ::core::result::Result::Ok(value) => value,
                        ::core::result::Result::Err(error) => return __batch.fail(error),
                    };
                }
            });
            let finish = quote_spanned!(ret.span()=> __batch.finish(__results));
            quote! {
                let mut __batch = #krate::__private::Batch::new(__envelopes);
                #(#bindings)*
                let __results: #ret = #call.await;
                #finish
            }
        } else {
            let bindings = self.args.iter().zip(&names).map(|(arg, name)| {
                let ty = &arg.ty;
                let take = match &arg.event_data {
                    Some(data) => quote_spanned!(data.span()=> #krate::__private::decode::<#data>(&__envelope)),
                    None => quote_spanned!(ty.span()=> <#ty as #extractor>::from_event(&__envelope, __ctx)),
                };
                quote!(let #name = #take?;)
            });
            let convert = quote_spanned!(ret.span()=> <#ret as #krate::__private::IntoOutcome>::into_outcome(__result));
            quote! {
                #(#bindings)*
                let __result: #ret = #call.await;
                #convert
            }
        }
    }

    /// The body of `Consumer::check`.
    pub(crate) fn check_body(&self, krate: &TokenStream) -> TokenStream {
        let extractor = self.extractor(krate);
        let checks = self.args.iter().filter(|arg| arg.event_data.is_none()).map(|arg| {
            let ty = &arg.ty;
            quote_spanned!(ty.span()=> <#ty as #extractor>::check(__ctx)?;)
        });
        quote! {
            #(#checks)*
            ::core::result::Result::Ok(())
        }
    }
}
