/*
 * Clarion's service worker. It runs two ways:
 * - served by Clarion at /sw.js, with scope /, for Clarion's own page;
 * - imported by any site into its own worker, the one line
 *   `importScripts("https://push.example.com/sw.js");`. Notifications then open the
 *   site's pages, and reports go to Clarion's origin, which the SDK names in the
 *   worker's URL when it registers it (`/clarion-worker.js?clarion=https://push.example.com`).
 *
 * - push: shows the notification described by the payload. The payload is the Declarative
 *   Web Push shape Clarion sends by default ({web_push: 8030, notification: {title, body,
 *   navigate, icon, badge, image, tag, renotify, requireInteraction, silent, actions,
 *   data}, app_badge}) or the flat one ({title, body, url, ..., notification_id,
 *   app_badge}); plain text falls back to a text notification, and an empty push still
 *   shows a generic one (browsers penalise a push that shows nothing). `app_badge` sets
 *   the installed app's badge where the Badging API exists (0 clears it).
 * - notificationclick: closes the notification, focuses a window already at the target
 *   URL (an action's own URL when an action button was clicked) or opens one, and
 *   meanwhile reports the click to Clarion (the notification's id, and this browser's
 *   subscription proven by its `auth` secret: a click counts once per subscription).
 * - pushsubscriptionchange: subscribes again with the server's current VAPID key and
 *   asks Clarion to renew: the new subscription takes over the old one's user and topics
 *   (the old one's `auth` proves it) and the old one is deleted. It uses only what a
 *   worker has: no window, no localStorage; the last subscription it saw is kept in
 *   Cache Storage for browsers that do not say which one changed.
 */
'use strict';

/**
 * Where Clarion's API is: this worker's own origin (a relative path), or the origin in
 * its `clarion` parameter when a site imported this file; under
 * `/api/v1/sites/{site}` when its `clarion_site` parameter names a site other than
 * `default` (the SDK sets both on the site's worker URL).
 */
function clarionApi(location) {
  let named = null;
  let site = null;
  try {
    const params = new URL(location.href).searchParams;
    named = params.get('clarion');
    site = params.get('clarion_site');
  } catch (_) {
    named = null;
  }
  let base = '/api/v1';
  if (named) {
    try {
      const clarion = new URL(named);
      if ((clarion.protocol === 'https:' || clarion.protocol === 'http:') && clarion.origin !== location.origin) {
        base = clarion.origin + '/api/v1';
      }
    } catch (_) {
      // Not a URL: Clarion is this origin.
    }
  }
  if (site && site !== 'default' && /^[a-z0-9-]{1,40}$/.test(site)) {
    base += '/sites/' + site;
  }
  return base;
}

const API = clarionApi(self.location);

const GENERIC_TITLE = 'Clarion';
const GENERIC_BODY = 'You have a new notification.';

