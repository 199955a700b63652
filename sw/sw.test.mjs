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
    if (url.endsWith('/vapid-public-key')) {
      return { ok: true, status: 200, json: async () => ({ public_key: 'BAEC' }) };
    }
    return { ok: true, status: 201, json: async () => ({}) };
  });
  // A fake clock: timers fire only when the test advances it.
  let now = 0;
  const timers = new Map();
  let nextTimer = 1;
  const setTimeout = (fn, ms) => { const id = nextTimer++; timers.set(id, { at: now + ms, fn }); return id; };
  const clearTimeout = (id) => { timers.delete(id); };
  const advance = (ms) => {
    now += ms;
    for (const [id, timer] of [...timers]) {
      if (timer.at <= now) { timers.delete(id); timer.fn(); }
    }
  };
  const context = vm.createContext({ self, fetch, atob, URL, Promise, Number, String, Array, JSON, Uint8Array, Error, Object, setTimeout, clearTimeout, AbortController });
  vm.runInContext(source, context);
  async function dispatch(type, event) {
    const pending = [];
    listeners[type]({ ...event, waitUntil: (p) => pending.push(p) });
    await Promise.all(pending);
  }
  /** Dispatches without waiting for the event's waitUntil promises; hands them back. */
  function fire(type, event) {
    const pending = [];
    listeners[type]({ ...event, waitUntil: (p) => pending.push(p) });
    return Promise.all(pending);
  }
  return { dispatch, fire, advance, shown, opened, fetches, subscribeCalls, listeners };
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

const mine = { toJSON: () => ({ endpoint: 'https://push.example/mine', keys: { p256dh: 'p', auth: 'secret-auth' } }) };

test('a click reports the notification id with this browser\'s proof, with no credentials, and opens the URL', async () => {
  const sw = loadWorker({ current: mine });
  await sw.dispatch('notificationclick', { notification: { data: { url: ORIGIN + '/news', id: 42 }, close: () => {} } });
  assert.equal(sw.fetches.length, 1);
  assert.equal(sw.fetches[0].url, '/api/v1/notifications/42/clicks');
  assert.equal(sw.fetches[0].init.method, 'POST');
  assert.equal(sw.fetches[0].init.credentials, 'omit');
  assert.equal(sw.fetches[0].init.headers['Content-Type'], 'application/json');
  assert.deepEqual(JSON.parse(sw.fetches[0].init.body), { endpoint: 'https://push.example/mine', auth: 'secret-auth' });
  assert.deepEqual(sw.opened, [ORIGIN + '/news']);
});

test('without a subscription a click reports nothing (it could not count) and still opens the URL', async () => {
  const sw = loadWorker();
  await sw.dispatch('notificationclick', { notification: { data: { url: ORIGIN + '/news', id: 42 }, close: () => {} } });
  assert.equal(sw.fetches.length, 0);
  assert.deepEqual(sw.opened, [ORIGIN + '/news']);
});

test('a click opens the window at once though the report never answers, and gives the report up later', async () => {
  const reports = [];
  const sw = loadWorker({
    current: mine,
    fetchImpl: (url, init) => {
      reports.push(url);
      // Never answers, unless aborted.
      return new Promise((_, reject) => init.signal && init.signal.addEventListener('abort', () => reject(new Error('aborted'))));
    },
  });
  let settled = false;
  const done = sw.fire('notificationclick', { notification: { data: { url: ORIGIN + '/news', id: 42 }, close: () => {} } }).then(() => { settled = true; });
  // No time passes on the fake clock: only the promise queue runs.
  for (let i = 0; i < 20; i++) await Promise.resolve();
  assert.deepEqual(sw.opened, [ORIGIN + '/news'], 'the window is opened before the report answers');
  assert.deepEqual(reports, ['/api/v1/notifications/42/clicks']);
  assert.equal(settled, false, 'the report is still pending');
  sw.advance(10000);
  await done;
  assert.equal(settled, true, 'the event ends once the report is given up');
});

test('an action button opens its own URL; a failed report still navigates', async () => {
  const sw = loadWorker({ current: mine, fetchImpl: async () => { throw new Error('offline'); } });
  const data = { url: ORIGIN + '/news', id: 5, actions: { 'action-1': ORIGIN + '/later' } };
  await sw.dispatch('notificationclick', { action: 'action-1', notification: { data, close: () => {} } });
  assert.deepEqual(sw.opened, [ORIGIN + '/later']);
});

