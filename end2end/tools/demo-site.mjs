// Serves end2end/demo-site/ (a customer's site) for the Playwright run, on each port in
// DEMO_PORTS (one site CLARION_CORS_ORIGINS lists, one it does not), with the test's
// Clarion origin (CLARION_URL) where the README snippets say https://push.example.com.
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '../demo-site');
const clarion = process.env.CLARION_URL;
const types = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8' };

async function handle(request, response) {
  const { pathname } = new URL(request.url, 'http://demo');
  const file = path.join(root, pathname === '/' ? 'index.html' : pathname);
  const type = types[path.extname(file)];
  if (!file.startsWith(root + path.sep) || !type) {
    response.writeHead(404).end();
    return;
  }
  try {
    const text = (await readFile(file, 'utf8')).replaceAll('https://push.example.com', clarion);
    response.writeHead(200, { 'Content-Type': type, 'Cache-Control': 'no-store' }).end(text);
  } catch {
    response.writeHead(404).end();
  }
}

for (const port of process.env.DEMO_PORTS.split(',')) {
  createServer(handle).listen(Number(port), '127.0.0.1');
}