/** base64url (padded or not, either alphabet) to bytes, for applicationServerKey. */
function base64UrlToBytes(text) {
  const b64 = String(text).trim().replace(/=+$/, '').replace(/-/g, '+').replace(/_/g, '/');
  const padded = b64 + '='.repeat((4 - (b64.length % 4)) % 4);
  const raw = atob(padded);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

/** Only http(s) links are followed; anything else becomes the site root. */
function safeUrl(value, origin) {
  if (typeof value !== 'string' || value === '') return undefined;
  try {
    const url = new URL(value, origin);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : undefined;
  } catch (_) {
    return undefined;
  }
}

function text(value) {
  return typeof value === 'string' ? value : undefined;
}

/**
 * Turns a push message's data into {title, options} for showNotification.
 * `data` is a PushMessageData (or null for an empty push).
 */
function notificationFromPush(data, origin) {
  let raw = '';
  if (data) {
    try {
      raw = data.text();
    } catch (_) {
      raw = '';
    }
  }
  if (!raw) {
    return { title: GENERIC_TITLE, options: { body: GENERIC_BODY, data: { url: origin + '/' } } };
  }
  let parsed;
  try {
    parsed = JSON.parse(raw);
  } catch (_) {
    parsed = undefined;
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    return { title: GENERIC_TITLE, options: { body: raw, data: { url: origin + '/' } } };
  }
  // Declarative Web Push nests the notification; the flat payload does not.
  const declarative = parsed.web_push === 8030 && parsed.notification && typeof parsed.notification === 'object';
  const n = declarative ? parsed.notification : parsed;
  const url = safeUrl(declarative ? n.navigate : n.url, origin) || origin + '/';
  const id = declarative ? n.data && n.data.notification_id : parsed.notification_id;
  const options = { body: text(n.body) || '', data: { url } };
  if (Number.isSafeInteger(id) && id > 0) options.data.id = id;
  for (const key of ['icon', 'badge', 'image']) {
    const link = safeUrl(n[key], origin);
    if (link) options[key] = link;
  }
  if (text(n.tag)) options.tag = n.tag;
  if (typeof n.renotify === 'boolean' && options.tag) options.renotify = n.renotify;
  if (typeof n.requireInteraction === 'boolean') options.requireInteraction = n.requireInteraction;
  if (typeof n.silent === 'boolean') options.silent = n.silent;
  if (Array.isArray(n.actions)) {
    const actions = n.actions.filter((a) => a && text(a.title || a.label)).slice(0, 2);
    options.actions = actions.map((a, i) => ({ action: text(a.action) || 'action-' + i, title: a.title || a.label }));
    options.data.actions = {};
    actions.forEach((a, i) => {
      const link = safeUrl(a.navigate || a.url, origin);
      if (link) options.data.actions[options.actions[i].action] = link;
    });
  }
  const title = text(n.title) || GENERIC_TITLE;
  return { title, options, appBadge: parsed.app_badge };
}

/** Sets (or, with 0, clears) the app badge where the Badging API exists. */
function applyBadge(count) {
  if (!Number.isSafeInteger(count) || count < 0) return undefined;
  const nav = self.navigator;
  if (!nav) return undefined;
  if (count === 0 && typeof nav.clearAppBadge === 'function') return nav.clearAppBadge().catch(() => undefined);
  if (typeof nav.setAppBadge === 'function') return nav.setAppBadge(count).catch(() => undefined);
  return undefined;
}

/** How long a click report may take before it is given up (the window is open by then). */
const REPORT_TIMEOUT_MS = 10000;

/** This browser's subscription as `{endpoint, auth}`, the proof Clarion asks for, or null. */
function proofOf(subscription) {
  let json = null;
  try {
    json = subscription && (typeof subscription.toJSON === 'function' ? subscription.toJSON() : subscription);
  } catch (_) {
    json = null;
  }
  return json && json.endpoint && json.keys && json.keys.auth ? { endpoint: json.endpoint, auth: json.keys.auth } : null;
}

/**
 * Tells Clarion a notification was clicked. A click counts only with the proof that this
 * browser got the notification: its subscription's endpoint and `auth` secret (which also
 * mark it as seen). Without a subscription nothing is reported. The report is given up
 * after REPORT_TIMEOUT_MS and never fails the click.
 */
async function reportClick(id) {
  if (!Number.isSafeInteger(id) || id <= 0) return undefined;
  let proof = null;
  try {
    proof = proofOf(await self.registration.pushManager.getSubscription());
  } catch (_) {
    proof = null;
  }
  if (!proof) return undefined;
  const init = {
    method: 'POST',
    credentials: 'omit',
    keepalive: true,
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(proof),
  };
  let timer;
  const controller = typeof AbortController === 'function' ? new AbortController() : null;
  if (controller) init.signal = controller.signal;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => {
      if (controller) controller.abort();
      resolve();
    }, REPORT_TIMEOUT_MS);
  });
  const sent = fetch(API + '/notifications/' + id + '/clicks', init).then(
    () => undefined,
    () => undefined,
  );
  await Promise.race([sent, timeout]);
  clearTimeout(timer);
  return undefined;
}