test('a notification without an id reports nothing', async () => {
  const sw = loadWorker({ current: mine });
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

const oldOne = { endpoint: 'https://push.example/old', toJSON: () => ({ endpoint: 'https://push.example/old', keys: { p256dh: 'p', auth: 'old-auth' } }) };

test('pushsubscriptionchange re-subscribes with the server key and renews: the new one carries the old one\'s proof', async () => {
  const sw = loadWorker();
  await sw.dispatch('pushsubscriptionchange', { oldSubscription: oldOne });
  assert.equal(sw.subscribeCalls.length, 1);
  assert.equal(sw.subscribeCalls[0].userVisibleOnly, true);
  assert.deepEqual(Array.from(sw.subscribeCalls[0].applicationServerKey), [4, 1, 2]);
  assert.equal(sw.fetches.length, 2, 'the key, then one renewal (Clarion deletes the old one itself)');
  const [key, renew] = sw.fetches;
  assert.equal(key.url, '/api/v1/vapid-public-key');
  assert.equal(renew.url, '/api/v1/subscriptions/renew');
  assert.equal(renew.init.method, 'POST');
  const body = JSON.parse(renew.init.body);
  assert.deepEqual(body.old, { endpoint: 'https://push.example/old', auth: 'old-auth' });
  assert.equal(body.subscription.endpoint, 'https://push.example/new');
});

test('pushsubscriptionchange without a known old subscription, or one Clarion forgot, stores the new one', async () => {
  const plain = loadWorker();
  await plain.dispatch('pushsubscriptionchange', {});
  assert.deepEqual(plain.fetches.map((f) => f.url), ['/api/v1/vapid-public-key', '/api/v1/subscriptions']);
  const fetches = [];
  const forgot = loadWorker({
    fetchImpl: async (url, init) => {
      fetches.push({ url, init });
      if (url.endsWith('/vapid-public-key')) return { ok: true, status: 200, json: async () => ({ public_key: 'BAEC' }) };
      if (url.endsWith('/renew')) return { ok: false, status: 404, json: async () => ({}) };
      return { ok: true, status: 201, json: async () => ({}) };
    },
  });
  await forgot.dispatch('pushsubscriptionchange', { oldSubscription: oldOne });
  assert.deepEqual(fetches.map((f) => f.url), ['/api/v1/vapid-public-key', '/api/v1/subscriptions/renew', '/api/v1/subscriptions']);
  assert.equal(JSON.parse(fetches[2].init.body).endpoint, 'https://push.example/new');
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
  const sw = loadWorker({ location: imported(), current: mine });
  await sw.dispatch('push', { data: pushData(JSON.stringify({ title: 'Sale', url: '/deals', notification_id: 7 })) });
  assert.equal(sw.shown[0].options.data.url, SITE + '/deals', 'links resolve against the site, not Clarion');
  await sw.dispatch('notificationclick', { notification: { data: sw.shown[0].options.data, close() {} } });
  assert.equal(sw.fetches.length, 1);
  assert.equal(sw.fetches[0].url, CLARION + '/api/v1/notifications/7/clicks');
  assert.equal(sw.fetches[0].init.credentials, 'omit');
  assert.deepEqual(JSON.parse(sw.fetches[0].init.body), { endpoint: 'https://push.example/mine', auth: 'secret-auth' });
  assert.deepEqual(sw.opened, [SITE + '/deals']);
});

test('imported, pushsubscriptionchange takes the key from Clarion and renews the subscription there', async () => {
  const sw = loadWorker({ location: imported() });
  await sw.dispatch('pushsubscriptionchange', { oldSubscription: oldOne });
  const [key, renew] = sw.fetches;
  assert.equal(key.url, CLARION + '/api/v1/vapid-public-key');
  assert.equal(renew.url, CLARION + '/api/v1/subscriptions/renew');
  assert.equal(renew.init.method, 'POST');
  assert.equal(renew.init.credentials, 'omit');
});

test('a clarion parameter that is not an http(s) origin, or is the worker\'s own, keeps reports on this origin', async () => {
  for (const query of ['?clarion=javascript%3Aalert(1)', '?clarion=not%20a%20url', '?clarion=' + encodeURIComponent(SITE), '']) {
    const sw = loadWorker({ location: imported(query), current: mine });
    await sw.dispatch('notificationclick', { notification: { data: { id: 3, url: SITE + '/' }, close() {} } });
    assert.equal(sw.fetches[0].url, '/api/v1/notifications/3/clicks', query);
  }
});

test('imported for a site other than default, reports and renewals go to that site\'s paths', async () => {
  const query = '?clarion=' + encodeURIComponent(CLARION) + '&clarion_site=shop';
  const sw = loadWorker({ location: imported(query), current: mine });
  await sw.dispatch('notificationclick', { notification: { data: { id: 5, url: SITE + '/' }, close() {} } });
  assert.equal(sw.fetches[0].url, CLARION + '/api/v1/sites/shop/notifications/5/clicks');
  const renewing = loadWorker({ location: imported(query) });
  await renewing.dispatch('pushsubscriptionchange', { oldSubscription: oldOne });
  assert.deepEqual(renewing.fetches.map((f) => f.url), [CLARION + '/api/v1/sites/shop/vapid-public-key', CLARION + '/api/v1/sites/shop/subscriptions/renew']);
});

test('a clarion_site that is default or not a site name keeps the unprefixed paths', async () => {
  for (const site of ['default', 'Shop', '../admin', 'a/b', '']) {
    const query = '?clarion=' + encodeURIComponent(CLARION) + '&clarion_site=' + encodeURIComponent(site);
    const sw = loadWorker({ location: imported(query), current: mine });
    await sw.dispatch('notificationclick', { notification: { data: { id: 3, url: SITE + '/' }, close() {} } });
    assert.equal(sw.fetches[0].url, CLARION + '/api/v1/notifications/3/clicks', site);
  }
});
