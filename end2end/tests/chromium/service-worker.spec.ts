// sw.js in real Chromium: pushes delivered through the DevTools protocol
// (ServiceWorker.deliverPushMessage), which needs no push service.
//
// What is observed is what the worker asks the browser to show: each test wraps the
// worker's `registration.showNotification` with a recorder that passes every call through
// and notes the title, the options and whether the browser accepted it. Headless
// Chromium accepts every one, but about one run in 25 it then leaves the notification
// out of `getNotifications()` (measured with `--repeat-each`: the push event ran and
// `showNotification` resolved, yet the list stayed empty for 20 s), so reading that list
// back would make these tests flaky. Firefox's real-push tests read it back.
import { expect, test, request as playwrightRequest, type BrowserContext, type Page, type Worker } from '@playwright/test';
import { PushPage } from '../pages/push-page';
import { appURL, broadcast, defineTopic, deleteTopic, identityToken, listedEndpoints, mintSubscription, notificationStatus, storedTopics, vapidPublicKey } from '../support/servers';

interface Shown {
  title: string;
  options: { body?: string; icon?: string; image?: string; badge?: string; tag?: string; requireInteraction?: boolean; actions?: Array<{ action: string; title: string }>; data?: { url?: string; id?: number; actions?: Record<string, string> } };
  accepted: boolean;
}

/** The page's active service worker, with the showNotification recorder installed. */
async function recordingWorker(context: BrowserContext): Promise<Worker> {
  const worker = context.serviceWorkers().find((w) => w.url() === `${appURL}/sw.js`) ?? (await context.waitForEvent('serviceworker'));
  await worker.evaluate(() => {
    const scope = self as any;
    const registration = scope.registration;
    const original = registration.showNotification.bind(registration);
    scope.__shown = [];
    registration.showNotification = (title: string, options: unknown) => {
      const entry = { title, options: JSON.parse(JSON.stringify(options ?? {})), accepted: false };
      scope.__shown.push(entry);
      return original(title, options).then(() => {
        entry.accepted = true;
      });
    };
  });
  return worker;
}

/**
 * Delivers `data` to the page's service worker through the DevTools protocol and waits
 * until the worker's showNotification call has been accepted. DevTools can report a
 * registration before its worker version is activated, and a push delivered then is
 * dropped; so this waits for an activated version first.
 */
async function deliverAndCapture(context: BrowserContext, page: Page, data: string): Promise<Shown> {
  const worker = await recordingWorker(context);
  const cdp = await context.newCDPSession(page);
  const registrations = new Set<string>();
  const activated = new Set<string>();
  cdp.on('ServiceWorker.workerRegistrationUpdated', ({ registrations: updated }) => {
    for (const r of updated) {
      if (r.scopeURL === `${appURL}/` && !r.isDeleted) registrations.add(r.registrationId);
      else registrations.delete(r.registrationId);
    }
  });
  cdp.on('ServiceWorker.workerVersionUpdated', ({ versions }) => {
    for (const v of versions) {
      if (v.status === 'activated') activated.add(v.registrationId);
    }
  });
  await cdp.send('ServiceWorker.enable');
  let registrationId = '';
  await expect
    .poll(() => {
      registrationId = [...registrations].find((id) => activated.has(id)) ?? '';
      return registrationId;
    })
    .not.toBe('');
  await cdp.send('ServiceWorker.deliverPushMessage', { origin: appURL, registrationId, data });
  let shown: Shown[] = [];
  await expect
    .poll(async () => {
      shown = await worker.evaluate(() => (self as any).__shown);
      return shown.filter((s) => s.accepted).length;
    })
    .toBe(1);
  expect(shown).toHaveLength(1);
  return shown[0];
}

