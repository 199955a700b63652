#!/usr/bin/env node
// The SDK's weight on a site's every page: sdk.js and everything it loads (its glue and
// wasm), raw, gzip and brotli (quality 11, what a precompressing CDN serves). Fails when
// the brotli total is over the budget.
//
//   node scripts/sdk-size.mjs [SDK_DIR]      (default: $CLARION_SDK_DIR or target/sdk)
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

const BUDGET = 60 * 1024;
const dir = process.argv[2] ?? process.env.CLARION_SDK_DIR ?? 'target/sdk';
const loader = readFileSync(path.join(dir, 'sdk.js'), 'utf8');
// Exactly the files the loader names, not whatever else the folder holds.
const named = [...loader.matchAll(/"\.\/sdk\/([^"]+)"/g)].map((m) => m[1]);
const assets = new Set(readdirSync(path.join(dir, 'assets')));
const missing = named.filter((file) => !assets.has(file));
if (named.length !== 2 || missing.length > 0) {
  console.error(`sdk.js should load its glue and wasm from ${dir}/assets; missing: ${missing.join(', ') || '(names not found)'}`);
  process.exit(1);
}
const files = [['sdk.js', Buffer.from(loader)], ...named.map((file) => [file, readFileSync(path.join(dir, 'assets', file))])];
const brotli = (bytes) => zlib.brotliCompressSync(bytes, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11 } }).length;
const total = { raw: 0, gzip: 0, brotli: 0 };
console.log('file'.padEnd(44), 'raw'.padStart(9), 'gzip'.padStart(9), 'brotli'.padStart(9));
for (const [name, bytes] of files) {
  const sizes = { raw: bytes.length, gzip: zlib.gzipSync(bytes, { level: 9 }).length, brotli: brotli(bytes) };
  for (const key of Object.keys(total)) total[key] += sizes[key];
  console.log(name.padEnd(44), ...Object.values(sizes).map((n) => String(n).padStart(9)));
}
console.log('total'.padEnd(44), ...Object.values(total).map((n) => String(n).padStart(9)));
const verdict = total.brotli <= BUDGET ? 'within' : 'OVER';
console.log(`brotli total ${(total.brotli / 1024).toFixed(1)} KB: ${verdict} the ${BUDGET / 1024} KB budget`);
process.exit(total.brotli <= BUDGET ? 0 : 1);
