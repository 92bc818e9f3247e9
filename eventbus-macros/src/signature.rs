//! What a handler's signature says: its arguments (extractors) and its
//! return type; and the checks spanned on them.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, PathArguments, ReturnType, Signature, Type};

/// A checked handler signature.
pub(crate) struct Handler {
    /// The argument types (the receiver excluded).
    pub args: Vec<Type>,
    pub ret: Type,
    pub has_receiver: bool,
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
                args.push(ty);
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
    pub(crate) fn arg_names(&self) -> Vec<syn::Ident> {
        (0..self.args.len()).map(|i| format_ident!("__arg{}", i)).collect()
    }

    /// `(A1, A2, …,)`: the `Args` of `Handler<Args>`.
    pub(crate) fn args_tuple(&self) -> TokenStream {
        let args = &self.args;
        quote!((#(#args,)*))
    }

    /// Statements that check each argument and the return type on its own
    /// token (as `#[axum::debug_handler]` does), so a type that is not an
    /// extractor or a return type gets its error where it is written.
    pub(crate) fn checks(&self, krate: &TokenStream) -> TokenStream {
        let private = quote!(#krate::__private);
        let args = self.args.iter().map(|ty| quote_spanned!(ty.span()=> #private::extractor::<#ty>();));
        let ret = &self.ret;
        let ret = quote_spanned!(ret.span()=> #private::returns::<#ret>(););
        quote!(#(#args)* #ret)
    }
}