test.describe('service worker (Chromium, DevTools push)', () => {
  test.beforeEach(async ({ context, page }) => {
    await context.grantPermissions(['notifications']);
    await new PushPage(page).goto();
    await page.evaluate(async () => {
      await navigator.serviceWorker.ready;
    });
  });

  test('a flat JSON payload gives the title, body, icon and click URL', async ({ context, page }) => {
    const payload = { title: 'Release 2.0', body: 'Now with more push', icon: '/icon.svg', url: '/changelog', notification_id: 9 };
    const shown = await deliverAndCapture(context, page, JSON.stringify(payload));
    expect(shown.title).toBe('Release 2.0');
    expect(shown.options.body).toBe('Now with more push');
    expect(shown.options.icon).toBe(`${appURL}/icon.svg`);
    expect(shown.options.data?.url).toBe(`${appURL}/changelog`);
    expect(shown.options.data?.id).toBe(9);
  });

  test('plain text falls back to a text notification', async ({ context, page }) => {
    const shown = await deliverAndCapture(context, page, 'plain words, not JSON');
    expect(shown.title).toBe('Clarion');
    expect(shown.options.body).toBe('plain words, not JSON');
  });

  test('an empty push shows a generic notification', async ({ context, page }) => {
    const shown = await deliverAndCapture(context, page, '');
    expect(shown.title).toBe('Clarion');
    expect(shown.options.body).toBe('You have a new notification.');
  });

  test('the Declarative Web Push payload Clarion sends is shown in full', async ({ context, page }) => {
    const payload = {
      web_push: 8030,
      notification: {
        title: 'Declarative', body: 'Safari-style payload', navigate: '/d', image: '/icon-512.png', badge: '/badge-96.png',
        tag: 'news', requireInteraction: true,
        actions: [{ action: 'action-0', title: 'Read', navigate: '/read' }],
        data: { notification_id: 12 },
      },
      app_badge: 4,
    };
    const shown = await deliverAndCapture(context, page, JSON.stringify(payload));
    expect(shown.title).toBe('Declarative');
    expect(shown.options.body).toBe('Safari-style payload');
    expect(shown.options.image).toBe(`${appURL}/icon-512.png`);
    expect(shown.options.badge).toBe(`${appURL}/badge-96.png`);
    expect(shown.options.tag).toBe('news');
    expect(shown.options.requireInteraction).toBe(true);
    expect(shown.options.actions).toEqual([{ action: 'action-0', title: 'Read' }]);
    expect(shown.options.data).toEqual({ url: `${appURL}/d`, id: 12, actions: { 'action-0': `${appURL}/read` } });
  });

  test('a click is reported to the server from the worker, under its own CSP, with its proof', async ({ context }) => {
    // A stored subscription (minted by the push service) gets the broadcast; the worker is
    // handed it as its own, so its endpoint and auth prove the click.
    const subscription = await mintSubscription(await vapidPublicKey());
    const api = await playwrightRequest.newContext();
    expect((await api.post(`${appURL}/api/v1/subscriptions`, { data: subscription })).status()).toBe(201);
    const { id } = await broadcast({ title: 'Click target', body: '' });
    const worker = await recordingWorker(context);
    // A real click needs a person; the worker's handler gets the same event shape instead.
    const outcome = await worker.evaluate(async ({ id, url, subscription }) => {
      (self as any).registration.pushManager.getSubscription = async () => ({ toJSON: () => subscription });
      const event = new Event('notificationclick') as any;
      let closed = false;
      const pending: Promise<unknown>[] = [];
      event.notification = { data: { url, id }, close: () => { closed = true; } };
      event.action = '';
      event.waitUntil = (p: Promise<unknown>) => pending.push(p);
      self.dispatchEvent(event);
      const settled = await Promise.allSettled(pending);
      return { closed, settled: settled.map((s) => s.status) };
    }, { id, url: `${appURL}/`, subscription });
    expect(outcome.closed).toBe(true);
    await expect.poll(async () => (await notificationStatus(id)).clicks).toBe(1);
    const deleted = await api.delete(`${appURL}/api/v1/subscriptions`, { data: { endpoint: subscription.endpoint, auth: subscription.keys.auth } });
    expect(deleted.status()).toBe(204);
  });

  test('a renewed subscription (pushsubscriptionchange) keeps its user and topics, and the old one goes', async ({ context }) => {
    const topic = `renewal-${Date.now()}`;
    await defineTopic(topic, 'Renewal');
    const key = await vapidPublicKey();
    const old = await mintSubscription(key);
    const renewed = await mintSubscription(key);
    const api = await playwrightRequest.newContext();
    const stored = await api.post(`${appURL}/api/v1/subscriptions`, { data: { ...old, topics: [topic], user_token: identityToken('renewal-user') } });
    expect(stored.status()).toBe(201);
    const worker = await recordingWorker(context);
    // The browser decides when a subscription changes; the worker's handler gets the same
    // event, and its pushManager hands out the subscription the push service minted.
    const settled = await worker.evaluate(async ({ old, renewed }) => {
      const manager = (self as any).registration.pushManager;
      manager.subscribe = async () => ({ endpoint: renewed.endpoint, toJSON: () => renewed });
      const event = new Event('pushsubscriptionchange') as any;
      event.oldSubscription = { endpoint: old.endpoint, toJSON: () => old };
      event.newSubscription = null;
      const pending: Promise<unknown>[] = [];
      event.waitUntil = (p: Promise<unknown>) => pending.push(p);
      self.dispatchEvent(event);
      return (await Promise.allSettled(pending)).map((s) => (s.status === 'rejected' ? String(s.reason) : s.status));
    }, { old, renewed });
    expect(settled).toEqual(['fulfilled']);
    expect(await listedEndpoints()).not.toContain(old.endpoint);
    expect(await storedTopics(renewed.endpoint)).toEqual([topic]);
    const { id } = await broadcast({ title: 'Renewed', body: '', users: ['renewal-user'] });
    await expect.poll(async () => (await notificationStatus(id)).delivered).toBe(1);
    expect((await api.delete(`${appURL}/api/v1/subscriptions`, { data: { endpoint: renewed.endpoint, auth: renewed.keys.auth } })).status()).toBe(204);
    await deleteTopic(topic);
  });
});
