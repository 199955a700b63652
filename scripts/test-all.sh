#!/usr/bin/env bash
# Runs every Clarion test suite, in order of speed. `./setup.sh test` installs what they
# need and then runs this; run it directly when the tools are already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
step() { printf '\n\033[1;32m==> %s\033[0m\n' "$*"; }
started=$(date +%s)

step "the architecture and the docs (scripts/check-architecture.py, scripts/check-docs.py)"
python3 scripts/check-architecture.py
python3 scripts/check-docs.py

step "lint (cargo fmt --check; cargo clippy -D warnings for ssr and hydrate)"
cargo fmt --all --check
cargo clippy --workspace --all-targets --features ssr -- -D warnings
cargo clippy --all-targets --no-default-features --features hydrate -- -D warnings
cargo clippy --lib --no-default-features --features hydrate --target wasm32-unknown-unknown -- -D warnings
cargo clippy --lib --no-default-features --features console --target wasm32-unknown-unknown -- -D warnings
cargo clippy -p clarion-sdk --target wasm32-unknown-unknown -- -D warnings

step "service worker unit tests (node --test sw/)"
node --test sw/

step "release build (the server and site: scripts/build-site.sh; the SDK: scripts/build-sdk.sh)"
scripts/build-site.sh
scripts/build-sdk.sh

step "the SDK's size budget (node scripts/sdk-size.mjs)"
node scripts/sdk-size.mjs

step "the page's weight budget: a first visit to / in Chromium (node end2end/tools/page-weight.mjs)"
node end2end/tools/page-weight.mjs

step "PostgreSQL for the tests: a throw-away cluster (scripts/pg-cluster.sh)"
source scripts/pg-cluster.sh
trap pg_cluster_stop EXIT
pg_cluster_start

step "Rust unit and integration tests on SQLite, the store suite on both backends (cargo test --release --workspace --features ssr)"
cargo test --release --workspace --features ssr

step "the API suite again on PostgreSQL (CLARION_TEST_BACKEND=postgres)"
# The store suite already ran on both; the process tests pick their database themselves.
CLARION_TEST_BACKEND=postgres cargo test --release --features ssr --test api -- --skip store:: --skip process::

step "Playwright end-to-end (Chromium and Firefox ESR)"
(cd end2end && npx playwright test)

step "all suites passed in $(( $(date +%s) - started )) s"