/** Focuses a window already at `target`, or opens one. */
async function openOrFocus(target) {
  const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  for (const client of windows) {
    if (client.url === target && typeof client.focus === 'function') {
      return client.focus();
    }
  }
  if (self.clients.openWindow) {
    return self.clients.openWindow(target);
  }
  return undefined;
}

/*
 * The subscription this worker last saw, kept in Cache Storage: Chrome often fires
 * pushsubscriptionchange without `oldSubscription`, and the renewal needs the old one's
 * proof to carry its user and topics over.
 */
const MEMORY_CACHE = 'clarion-worker';
const MEMORY_KEY = '/clarion-worker/subscription';

async function remember(subscription) {
  const proof = proofOf(subscription);
  if (!proof || typeof caches === 'undefined') return;
  try {
    const cache = await caches.open(MEMORY_CACHE);
    await cache.put(MEMORY_KEY, new Response(JSON.stringify(proof), { headers: { 'Content-Type': 'application/json' } }));
  } catch (_) {
    // Remembering is a help, not a need.
  }
}

async function remembered() {
  if (typeof caches === 'undefined') return null;
  try {
    const cache = await caches.open(MEMORY_CACHE);
    const found = await cache.match(MEMORY_KEY);
    return found ? await found.json() : null;
  } catch (_) {
    return null;
  }
}

async function rememberCurrent() {
  try {
    await remember(await self.registration.pushManager.getSubscription());
  } catch (_) {
    // As above.
  }
}

self.addEventListener('install', () => {
  self.skipWaiting();
});

self.addEventListener('activate', (event) => {
  event.waitUntil(Promise.all([self.clients.claim(), rememberCurrent()]));
});

self.addEventListener('push', (event) => {
  const origin = self.location.origin;
  const { title, options, appBadge } = notificationFromPush(event.data, origin);
  event.waitUntil(Promise.all([self.registration.showNotification(title, options), applyBadge(appBadge), rememberCurrent()]));
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const data = event.notification.data || {};
  let target = data.url || self.location.origin + '/';
  if (event.action && data.actions && typeof data.actions[event.action] === 'string') {
    target = data.actions[event.action];
  }
  // The window first: a browser lets a worker open one only for a short time after the
  // click (Firefox: about a second). The report goes alongside and never holds it up.
  event.waitUntil(Promise.all([openOrFocus(target), reportClick(data.id)]));
});

self.addEventListener('pushsubscriptionchange', (event) => {
  event.waitUntil(
    (async () => {
      const json = { 'Content-Type': 'application/json' };
      const response = await fetch(API + '/vapid-public-key', { credentials: 'omit' });
      if (!response.ok) throw new Error('could not fetch the VAPID key: ' + response.status);
      const { public_key: publicKey } = await response.json();
      const renewed =
        event.newSubscription ||
        (await self.registration.pushManager.subscribe({
          userVisibleOnly: true,
          applicationServerKey: base64UrlToBytes(publicKey),
        }));
      const old = proofOf(event.oldSubscription) || (await remembered());
      if (old && old.endpoint !== renewed.endpoint) {
        // The renewed subscription takes over the old one's user and topics, and Clarion
        // deletes the old one; the old one's `auth` proves this worker held it.
        const carried = await fetch(API + '/subscriptions/renew', {
          method: 'POST',
          credentials: 'omit',
          headers: json,
          body: JSON.stringify({ old, subscription: renewed.toJSON() }),
        });
        if (carried.ok) return remember(renewed);
        // 404: Clarion no longer has the old one; 403: it is not ours. Store the new one.
        if (carried.status !== 404 && carried.status !== 403) {
          throw new Error('could not renew the subscription: ' + carried.status);
        }
      }
      const saved = await fetch(API + '/subscriptions', {
        method: 'POST',
        credentials: 'omit',
        headers: json,
        body: JSON.stringify(renewed.toJSON()),
      });
      if (!saved.ok) throw new Error('could not store the renewed subscription: ' + saved.status);
      return remember(renewed);
    })(),
  );
});
