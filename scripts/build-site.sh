#!/usr/bin/env bash
# Builds the release server and site, the way `clarion serve` serves them, without
# cargo-leptos (which stays the development loop: `cargo leptos watch`):
#   target/release/clarion                        the server (--features ssr)
#   $LEPTOS_SITE_ROOT (target/site):
#     pkg/clarion.<hash>.js, .wasm                the page's bundle: the push control's island
#     pkg/clarion-console.<hash>.js, .wasm        the console's bundle, loaded only on /admin
#     pkg/clarion.<hash>.css                      style/main.css, bundled and minified
#     pkg/site.json                               which file is which (server::site::SiteAssets)
#     the files of public/                        icons, the web manifest
# with a brotli (.br, quality 11) and a gzip (.gz, level 9) copy of each text and wasm
# file, which the server sends to browsers that accept them.
#
#   scripts/build-site.sh [--no-server] [--names]
#     --no-server  the site only
#     --names      also keep copies of the bundles with their function names, for
#                  scripts/wasm-weight.py (target/site-names/*.wasm; never served)
#
# wasm-opt (binaryen's Node build) and Lightning CSS come from scripts/node_modules
# (`npm ci` in scripts/, which ./setup.sh runs), wasm-bindgen from cargo install.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

server=1 names=0
for arg in "$@"; do
  case $arg in
    --no-server) server=0 ;;
    --names) names=1 ;;
    *) echo "usage: $0 [--no-server] [--names]" >&2; exit 2 ;;
  esac
done

site=${LEPTOS_SITE_ROOT:-target/site}
bin=scripts/node_modules/.bin
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/pkg"
log() { printf '[site] %s\n' "$*" >&2; }
hash() { cat "$@" | sha256sum | cut -c1-16; }

if [ "$server" = 1 ]; then
  cargo build --release --features ssr --bin clarion
fi

# bundle NAME FEATURES: one island bundle, named by the hash of its glue and wasm.
bundle() {
  local name=$1 features=$2 out=$work/$1 served
  {
  cargo build --lib --target wasm32-unknown-unknown --profile wasm-release --no-default-features --features "$features"
  wasm-bindgen --target web --no-typescript --out-dir "$out" --out-name "$name" \
    target/wasm32-unknown-unknown/wasm-release/clarion.wasm
  if [ "$names" = 1 ]; then
    mkdir -p target/site-names
    "$bin/wasm-opt" -Oz -g --enable-bulk-memory --enable-nontrapping-float-to-int \
      "$out/${name}_bg.wasm" -o "target/site-names/$name.wasm"
  fi
  # The features rustc's wasm32 target emits; never Debian's binaryen (see docs/development.md).
  "$bin/wasm-opt" -Oz --strip-debug --enable-bulk-memory --enable-nontrapping-float-to-int \
    "$out/${name}_bg.wasm" -o "$out/$name.wasm"
  served="$name.$(hash "$out/$name.js" "$out/$name.wasm")"
  cp "$out/$name.js" "$work/pkg/$served.js"
  cp "$out/$name.wasm" "$work/pkg/$served.wasm"
  if [ -d "$out/snippets" ]; then cp -r "$out/snippets" "$work/pkg/"; fi
  log "$served.js ($(stat -c %s "$work/pkg/$served.js") bytes), $served.wasm ($(stat -c %s "$work/pkg/$served.wasm") bytes)"
  } >&2
  echo "$served"
}

page=$(bundle clarion hydrate)
console=$(bundle clarion-console console)

"$bin/lightningcss" --bundle --minify --targets defaults style/main.css -o "$work/clarion.css"
stylesheet="clarion.$(hash "$work/clarion.css").css"
cp "$work/clarion.css" "$work/pkg/$stylesheet"

printf '{"page":"%s","console":"%s","stylesheet":"%s"}\n' "$page" "$console" "$stylesheet" > "$work/pkg/site.json"
node scripts/precompress.mjs "$work/pkg"/*.js "$work/pkg"/*.wasm "$work/pkg"/*.css

# Replace the site whole: a stale bundle or manifest must not survive a rebuild.
mkdir -p "$site"
rm -rf "$site/pkg"
cp -r "$work/pkg" "$site/pkg"
cp -r public/. "$site/"
node scripts/precompress.mjs "$site"/*.svg "$site"/*.webmanifest
log "$site: page $page, console $console, stylesheet $stylesheet"
