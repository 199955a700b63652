/*
 * Clarion's service worker, served at /sw.js with scope /.
 *
 * - push: shows the notification described by the payload. The payload is Clarion's flat
 *   JSON ({title, body, url, icon, badge, image, tag}) or the Declarative Web Push shape
 *   ({web_push: 8030, notification: {title, body, navigate, ...}}); plain text falls back
 *   to a text notification, and an empty push still shows a generic one (browsers
 *   penalise a push that shows nothing).
 * - notificationclick: closes the notification, then focuses a window already at the
 *   target URL or opens one.
 * - pushsubscriptionchange: subscribes again with the server's current VAPID key, stores
 *   the new subscription and deletes the old one. It uses only what a worker has: no
 *   window, no localStorage.
 */
'use strict';

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
  // Declarative Web Push nests the notification; Clarion's flat payload does not.
  const declarative = parsed.web_push === 8030 && parsed.notification && typeof parsed.notification === 'object';
  const n = declarative ? parsed.notification : parsed;
  const url = safeUrl(declarative ? n.navigate : n.url, origin) || origin + '/';
  const options = { body: text(n.body) || '', data: { url } };
  for (const key of ['icon', 'badge', 'image']) {
    const link = safeUrl(n[key], origin);
    if (link) options[key] = link;
  }
  if (text(n.tag)) options.tag = n.tag;
  if (typeof n.renotify === 'boolean' && options.tag) options.renotify = n.renotify;
  if (typeof n.requireInteraction === 'boolean') options.requireInteraction = n.requireInteraction;
  if (typeof n.silent === 'boolean') options.silent = n.silent;
  if (Array.isArray(n.actions)) {
    options.actions = n.actions
      .filter((a) => a && text(a.title || a.label))
      .slice(0, 2)
      .map((a, i) => ({ action: text(a.action) || 'action-' + i, title: a.title || a.label }));
    options.data.actions = n.actions.slice(0, 2).map((a) => safeUrl(a && (a.navigate || a.url), origin));
  }
  const title = text(n.title) || GENERIC_TITLE;
  return { title, options, appBadge: declarative ? parsed.app_badge : undefined };
}

self.addEventListener('install', () => {
  self.skipWaiting();
});

self.addEventListener('activate', (event) => {
  event.waitUntil(self.clients.claim());
});

self.addEventListener('push', (event) => {
  const origin = self.location.origin;
  const { title, options, appBadge } = notificationFromPush(event.data, origin);
  const work = [self.registration.showNotification(title, options)];
  if (typeof appBadge === 'number' && self.navigator && typeof self.navigator.setAppBadge === 'function') {
    work.push(self.navigator.setAppBadge(appBadge).catch(() => undefined));
  }
  event.waitUntil(Promise.all(work));
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const data = event.notification.data || {};
  let target = data.url || self.location.origin + '/';
  if (event.action && Array.isArray(data.actions)) {
    const index = Number(String(event.action).replace('action-', ''));
    if (data.actions[index]) target = data.actions[index];
  }
  event.waitUntil(
    (async () => {
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
    })(),
  );
});

self.addEventListener('pushsubscriptionchange', (event) => {
  event.waitUntil(
    (async () => {
      const json = { 'Content-Type': 'application/json' };
      const response = await fetch('/api/v1/vapid-public-key');
      if (!response.ok) throw new Error('could not fetch the VAPID key: ' + response.status);
      const { public_key: publicKey } = await response.json();
      const renewed =
        event.newSubscription ||
        (await self.registration.pushManager.subscribe({
          userVisibleOnly: true,
          applicationServerKey: base64UrlToBytes(publicKey),
        }));
      const saved = await fetch('/api/v1/subscriptions', {
        method: 'POST',
        headers: json,
        body: JSON.stringify(renewed.toJSON()),
      });
      if (!saved.ok) throw new Error('could not store the renewed subscription: ' + saved.status);
      const old = event.oldSubscription;
      if (old && old.endpoint && old.endpoint !== renewed.endpoint) {
        await fetch('/api/v1/subscriptions', {
          method: 'DELETE',
          headers: json,
          body: JSON.stringify({ endpoint: old.endpoint }),
        });
      }
    })(),
  );
});
