//! Macros of `eventbus` (placeholder until the macro issue lands).
use proc_macro::TokenStream;

/// Placeholder.
#[proc_macro_attribute]
pub fn subscribe(_attr: TokenStream, item: TokenStream) -> TokenStream {
    item
}

/// Placeholder.
#[proc_macro_attribute]
pub fn consumer(_attr: TokenStream, item: TokenStream) -> TokenStream {
    item
}
