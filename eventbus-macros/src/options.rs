//! Parsing `#[subscribe("topic", option, …)]`.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Ident, LitInt, LitStr, Token};

/// The options every `#[subscribe]` accepts, for "expected one of" errors.
const VALID: &str = "`topic`, `pubsub`, `rule`, `path`, `dead_letter`, `metadata`, `raw_payload`, `bulk`, `timeout`, `concurrency`, `crate`";

/// A parsed `#[subscribe(...)]`.
pub(crate) struct Options {
    /// A string literal, or any expression (`topic = ORDERS`), evaluated
    /// when the server is built.
    pub topic: syn::Expr,
    pub pubsub: Option<syn::Expr>,
    /// `(match, path, priority)`.
    pub rules: Vec<(LitStr, LitStr, Option<i32>)>,
    pub path: Option<LitStr>,
    pub dead_letter: Option<LitStr>,
    pub metadata: Vec<(LitStr, LitStr)>,
    pub raw_payload: bool,
    pub bulk: Option<(u32, u32)>,
    pub timeout_ms: Option<u64>,
    pub concurrency: Option<usize>,
    pub krate: Option<syn::Path>,
}

impl Options {
    /// The `Subscription` expression.
    pub(crate) fn subscription(&self, krate: &TokenStream) -> TokenStream {
        let topic = &self.topic;
        let mut expr = quote!(#krate::__private::Subscription::new(#topic));
        if let Some(pubsub) = &self.pubsub {
            expr = quote!(#expr.pubsub(#pubsub));
        }
        for (matches, path, priority) in &self.rules {
            expr = match priority {
                Some(priority) => quote!(#expr.prioritized_rule(#priority, #matches, #path)),
                None => quote!(#expr.rule(#matches, #path)),
            };
        }
        if let Some(path) = &self.path {
            expr = quote!(#expr.path(#path));
        }
        if let Some(dead_letter) = &self.dead_letter {
            expr = quote!(#expr.dead_letter(#dead_letter));
        }
        for (key, value) in &self.metadata {
            expr = quote!(#expr.metadata(#key, #value));
        }
        if self.raw_payload {
            expr = quote!(#expr.raw_payload());
        }
        if let Some((max_messages, max_await_ms)) = self.bulk {
            expr = quote!(#expr.bulk(#max_messages, #max_await_ms));
        }
        if let Some(ms) = self.timeout_ms {
            expr = quote!(#expr.timeout(::core::time::Duration::from_millis(#ms)));
        }
        if let Some(limit) = self.concurrency {
            expr = quote!(#expr.concurrency(#limit));
        }
        expr
    }
}

/// A name given as an expression: checked when it is a string literal (an
/// empty constant is refused when the server is built).
fn name_expr(input: ParseStream<'_>, what: &str) -> syn::Result<syn::Expr> {
    let expr: syn::Expr = input.parse()?;
    if let syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(lit), .. }) = &expr {
        check_name(lit, what)?;
    }
    Ok(expr)
}

/// A non-empty name without whitespace (topics, pubsubs, dead-letter topics).
fn check_name(lit: &LitStr, what: &str) -> syn::Result<()> {
    let value = lit.value();
    if value.is_empty() {
        return Err(syn::Error::new(lit.span(), format!("{what} must not be empty")));
    }
    if value.chars().any(char::is_whitespace) {
        return Err(syn::Error::new(lit.span(), format!("{what} must not contain whitespace")));
    }
    Ok(())
}

/// `"250ms"`, `"5s"`, `"2m"`.
fn parse_duration(lit: &LitStr) -> syn::Result<u64> {
    let value = lit.value();
    let (number, unit_ms) = if let Some(n) = value.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1_000)
    } else if let Some(n) = value.strip_suffix('m') {
        (n, 60_000)
    } else {
        return Err(syn::Error::new(lit.span(), "expected a duration such as \"500ms\", \"5s\" or \"2m\""));
    };
    number
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .map(|n| n * unit_ms)
        .ok_or_else(|| syn::Error::new(lit.span(), "expected a positive whole number before the unit"))
}

fn key_value<T: Parse>(input: ParseStream<'_>, key: &Ident) -> syn::Result<T> {
    input.parse::<Token![=]>().map_err(|e| syn::Error::new(e.span(), format!("expected `{key} = …`")))?;
    input.parse()
}

fn once<T>(slot: &mut Option<T>, key: &Ident, value: T) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(key.span(), format!("`{key}` is given more than once")));
    }
    *slot = Some(value);
    Ok(())
}

/// Parses `name(key = value, …)` with the keys given.
fn parenthesized<T>(
    input: ParseStream<'_>,
    mut each: impl FnMut(&Ident, ParseStream<'_>) -> syn::Result<T>,
) -> syn::Result<Vec<T>> {
    let content;
    syn::parenthesized!(content in input);
    let mut items = Vec::new();
    while !content.is_empty() {
        let key: Ident = content.call(syn::ext::IdentExt::parse_any)?;
        items.push(each(&key, &content)?);
        if content.is_empty() {
            break;
        }
        content.parse::<Token![,]>()?;
    }
    Ok(items)
}

impl Parse for Options {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        const EXPECTED: &str = "expected the topic: #[subscribe(\"order.completed\")] or #[subscribe(topic = ORDERS)]";
        if input.is_empty() {
            return Err(syn::Error::new(Span::call_site(), EXPECTED));
        }
        let topic = if input.peek(syn::Ident) && input.peek2(Token![=]) {
            let key: Ident = input.parse()?;
            if key != "topic" {
                return Err(syn::Error::new(key.span(), EXPECTED));
            }
            input.parse::<Token![=]>()?;
            name_expr(input, "the topic")?
        } else {
            let topic: LitStr = input.parse().map_err(|e| syn::Error::new(e.span(), EXPECTED))?;
            check_name(&topic, "the topic")?;
            syn::Expr::Lit(syn::ExprLit { attrs: Vec::new(), lit: syn::Lit::Str(topic) })
        };
        let mut options = Options {
            topic,
            pubsub: None,
            rules: Vec::new(),
            path: None,
            dead_letter: None,
            metadata: Vec::new(),
            raw_payload: false,
            bulk: None,
            timeout_ms: None,
            concurrency: None,
            krate: None,
        };
        let mut seen_metadata = false;
        while !input.is_empty() {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            let key: Ident = input.call(syn::ext::IdentExt::parse_any)?;
            match key.to_string().as_str() {
                "pubsub" => {
                    input.parse::<Token![=]>().map_err(|e| syn::Error::new(e.span(), "expected `pubsub = …`"))?;
                    let pubsub = name_expr(input, "the pubsub")?;
                    once(&mut options.pubsub, &key, pubsub)?;
                }
                "topic" => {
                    return Err(syn::Error::new(key.span(), "the topic comes first: #[subscribe(topic = ORDERS, …)]"));
                }
                "path" => {
                    let lit: LitStr = key_value(input, &key)?;
                    if lit.value().is_empty() {
                        return Err(syn::Error::new(lit.span(), "the path must not be empty"));
                    }
                    once(&mut options.path, &key, lit)?;
                }
                "dead_letter" => {
                    let lit: LitStr = key_value(input, &key)?;
                    check_name(&lit, "the dead-letter topic")?;
                    once(&mut options.dead_letter, &key, lit)?;
                }
                "rule" => {
                    let span = key.span();
                    let mut matches = None;
                    let mut path = None;
                    let mut priority = None;
                    parenthesized(input, |k, content| match k.to_string().as_str() {
                        "match" => once(&mut matches, k, key_value::<LitStr>(content, k)?),
                        "path" => once(&mut path, k, key_value::<LitStr>(content, k)?),
                        "priority" => {
                            content
                                .parse::<Token![=]>()
                                .map_err(|e| syn::Error::new(e.span(), "expected `priority = …`"))?;
                            let negative = content.parse::<Option<Token![-]>>()?.is_some();
                            let value: i32 = content.parse::<LitInt>()?.base10_parse()?;
                            once(&mut priority, k, if negative { -value } else { value })
                        }
                        _ => Err(syn::Error::new(
                            k.span(),
                            "unknown rule option; expected `match`, `path` or `priority`",
                        )),
                    })?;
                    let matches = matches.ok_or_else(|| syn::Error::new(span, "a rule needs `match = \"<CEL>\"`"))?;
                    let path = path.ok_or_else(|| syn::Error::new(span, "a rule needs `path = \"/…\"`"))?;
                    for lit in [&matches, &path] {
                        if lit.value().trim().is_empty() {
                            return Err(syn::Error::new(lit.span(), "must not be empty"));
                        }
                    }
                    options.rules.push((matches, path, priority));
                }
                "metadata" => {
                    if seen_metadata {
                        return Err(syn::Error::new(key.span(), "`metadata` is given more than once"));
                    }
                    seen_metadata = true;
                    let content;
                    syn::parenthesized!(content in input);
                    while !content.is_empty() {
                        let name = if content.peek(LitStr) {
                            content.parse::<LitStr>()?
                        } else {
                            let ident: Ident = content.call(syn::ext::IdentExt::parse_any)?;
                            LitStr::new(&ident.to_string(), ident.span())
                        };
                        content.parse::<Token![=]>()?;
                        let value: LitStr = content.parse()?;
                        options.metadata.push((name, value));
                        if content.is_empty() {
                            break;
                        }
                        content.parse::<Token![,]>()?;
                    }
                }
                "raw_payload" => {
                    if options.raw_payload {
                        return Err(syn::Error::new(key.span(), "`raw_payload` is given more than once"));
                    }
                    options.raw_payload = true;
                }
                "bulk" => {
                    let mut max_messages = None;
                    let mut max_await_ms = None;
                    if input.peek(syn::token::Paren) {
                        parenthesized(input, |k, content| {
                            let slot = match k.to_string().as_str() {
                                "max_messages" => &mut max_messages,
                                "max_await_ms" => &mut max_await_ms,
                                _ => {
                                    return Err(syn::Error::new(
                                        k.span(),
                                        "unknown bulk option; expected `max_messages` or `max_await_ms`",
                                    ));
                                }
                            };
                            let n: LitInt = key_value(content, k)?;
                            once(slot, k, n.base10_parse::<u32>()?)
                        })?;
                    }
                    if max_messages == Some(0) {
                        return Err(syn::Error::new(key.span(), "bulk `max_messages` must be at least 1"));
                    }
                    once(&mut options.bulk, &key, (max_messages.unwrap_or(100), max_await_ms.unwrap_or(1000)))?;
                }
                "timeout" => {
                    let lit: LitStr = key_value(input, &key)?;
                    let ms = parse_duration(&lit)?;
                    once(&mut options.timeout_ms, &key, ms)?;
                }
                "concurrency" => {
                    let lit: LitInt = key_value(input, &key)?;
                    let limit: usize = lit.base10_parse()?;
                    if limit == 0 {
                        return Err(syn::Error::new(lit.span(), "concurrency must be at least 1"));
                    }
                    once(&mut options.concurrency, &key, limit)?;
                }
                "crate" => {
                    let lit: LitStr = key_value(input, &key)?;
                    once(&mut options.krate, &key, lit.parse()?)?;
                }
                _ => {
                    return Err(syn::Error::new(
                        key.span(),
                        format!("unknown option `{key}`; expected one of {VALID}"),
                    ));
                }
            }
        }
        Ok(options)
    }
}

/// `crate = "…"` of `#[eventbus::consumer(crate = "…")]`.
pub(crate) struct CrateOnly(pub Option<syn::Path>);

impl Parse for CrateOnly {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.is_empty() {
            return Ok(CrateOnly(None));
        }
        let key: Ident = input.call(syn::ext::IdentExt::parse_any)?;
        if key != "crate" {
            return Err(syn::Error::new(key.span(), "unknown option; expected `crate = \"…\"`"));
        }
        let lit: LitStr = key_value(input, &key)?;
        if !input.is_empty() {
            return Err(syn::Error::new(input.span(), "unexpected tokens after `crate = \"…\"`"));
        }
        Ok(CrateOnly(Some(lit.parse()?)))
    }
}

/// The path of the eventbus crate in the generated code: `crate = "…"` when
/// given, else the name the user's manifest gives `dapr-eventbus` (a renamed
/// dependency), else `eventbus`, its library name.
pub(crate) fn crate_path(krate: &Option<syn::Path>) -> TokenStream {
    match krate {
        Some(path) => quote!(#path),
        None => {
            let name = crate_name::of_dependency("dapr-eventbus").unwrap_or_else(|| "eventbus".to_owned());
            let ident = Ident::new(&name, Span::call_site());
            quote!(::#ident)
        }
    }
}

/// Finds how a crate calls a dependency, from its `Cargo.toml` (and its
/// workspace's, for `workspace = true` dependencies), without a TOML parser:
/// the dependency sections only need their keys and `package = "…"` values.
mod crate_name {
    use std::path::{Path, PathBuf};

    /// The name code uses for `package` in the crate being compiled, when it is renamed.
    pub(super) fn of_dependency(package: &str) -> Option<String> {
        let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
        if std::env::var("CARGO_PKG_NAME").as_deref() == Ok(package) {
            return None; // its own tests and examples: the library name
        }
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
        renamed(&manifest, package).or_else(|| {
            let root = workspace_root(&dir)?;
            let key = renamed(&std::fs::read_to_string(root).ok()?, package)?;
            // Inherited by the same key: `key = { workspace = true }`.
            dependency_keys(&manifest).any(|k| k == key).then_some(key)
        })
    }

    /// The key of the dependency entry that names `package = "<package>"`.
    fn renamed(manifest: &str, package: &str) -> Option<String> {
        let wanted = format!("\"{package}\"");
        let mut section_key: Option<String> = None;
        for line in manifest.lines().map(str::trim) {
            if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                // `[dependencies.bus]`: the key is the last segment.
                section_key =
                    header.contains("dependencies.").then(|| header.rsplit('.').next().unwrap_or("").to_owned());
                continue;
            }
            let Some((key, value)) = line.split_once('=') else { continue };
            let (key, value) = (key.trim(), value.trim());
            if value.contains("package") && value.contains(&wanted) {
                return Some(key.replace('-', "_"));
            }
            if key == "package" && value == wanted {
                return section_key.as_ref().map(|k| k.replace('-', "_"));
            }
        }
        None
    }

    /// Every key of the manifest's `[…dependencies]` sections.
    fn dependency_keys(manifest: &str) -> impl Iterator<Item = String> + '_ {
        let mut in_dependencies = false;
        manifest.lines().map(str::trim).filter_map(move |line| {
            if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                in_dependencies = header.ends_with("dependencies");
                return None;
            }
            // `bus = { … }` or the dotted `bus.workspace = true`.
            let (key, _) = line.split_once('=')?;
            let key = key.trim().split('.').next().unwrap_or_default();
            in_dependencies.then(|| key.replace('-', "_"))
        })
    }

    /// The nearest `Cargo.toml` above `dir` with a `[workspace]` section.
    fn workspace_root(dir: &Path) -> Option<PathBuf> {
        dir.ancestors().skip(1).map(|d| d.join("Cargo.toml")).find(|path| {
            std::fs::read_to_string(path).is_ok_and(|text| text.lines().any(|l| l.trim() == "[workspace]"))
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn finds_the_renamed_key_inline_or_as_a_table() {
            let inline = "[dependencies]\nserde = \"1\"\nbus = { version = \"0.1\", package = \"dapr-eventbus\" }\n";
            assert_eq!(renamed(inline, "dapr-eventbus").as_deref(), Some("bus"));
            let table = "[dependencies.my-bus]\nversion = \"0.1\"\npackage = \"dapr-eventbus\"\n";
            assert_eq!(renamed(table, "dapr-eventbus").as_deref(), Some("my_bus"));
            assert_eq!(renamed("[dependencies]\ndapr-eventbus = \"0.1\"\n", "dapr-eventbus"), None);
            let keys: Vec<_> = dependency_keys("[dependencies]\nbus.workspace = true\n[features]\nx = []\n").collect();
            assert_eq!(keys, ["bus"]);
        }
    }
}

pub(crate) fn spanned_err(node: impl Spanned, message: impl std::fmt::Display) -> syn::Error {
    syn::Error::new(node.span(), message)
}
