#!/usr/bin/env node
// What a visitor's first load costs: each page, and every resource it loads, as a real
// browser (Debian's Chromium, through Playwright) fetches them with
// `Accept-Encoding: br, gzip`: bytes on the wire (body as sent, and headers), the
// encoding, and Cache-Control. It starts the release `clarion serve` on a free loopback
// port with a fresh data dir, measures, and stops it.
//
//   node end2end/tools/page-weight.mjs [PATH ...]      (default: / and /admin)
//
// It fails when a first visit to `/` transfers more than 150 KB (bodies as sent plus
// headers, every response counted: the page, its stylesheet, bundle, icons, the service
// worker and the API calls the push control makes), or when a content-hashed file under
// /pkg/ is not sent compressed and `immutable`. The test command runs it.
//
// CLARION_BIN picks the binary (default target/release/clarion); LEPTOS_SITE_ROOT and
// CLARION_SDK_DIR the built site and SDK (default target/site, target/sdk).
import { chromium } from '@playwright/test';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '../..');
const paths = process.argv.slice(2).length ? process.argv.slice(2) : ['/', '/admin'];

const port = await new Promise((resolve) => {
  const probe = createServer().listen(0, '127.0.0.1', () => {
    const { port } = probe.address();
    probe.close(() => resolve(port));
  });
});
const dataDir = mkdtempSync(path.join(tmpdir(), 'clarion-weight-'));
const server = spawn(process.env.CLARION_BIN ?? path.join(root, 'target/release/clarion'), ['serve'], {
  cwd: root,
  env: {
    ...process.env,
    CLARION_ADDR: `127.0.0.1:${port}`,
    CLARION_DATA_DIR: dataDir,
    CLARION_ADMIN_TOKEN: 'page-weight-admin-token-0123456789abcdef',
    RUST_LOG: 'warn',
  },
  stdio: ['ignore', 'inherit', 'inherit'],
});
const base = `http://127.0.0.1:${port}`;

async function waitForServer() {
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`${base}/healthz`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('clarion serve did not start');
}

const kb = (n) => (n / 1024).toFixed(1).padStart(8);

// A resource fetched the way the browser asks for it, measured on the wire: its body as
// sent, its headers, encoding and Cache-Control. For the service worker's script, which
// the worker (not the page) fetches, so the page's events do not list it.
function fetchAsSent(url) {
  return new Promise((resolve, reject) => {
    get(url, { headers: { 'Accept-Encoding': 'br, gzip' } }, (response) => {
      let body = 0;
      response.on('data', (chunk) => (body += chunk.length));
      response.on('end', () => {
        const headers = response.rawHeaders.reduce((sum, part) => sum + part.length + 2, 0);
        resolve({
          resource: new URL(url).pathname,
          body,
          headers,
          encoding: response.headers['content-encoding'] ?? '-',
          cache: response.headers['cache-control'] ?? '-',
        });
      });
    }).on('error', reject);
  });
}

// Nothing here may wait forever: a stuck browser or server fails the run instead.
setTimeout(() => {
  console.error('page-weight: no result after 120 s');
  server.kill('SIGKILL');
  process.exit(1);
}, 120_000).unref();
// The most a first visit may transfer, per page.
const BUDGETS = { '/': 150 * 1024 };

try {
  await waitForServer();
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking'],
  });
  let failed = false;
  for (const page_path of paths) {
    // A fresh context per page: a first visit, nothing cached.
    const context = await browser.newContext({ extraHTTPHeaders: { 'Accept-Encoding': 'br, gzip' } });
    const page = await context.newPage();
    const loads = [];
    page.on('requestfinished', (request) => loads.push(request));
    await page.goto(`${base}${page_path}`, { waitUntil: 'networkidle' });
    // The islands hydrate when the browser is idle; their first calls come after that.
    await page.waitForTimeout(1000);
    await page.waitForLoadState('networkidle');
    const rows = [];
    for (const request of loads) {
      const response = await request.response();
      if (!response) continue;
      const sizes = await request.sizes();
      const headers = await response.allHeaders();
      // A resource the page already had (the same icon twice) reports -1: nothing sent.
      rows.push({
        resource: new URL(request.url()).pathname,
        body: Math.max(sizes.responseBodySize, 0),
        headers: sizes.responseHeadersSize,
        encoding: headers['content-encoding'] ?? '-',
        cache: headers['cache-control'] ?? '-',
      });
    }
    // A page that registered /sw.js made the browser fetch it, from the worker's side.
    const registered = await page.evaluate(async () => Boolean(await navigator.serviceWorker?.getRegistration()));
    if (registered && !rows.some((r) => r.resource === '/sw.js')) rows.push(await fetchAsSent(`${base}/sw.js`));
    const total = rows.reduce((sum, r) => sum + r.body + r.headers, 0);
    console.log(`\n${page_path}: ${rows.length} responses, ${kb(total).trim()} KB transferred (bodies as sent, plus headers)`);
    console.log(`${'resource'.padEnd(44)} ${'body KB'.padStart(8)} ${'hdr KB'.padStart(8)}  ${'encoding'.padEnd(8)} cache-control`);
    for (const r of rows) {
      console.log(`${r.resource.slice(0, 44).padEnd(44)} ${kb(r.body)} ${kb(r.headers)}  ${r.encoding.padEnd(8)} ${r.cache}`);
    }
    if (rows.length === 0) failed = true;
    const budget = BUDGETS[page_path];
    if (budget !== undefined) {
      const verdict = total <= budget ? 'within' : 'OVER';
      console.log(`${page_path}: ${kb(total).trim()} KB, ${verdict} its budget of ${budget / 1024} KB`);
      if (total > budget) failed = true;
    }
    for (const r of rows.filter((r) => r.resource.startsWith('/pkg/') && !r.resource.endsWith('.json'))) {
      if (r.encoding === '-' || !r.cache.includes('immutable')) {
        console.log(`${r.resource}: sent ${r.encoding === '-' ? 'uncompressed' : r.encoding}, cache-control ${r.cache}: want compressed and immutable`);
        failed = true;
      }
    }
    await context.close();
  }
  await browser.close();
  process.exitCode = failed ? 1 : 0;
} finally {
  server.kill('SIGTERM');
  rmSync(dataDir, { recursive: true, force: true });
}
