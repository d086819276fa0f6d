#!/usr/bin/env bash
# The project's test command (README, "Run the tests"); .ci/run calls it. In order, cheapest
# first so a slip fails fast:
#   1. formatting (cargo fmt --check)
#   2. clippy on every target with the workspace lints (Cargo.toml [workspace.lints]) as errors
#   3. cargo deny: duplicate versions, licenses, where crates come from (deny.toml)
#   4. docs/ citations (scripts/check-doc-refs.sh)
#   5. the minimum supported Rust version: a build of the library and binaries with exactly
#      the toolchain named by `rust-version` in Cargo.toml (installed with rustup if missing)
#   6. cargo test --workspace
# SKIP_MSRV=1 skips step 5 (for a machine that cannot fetch toolchains); it says so.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (workspace lints, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo deny check bans licenses sources"
if ! command -v cargo-deny >/dev/null 2>&1; then
  echo "cargo-deny is not installed; installing it (cargo install --locked cargo-deny)"
  cargo install --locked cargo-deny
fi
cargo deny --locked check bans licenses sources

step "docs/ citations"
scripts/check-doc-refs.sh

msrv=$(sed -nE 's/^rust-version = "([0-9.]+)"/\1/p' Cargo.toml)
step "MSRV build with Rust $msrv (rust-version in Cargo.toml)"
if [[ "${SKIP_MSRV:-}" == 1 ]]; then
  echo "SKIPPED: SKIP_MSRV=1 (the build with Rust $msrv did not run)"
else
  if ! rustup run "$msrv" rustc --version >/dev/null 2>&1; then
    rustup toolchain install "$msrv" --profile minimal
  fi
  # The product (library and both binaries) as a user builds it; tests are compiled by the
  # current toolchain below, and clippy's incompatible_msrv lint checks their std APIs
  # against rust-version. Its own target folder (two compilers share no artifacts), and
  # dependencies unoptimised: this build only has to prove that it compiles.
  cargo "+$msrv" build --workspace --locked --target-dir target/msrv \
    --config 'profile.dev.package."*".opt-level=0'
fi

step "cargo test --workspace"
cargo test --workspace --locked
