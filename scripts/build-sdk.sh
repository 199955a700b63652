#!/usr/bin/env bash
# Builds Clarion's SDK (the `sdk` crate) into $CLARION_SDK_DIR (target/sdk), which
# `clarion serve` serves as /sdk.js and /sdk/*:
#   sdk.js                              the loader (sdk/loader.js), always revalidated;
#   assets/clarion_sdk.<hash>.js        wasm-bindgen's glue,      } named by content,
#   assets/clarion_sdk_bg.<hash>.wasm   the control, wasm-opt -Oz } cached for a year.
# with a brotli (.br) and gzip (.gz) copy of each asset, made here once rather than on
# every request. setup.sh and scripts/test-all.sh run it; it is not part of `cargo leptos build`.
# wasm-opt is binaryen's Node build, from scripts/node_modules (`npm ci` in scripts/).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

pkg=${CLARION_SDK_DIR:-target/sdk}
out=$pkg/assets
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --lib -p clarion-sdk --target wasm32-unknown-unknown --profile wasm-release
wasm-bindgen --target web --no-typescript --out-dir "$work" --out-name clarion_sdk \
  target/wasm32-unknown-unknown/wasm-release/clarion_sdk.wasm
# The same features cargo-leptos enables for the page's wasm.
scripts/node_modules/.bin/wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
  "$work/clarion_sdk_bg.wasm" -o "$work/clarion_sdk_bg.opt.wasm"

hash() { sha256sum "$1" | cut -c1-16; }
glue="clarion_sdk.$(hash "$work/clarion_sdk.js").js"
wasm="clarion_sdk_bg.$(hash "$work/clarion_sdk_bg.opt.wasm").wasm"

mkdir -p "$out"
find "$out" -maxdepth 1 -type f -name 'clarion_sdk*' ! -name "$glue*" ! -name "$wasm*" -delete
cp "$work/clarion_sdk.js" "$out/$glue"
cp "$work/clarion_sdk_bg.opt.wasm" "$out/$wasm"
node scripts/precompress.mjs "$out/$glue" "$out/$wasm"
sed -e "s/__GLUE__/$glue/" -e "s/__WASM__/$wasm/" sdk/loader.js > "$pkg/sdk.js.tmp"
mv "$pkg/sdk.js.tmp" "$pkg/sdk.js"
printf '[sdk] %s: sdk.js, assets/%s (%s bytes), assets/%s (%s bytes)\n' "$pkg" \
  "$glue" "$(stat -c %s "$out/$glue")" "$wasm" "$(stat -c %s "$out/$wasm")" >&2
