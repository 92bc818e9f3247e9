//! Compile-time behaviour of `#[subscribe]` and `#[eventbus::consumer]`.
//!
//! The `.stderr` files are rustc's exact messages, so the compile-fail cases
//! run on the toolchain they were written with (stable 1.95) only; on any
//! other the pass cases still run. After a toolchain upgrade, review and
//! regenerate them with `TRYBUILD=overwrite cargo test -p dapr-eventbus --test
//! subscribe`, and move the version below.

#[test]
fn ui_pass() {
    trybuild::TestCases::new().pass("tests/subscribe/pass/*.rs");
}

#[rustversion::attr(not(stable(1.95)), ignore = "the .stderr files are pinned to rustc 1.95")]
#[test]
fn ui_compile_fail() {
    trybuild::TestCases::new().compile_fail("tests/subscribe/fail/*.rs");
}
