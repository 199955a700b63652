// Clarion's Playwright suite: Debian's Chromium and Firefox ESR, fully offline.
//
// Three servers are started once for the run, on free ports chosen here (and passed to
// the workers through the environment): the release `clarion serve` with a fresh data
// dir, `clarion push-service`, which Firefox subscribes through over WebSocket, and a
// customer's site (demo-site/) that embeds Clarion through its SDK, on two more ports:
// one CLARION_CORS_ORIGINS lists, and one it does not.
import { defineConfig } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

function freePort(): string {
  return execFileSync(process.execPath, [
    '-e',
    "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})",
  ]).toString().trim();
}

process.env.CLARION_E2E_PORT ??= freePort();
process.env.CLARION_E2E_PUSH_PORT ??= freePort();
process.env.CLARION_E2E_DEMO_PORT ??= freePort();
process.env.CLARION_E2E_STRANGER_PORT ??= freePort();
process.env.CLARION_E2E_DATA_DIR ??= mkdtempSync(path.join(tmpdir(), 'clarion-e2e-'));
process.env.CLARION_E2E_ADMIN_TOKEN ??= 'e2e-admin-token-0123456789abcdefghij';
// The secret a site's backend would sign identity tokens with (tests mint them).
process.env.CLARION_E2E_IDENTITY_SECRET ??= 'e2e-identity-secret-0123456789abcdefghij';

const root = path.resolve(__dirname, '..');
// The newest of the release and debug builds: `./setup.sh test` and
// `cargo leptos end-to-end --release` build the first, `cargo leptos end-to-end` the second.
function newestBinary(): string {
  const candidates = ['release', 'debug']
    .map((profile) => path.join(root, 'target', profile, 'clarion'))
    .filter((file) => existsSync(file));
  candidates.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  return candidates[0] ?? path.join(root, 'target/release/clarion');
}
const bin = process.env.CLARION_BIN ?? newestBinary();
const port = process.env.CLARION_E2E_PORT;
const pushPort = process.env.CLARION_E2E_PUSH_PORT;
const baseURL = `http://127.0.0.1:${port}`;
const demoPorts = [process.env.CLARION_E2E_DEMO_PORT, process.env.CLARION_E2E_STRANGER_PORT];

export const chromiumArgs = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

export default defineConfig({
  testDir: './tests',
  timeout: 60_000,
  expect: { timeout: 15_000 },
  retries: 0,
  workers: 1,
  fullyParallel: false,
  reporter: [['list'], ['html', { outputFolder: 'playwright-report', open: 'never' }]],
  outputDir: 'test-results',
  use: {
    baseURL,
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
  },
  webServer: [
    {
      command: `${bin} push-service --addr 127.0.0.1:${pushPort}`,
      url: `http://127.0.0.1:${pushPort}/`,
      reuseExistingServer: false,
      stdout: 'pipe',
      stderr: 'pipe',
    },
    {
      command: `node ${path.join(__dirname, 'tools/demo-site.mjs')}`,
      url: `http://127.0.0.1:${demoPorts[0]}/`,
      reuseExistingServer: false,
      env: { DEMO_PORTS: demoPorts.join(','), CLARION_URL: baseURL },
      stdout: 'pipe',
      stderr: 'pipe',
    },
    {
      command: `${path.join(__dirname, 'tools/serve.sh')}`,
      url: `${baseURL}/healthz`,
      reuseExistingServer: false,
      cwd: root,
      env: {
        CLARION_BIN: bin,
        CLARION_ADDR: `127.0.0.1:${port}`,
        CLARION_DATA_DIR: process.env.CLARION_E2E_DATA_DIR,
        CLARION_ADMIN_TOKEN: process.env.CLARION_E2E_ADMIN_TOKEN,
        CLARION_IDENTITY_SECRET: process.env.CLARION_E2E_IDENTITY_SECRET,
        CLARION_PUSH_HOSTS: `127.0.0.1:${pushPort}`,
        CLARION_VAPID_SUBJECT: 'mailto:e2e@clarion.dev',
        // Every test subscribes from 127.0.0.1; the limit has its own integration test.
        CLARION_SUBSCRIBE_RATE_LIMIT: '0',
        CLARION_MAX_SUBSCRIPTIONS_PER_IP: '0',
        // Several tests press "Send test notification" within a minute; the limit has its
        // own integration test.
        CLARION_TEST_PUSH_RATE_LIMIT: '0',
        // The suite makes hundreds of writes from 127.0.0.1 within minutes (more with
        // --repeat-each); the write limit has its own integration test.
        CLARION_WRITE_RATE_LIMIT: '0',
        LEPTOS_SITE_ROOT: path.join(root, 'target/site'),
        CLARION_SDK_DIR: path.join(root, 'target/sdk'),
        // The demo site embeds Clarion; the stranger's port is a site that is not listed.
        CLARION_CORS_ORIGINS: `http://127.0.0.1:${demoPorts[0]}`,
      },
      stdout: 'pipe',
      stderr: 'pipe',
    },
  ],
  projects: [
    {
      name: 'chromium',
      testMatch: /chromium\/.*\.spec\.ts/,
      use: {
        browserName: 'chromium',
        launchOptions: { executablePath: '/usr/bin/chromium', args: chromiumArgs },
      },
    },
    {
      name: 'firefox',
      testMatch: /firefox\/.*\.spec\.ts/,
      use: {
        browserName: 'firefox',
        channel: 'moz-firefox',
        launchOptions: {
          executablePath: '/usr/bin/firefox-esr',
          firefoxUserPrefs: {
            'dom.push.serverURL': `ws://127.0.0.1:${pushPort}/`,
            'dom.push.testing.allowInsecureServerURL': true,
            'dom.push.enabled': true,
            'dom.push.connection.enabled': true,
            'dom.serviceWorkers.enabled': true,
            'permissions.default.desktop-notification': 1,
            'alerts.useSystemBackend': false,
          },
        },
      },
    },
  ],
});
