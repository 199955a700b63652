#!/usr/bin/env bash
# Clarion's one entry point on a Debian machine.
#
#   ./setup.sh serve   install the build toolchain, build the release site, run `clarion serve`
#   ./setup.sh test    install the toolchain and the browsers, then run every test suite
#   ./setup.sh tools   install the development loop's toolchain (adds cargo-leptos, for
#                      `cargo leptos watch`; serve, test and bench do not need it)
#   ./setup.sh bench [--n N] [--repeat K] [--no-peers] [--subscribe [--db sqlite,postgres]] [--scale] [--db D --instances N] [--topic-share F]
#                      the send benchmark against Node web-push and pywebpush (bench/run.py)
#
# Every install step checks what is already there and skips it when the version is right,
# so a second run goes straight to the real work.
set -euo pipefail
cd "$(dirname "$0")"

CARGO_LEPTOS_VERSION=0.3.11
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

rust_toolchain() { sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml; }

# The wasm-bindgen CLI must match the wasm-bindgen crate in Cargo.lock exactly.
wasm_bindgen_version() {
  awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock
}

apt_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

install_rust() {
  local tc; tc=$(rust_toolchain)
  if ! command -v rustup >/dev/null; then
    log "rustup is missing: install it from https://rustup.rs, then run this again"; exit 1
  fi
  if ! rustup toolchain list | grep -q "^$tc-"; then
    log "rustup toolchain install $tc"
    rustup toolchain install "$tc" --profile minimal --component clippy,rustfmt --target wasm32-unknown-unknown
  fi
  if ! rustup +"$tc" target list --installed | grep -qx wasm32-unknown-unknown; then
    rustup +"$tc" target add wasm32-unknown-unknown
  fi
}

# cargo_install BIN WANT_VERSION_TEXT CRATE VERSION [extra cargo args]
cargo_install() {
  local bin=$1 want=$2 crate=$3 version=$4; shift 4
  if [ -x "$CARGO_BIN/$bin" ] && "$CARGO_BIN/$bin" --version 2>/dev/null | grep -qF "$want"; then
    return
  fi
  log "cargo install $crate $version (one-time; this can take a while)"
  # A faster release profile for tools: no LTO, many codegen units.
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    cargo +"$(rust_toolchain)" install --force "$crate" --version "$version" "$@"
}

# What building the release site needs (scripts/build-site.sh, scripts/build-sdk.sh): Rust
# with wasm32, the wasm-bindgen CLI, Node, and from npm (scripts/package.json) binaryen's
# wasm-opt and Lightning CSS, which install in seconds where compiling them took minutes.
install_build_tools() {
  apt_packages pkg-config libssl-dev ca-certificates
  command -v node >/dev/null && command -v npm >/dev/null || apt_packages nodejs npm
  install_rust
  local wb; wb=$(wasm_bindgen_version)
  # Not --locked: the CLI's lockfile names a webpki-roots release the registry no longer has.
  cargo_install wasm-bindgen "wasm-bindgen $wb" wasm-bindgen-cli "$wb"
  npm_ci scripts
}

# The development loop: cargo-leptos (`cargo leptos watch`) on top of the build tools. Its
# debug builds need no wasm-opt; release sites come from scripts/build-site.sh.
install_dev_tools() {
  install_build_tools
  cargo_install cargo-leptos "cargo-leptos $CARGO_LEPTOS_VERSION" cargo-leptos "$CARGO_LEPTOS_VERSION" --locked
}

# pywebpush in end2end/.venv: the independent sender of the push-service tests, and a
# peer in the benchmark.
install_pywebpush() {
  apt_packages python3-venv
  if ! end2end/.venv/bin/python -c 'import pywebpush' 2>/dev/null; then
    log "pywebpush (end2end/.venv)"
    python3 -m venv end2end/.venv
    end2end/.venv/bin/pip install --quiet -r end2end/tools/requirements.txt
  fi
}

# npm ci in a folder, skipped while its lockfile is unchanged since the last install.
npm_ci() {
  local dir=$1 stamp=$1/node_modules/.clarion-lock-sha sha
  sha=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$sha" ]; then
    log "npm ci ($dir)"
    (cd "$dir" && npm ci --no-audit --no-fund)
    echo "$sha" > "$stamp"
  fi
}

install_test_tools() {
  install_build_tools
  # postgresql: the server binaries for the tests' throw-away cluster (scripts/pg-cluster.sh);
  # the system's own cluster is left as the package sets it up.
  apt_packages chromium firefox-esr postgresql
  install_pywebpush
  npm_ci end2end
}

case "${1:-}" in
  tools) install_dev_tools ;;
  serve)
    install_build_tools
    scripts/build-site.sh
    scripts/build-sdk.sh
    exec target/release/clarion serve "${@:2}"
    ;;
  test)
    install_test_tools
    exec ./scripts/test-all.sh
    ;;
  bench)
    install_build_tools
    install_pywebpush
    npm_ci bench
    apt_packages postgresql
    cargo build --release --features ssr --bin clarion --example web_push_peer --example encryption_floor
    # A throw-away PostgreSQL for `--db postgres`, stopped when the benchmark ends.
    source scripts/pg-cluster.sh
    trap pg_cluster_stop EXIT
    pg_cluster_start
    end2end/.venv/bin/python bench/run.py "${@:2}"
    ;;
  *) echo "usage: $0 serve|test|tools|bench" >&2; exit 2 ;;
esac
