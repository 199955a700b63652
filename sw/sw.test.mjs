// Unit tests for sw/sw.js: `node --test sw/`. The worker runs in a vm context with a
// small fake ServiceWorkerGlobalScope; events are dispatched by hand and their
// waitUntil promises awaited.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import vm from 'node:vm';

const source = readFileSync(new URL('./sw.js', import.meta.url), 'utf8');
const ORIGIN = 'https://app.example';

function loadWorker({ windows = [], fetchImpl, navigator, current = null, location = { origin: ORIGIN } } = {}) {
  const listeners = {};
  const shown = [];
  const opened = [];
  const fetches = [];
  const subscribeCalls = [];
  const self = {
    location,
    navigator,
    addEventListener: (type, fn) => { listeners[type] = fn; },
    skipWaiting: () => {},
    registration: {
      showNotification: async (title, options) => { shown.push({ title, options }); },
      pushManager: {
        getSubscription: async () => current,
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
    if (url.endsWith('/api/v1/vapid-public-key')) {
      return { ok: true, status: 200, json: async () => ({ public_key: 'BAEC' }) };
    }
    return { ok: true, status: 201, json: async () => ({}) };
  });
  const context = vm.createContext({ self, fetch, atob, URL, Promise, Number, String, Array, JSON, Uint8Array, Error, Object });
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

test('the Declarative Web Push shape Clarion sends is read in full', async () => {
  const badges = [];
  const sw = loadWorker({ navigator: { setAppBadge: async (n) => { badges.push(n); } } });
  const payload = {
    web_push: 8030,
    notification: {
      title: 'Declared', body: 'B', navigate: '/d', icon: '/i.png', badge: '/b.png', image: '/hero.jpg', tag: 'news',
      renotify: true, requireInteraction: true, silent: false,
      actions: [{ action: 'action-0', title: 'Read', navigate: '/read' }, { action: 'action-1', title: 'Later', navigate: '/later' }],
      data: { notification_id: 42 },
    },
    app_badge: 3,
  };
  await sw.dispatch('push', { data: pushData(JSON.stringify(payload)) });
  const { title, options } = sw.shown[0];
  assert.equal(title, 'Declared');
  assert.equal(options.data.url, ORIGIN + '/d');
  assert.equal(options.data.id, 42);
  assert.equal(options.image, ORIGIN + '/hero.jpg');
  assert.equal(options.badge, ORIGIN + '/b.png');
  assert.equal(options.renotify, true);
  assert.equal(options.requireInteraction, true);
  assert.equal(options.silent, false);
  assert.deepEqual(options.actions.map((a) => [a.action, a.title]), [['action-0', 'Read'], ['action-1', 'Later']]);
  assert.deepEqual({ ...options.data.actions }, { 'action-0': ORIGIN + '/read', 'action-1': ORIGIN + '/later' });
  assert.deepEqual(badges, [3]);
});

test('the flat shape carries the id and the badge too; 0 clears the badge', async () => {
  let cleared = 0;
  const sw = loadWorker({ navigator: { setAppBadge: async () => assert.fail('must clear'), clearAppBadge: async () => { cleared++; } } });
  await sw.dispatch('push', { data: pushData(JSON.stringify({ title: 'F', body: '', url: '/f', notification_id: 7, app_badge: 0 })) });
  assert.equal(sw.shown[0].options.data.id, 7);
  assert.equal(cleared, 1);
});

test('a click reports the notification id, with no credentials, and opens the URL', async () => {
  const sw = loadWorker();
  await sw.dispatch('notificationclick', { notification: { data: { url: ORIGIN + '/news', id: 42 }, close: () => {} } });
  assert.equal(sw.fetches.length, 1);
  assert.equal(sw.fetches[0].url, '/api/v1/notifications/42/clicks');
  assert.equal(sw.fetches[0].init.method, 'POST');
  assert.equal(sw.fetches[0].init.credentials, 'omit');
  assert.equal(sw.fetches[0].init.body, undefined);
  assert.deepEqual(sw.opened, [ORIGIN + '/news']);
});

test('a click names this browser\'s subscription, so Clarion marks it as seen', async () => {
  const current = { toJSON: () => ({ endpoint: 'https://push.example/mine', keys: { p256dh: 'p', auth: 'secret-auth' } }) };
  const sw = loadWorker({ current });
  await sw.dispatch('notificationclick', { notification: { data: { url: ORIGIN + '/', id: 9 }, close: () => {} } });
  assert.equal(sw.fetches[0].url, '/api/v1/notifications/9/clicks');
  assert.equal(sw.fetches[0].init.headers['Content-Type'], 'application/json');
  assert.deepEqual(JSON.parse(sw.fetches[0].init.body), { endpoint: 'https://push.example/mine', auth: 'secret-auth' });
});

test('an action button opens its own URL; a failed report still navigates', async () => {
  const sw = loadWorker({ fetchImpl: async () => { throw new Error('offline'); } });
  const data = { url: ORIGIN + '/news', id: 5, actions: { 'action-1': ORIGIN + '/later' } };
  await sw.dispatch('notificationclick', { action: 'action-1', notification: { data, close: () => {} } });
  assert.deepEqual(sw.opened, [ORIGIN + '/later']);
});

test('a notification without an id reports nothing', async () => {
  const sw = loadWorker();
  await sw.dispatch('notificationclick', { notification: { data: { url: ORIGIN + '/' }, close: () => {} } });
  assert.equal(sw.fetches.length, 0);
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

// A site's own worker, `importScripts("https://push.example.com/sw.js")`, registered by
// the SDK with Clarion's origin in its URL.
const SITE = 'https://shop.example';
const CLARION = 'https://push.example.com';
const imported = (query = '?clarion=' + encodeURIComponent(CLARION)) => ({ origin: SITE, href: SITE + '/clarion-worker.js' + query });

test('imported into a site\'s worker, a click is reported to Clarion\'s origin and opens the site\'s page', async () => {
  const current = { toJSON: () => ({ endpoint: 'https://push.example/mine', keys: { p256dh: 'p', auth: 'secret-auth' } }) };
  const sw = loadWorker({ location: imported(), current });
  await sw.dispatch('push', { data: pushData(JSON.stringify({ title: 'Sale', url: '/deals', notification_id: 7 })) });
  assert.equal(sw.shown[0].options.data.url, SITE + '/deals', 'links resolve against the site, not Clarion');
  await sw.dispatch('notificationclick', { notification: { data: sw.shown[0].options.data, close() {} } });
  assert.equal(sw.fetches.length, 1);
  assert.equal(sw.fetches[0].url, CLARION + '/api/v1/notifications/7/clicks');
  assert.equal(sw.fetches[0].init.credentials, 'omit');
  assert.deepEqual(JSON.parse(sw.fetches[0].init.body), { endpoint: 'https://push.example/mine', auth: 'secret-auth' });
  assert.deepEqual(sw.opened, [SITE + '/deals']);
});

test('imported, pushsubscriptionchange takes the key from Clarion and stores the new subscription there', async () => {
  const sw = loadWorker({ location: imported() });
  await sw.dispatch('pushsubscriptionchange', { oldSubscription: { endpoint: 'https://push.example/old' } });
  const [key, post, del] = sw.fetches;
  assert.equal(key.url, CLARION + '/api/v1/vapid-public-key');
  assert.equal(post.url, CLARION + '/api/v1/subscriptions');
  assert.equal(post.init.method, 'POST');
  assert.equal(post.init.credentials, 'omit');
  assert.equal(del.url, CLARION + '/api/v1/subscriptions');
  assert.equal(del.init.method, 'DELETE');
  assert.deepEqual(JSON.parse(del.init.body), { endpoint: 'https://push.example/old' });
});

test('a clarion parameter that is not an http(s) origin, or is the worker\'s own, keeps reports on this origin', async () => {
  for (const query of ['?clarion=javascript%3Aalert(1)', '?clarion=not%20a%20url', '?clarion=' + encodeURIComponent(SITE), '']) {
    const sw = loadWorker({ location: imported(query) });
    await sw.dispatch('notificationclick', { notification: { data: { id: 3, url: SITE + '/' }, close() {} } });
    assert.equal(sw.fetches[0].url, '/api/v1/notifications/3/clicks', query);
  }
});
