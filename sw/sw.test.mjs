// Unit tests for sw/sw.js: `node --test sw/`. The worker runs in a vm context with a
// small fake ServiceWorkerGlobalScope; events are dispatched by hand and their
// waitUntil promises awaited.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import vm from 'node:vm';

const source = readFileSync(new URL('./sw.js', import.meta.url), 'utf8');
const ORIGIN = 'https://app.example';

function loadWorker({ windows = [], fetchImpl } = {}) {
  const listeners = {};
  const shown = [];
  const opened = [];
  const fetches = [];
  const subscribeCalls = [];
  const self = {
    location: { origin: ORIGIN },
    addEventListener: (type, fn) => { listeners[type] = fn; },
    skipWaiting: () => {},
    registration: {
      showNotification: async (title, options) => { shown.push({ title, options }); },
      pushManager: {
        subscribe: async (options) => {
          subscribeCalls.push(options);
          return { endpoint: 'https://push.example/new', toJSON: () => ({ endpoint: 'https://push.example/new', keys: { p256dh: 'p', auth: 'a' } }) };
        },
      },
    },
    clients: {
      claim: async () => {},
      matchAll: async () => windows,
      openWindow: async (url) => { opened.push(url); return { url }; },
    },
  };
  const fetch = fetchImpl || (async (url, init = {}) => {
    fetches.push({ url, init });
    if (url === '/api/v1/vapid-public-key') {
      return { ok: true, status: 200, json: async () => ({ public_key: 'BAEC' }) };
    }
    return { ok: true, status: 201, json: async () => ({}) };
  });
  const context = vm.createContext({ self, fetch, atob, URL, Promise, Number, String, Array, JSON, Uint8Array, Error });
  vm.runInContext(source, context);
  async function dispatch(type, event) {
    const pending = [];
    listeners[type]({ ...event, waitUntil: (p) => pending.push(p) });
    await Promise.all(pending);
  }
  return { dispatch, shown, opened, fetches, subscribeCalls, listeners };
}

const pushData = (text) => ({ text: () => text });

test('a JSON payload sets title, body, icon and the click URL', async () => {
  const sw = loadWorker();
  await sw.dispatch('push', { data: pushData(JSON.stringify({ title: 'Hi', body: 'There', icon: '/icon.png', url: '/news', tag: 't1' })) });
  assert.equal(sw.shown.length, 1);
  assert.equal(sw.shown[0].title, 'Hi');
  assert.equal(sw.shown[0].options.body, 'There');
  assert.equal(sw.shown[0].options.icon, ORIGIN + '/icon.png');
  assert.equal(sw.shown[0].options.tag, 't1');
  assert.equal(sw.shown[0].options.data.url, ORIGIN + '/news');
});

test('plain text falls back to a text notification', async () => {
  const sw = loadWorker();
  await sw.dispatch('push', { data: pushData('just words') });
  assert.equal(sw.shown[0].title, 'Clarion');
  assert.equal(sw.shown[0].options.body, 'just words');
});

test('an empty push still shows a generic notification', async () => {
  const sw = loadWorker();
  await sw.dispatch('push', { data: null });
  assert.equal(sw.shown.length, 1);
  assert.equal(sw.shown[0].options.body, 'You have a new notification.');
});

test('the Declarative Web Push shape is read too', async () => {
  const sw = loadWorker();
  const payload = { web_push: 8030, notification: { title: 'Declared', body: 'B', navigate: 'https://app.example/d', actions: [{ action: 'x', title: 'Open' }] } };
  await sw.dispatch('push', { data: pushData(JSON.stringify(payload)) });
  assert.equal(sw.shown[0].title, 'Declared');
  assert.equal(sw.shown[0].options.data.url, 'https://app.example/d');
  assert.equal(sw.shown[0].options.actions[0].title, 'Open');
});

test('unsafe links are dropped', async () => {
  const sw = loadWorker();
  await sw.dispatch('push', { data: pushData(JSON.stringify({ title: 'T', body: 'B', url: 'javascript:alert(1)', icon: 'data:image/png;base64,AA' })) });
  assert.equal(sw.shown[0].options.data.url, ORIGIN + '/');
  assert.equal(sw.shown[0].options.icon, undefined);
});

test('a click focuses a window already at the URL', async () => {
  let focused = 0;
  const sw = loadWorker({ windows: [{ url: ORIGIN + '/news', focus: async () => { focused++; } }] });
  let closed = 0;
  await sw.dispatch('notificationclick', { notification: { data: { url: ORIGIN + '/news' }, close: () => { closed++; } } });
  assert.equal(closed, 1);
  assert.equal(focused, 1);
  assert.deepEqual(sw.opened, []);
});

test('a click opens the URL when no window shows it', async () => {
  const sw = loadWorker({ windows: [{ url: ORIGIN + '/other', focus: async () => assert.fail('must not focus') }] });
  await sw.dispatch('notificationclick', { notification: { data: { url: ORIGIN + '/news' }, close: () => {} } });
  assert.deepEqual(sw.opened, [ORIGIN + '/news']);
});

test('pushsubscriptionchange re-subscribes with the server key, stores the new one and deletes the old', async () => {
  const sw = loadWorker();
  await sw.dispatch('pushsubscriptionchange', { oldSubscription: { endpoint: 'https://push.example/old' } });
  assert.equal(sw.subscribeCalls.length, 1);
  assert.equal(sw.subscribeCalls[0].userVisibleOnly, true);
  assert.deepEqual(Array.from(sw.subscribeCalls[0].applicationServerKey), [4, 1, 2]);
  const [key, post, del] = sw.fetches;
  assert.equal(key.url, '/api/v1/vapid-public-key');
  assert.equal(post.init.method, 'POST');
  assert.equal(JSON.parse(post.init.body).endpoint, 'https://push.example/new');
  assert.equal(del.init.method, 'DELETE');
  assert.deepEqual(JSON.parse(del.init.body), { endpoint: 'https://push.example/old' });
});

test('pushsubscriptionchange fails loudly when the server refuses the new subscription', async () => {
  const sw = loadWorker({
    fetchImpl: async (url) => (url === '/api/v1/vapid-public-key'
      ? { ok: true, status: 200, json: async () => ({ public_key: 'BAEC' }) }
      : { ok: false, status: 422, json: async () => ({}) }),
  });
  await assert.rejects(sw.dispatch('pushsubscriptionchange', {}), /422/);
});
