//! Compile-time behaviour of `#[subscribe]` and `#[eventbus::consumer]`.
//!
//! The `.stderr` files are rustc's exact messages, so they are pinned to the
//! toolchain CI uses; after a toolchain upgrade, review and regenerate them
//! with `TRYBUILD=overwrite cargo test -p eventbus --test subscribe`.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/subscribe/pass/*.rs");
    cases.compile_fail("tests/subscribe/fail/*.rs");
}
