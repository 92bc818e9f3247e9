//! The attributes of [`eventbus`](https://docs.rs/eventbus): `#[subscribe]`
//! and `#[consumer]`. Use them through `eventbus`, which re-exports them and
//! documents them with examples.

use proc_macro::TokenStream;
use quote::ToTokens;

mod expand;
mod options;
mod signature;

/// Turns an async handler into a consumer of a topic.
///
/// See `eventbus::subscribe` for the documentation.
#[proc_macro_attribute]
pub fn subscribe(attr: TokenStream, item: TokenStream) -> TokenStream {
    let function = match syn::parse::<syn::ItemFn>(item.clone()) {
        Ok(function) => function,
        Err(_) => {
            let error = syn::Error::new(
                proc_macro2::Span::call_site(),
                "`#[subscribe]` goes on an `async fn`, or on a method of an impl block marked `#[eventbus::consumer]`",
            );
            return with_item(error, item);
        }
    };
    let options = match syn::parse::<options::Options>(attr) {
        Ok(options) => options,
        Err(error) => return with_stub(error, &None, function),
    };
    let krate = options.krate.clone();
    match expand::subscribe_fn(options, function.clone()) {
        Ok(tokens) => tokens.into(),
        Err(error) => with_stub(error, &krate, function),
    }
}

/// The error, the function unchanged and a stub of its registration, so
/// one mistake gives one error.
fn with_stub(error: syn::Error, krate: &Option<syn::Path>, function: syn::ItemFn) -> TokenStream {
    let mut tokens = error.to_compile_error();
    tokens.extend(function.to_token_stream());
    // A method has no registration struct (and an impl block cannot hold one).
    if function.sig.receiver().is_none() {
        tokens.extend(expand::stub(krate, &function));
    }
    tokens.into()
}

/// Makes the `#[subscribe]` methods of an impl block consumers; `Arc<Self>`
/// then registers them all with `ServerBuilder::consumers`.
///
/// See `eventbus::consumer` for the documentation.
#[proc_macro_attribute]
pub fn consumer(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item_impl = match syn::parse::<syn::ItemImpl>(item.clone()) {
        Ok(item_impl) => item_impl,
        Err(_) => {
            let error =
                syn::Error::new(proc_macro2::Span::call_site(), "`#[eventbus::consumer]` goes on an impl block");
            return with_item(error, item);
        }
    };
    let result = syn::parse::<options::CrateOnly>(attr).and_then(|krate| expand::consumer_impl(krate.0, item_impl));
    match result {
        Ok(tokens) => tokens.into(),
        Err(error) => with_item(error, item),
    }
}

/// The error, plus the user's item unchanged so later errors and IDEs stay sane.
fn with_item(error: syn::Error, item: TokenStream) -> TokenStream {
    let mut tokens = error.to_compile_error();
    tokens.extend(proc_macro2::TokenStream::from(item));
    tokens.into_token_stream().into()
}
