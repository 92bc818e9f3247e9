//! Compile-time behaviour of `#[subscribe]` and `#[eventbus::consumer]`.
//!
//! The `.stderr` files are rustc's exact messages, so the compile-fail cases
//! run on the toolchain they were written with (stable 1.95) only; on any
//! other the pass cases still run. After a toolchain upgrade, review and
//! regenerate them with `TRYBUILD=overwrite cargo test -p dapr-eventbus-macros
//! --test subscribe`, and move the version below.

/// One trybuild project for every case: one build of the library and its
/// dependencies, not one per kind of case.
#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/subscribe/pass/*.rs");
    if rustversion::cfg!(stable(1.95)) {
        cases.compile_fail("tests/subscribe/fail/*.rs");
    } else {
        eprintln!("compile-fail cases skipped: their .stderr files are pinned to rustc 1.95");
    }
}
