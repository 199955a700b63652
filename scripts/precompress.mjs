#!/usr/bin/env node
// Writes FILE.br (brotli, quality 11) and FILE.gz (gzip, level 9) beside each FILE, for
// tower-http's ServeDir to send to browsers that accept them; the build scripts run it
// (scripts/build-site.sh, scripts/build-sdk.sh). A copy that would not be smaller than the
// file is not written, so the server sends the file itself.
//
//   node scripts/precompress.mjs FILE ...
import { readFileSync, writeFileSync, rmSync } from 'node:fs';
import { brotliCompressSync, gzipSync, constants } from 'node:zlib';

for (const file of process.argv.slice(2)) {
  const raw = readFileSync(file);
  const copies = {
    br: brotliCompressSync(raw, {
      params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: raw.length },
    }),
    gz: gzipSync(raw, { level: 9 }),
  };
  for (const [ext, body] of Object.entries(copies)) {
    if (body.length < raw.length) writeFileSync(`${file}.${ext}`, body);
    else rmSync(`${file}.${ext}`, { force: true });
  }
}
