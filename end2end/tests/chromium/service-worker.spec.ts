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
import { expect, test, type BrowserContext, type Page, type Worker } from '@playwright/test';
import { PushPage } from '../pages/push-page';
import { appURL, broadcast, notificationStatus } from '../support/servers';

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

  test('a click is reported to the server from the worker, under its own CSP', async ({ context }) => {
    // A broadcast to nobody still gets an id to count clicks on.
    const { id } = await broadcast({ title: 'Click target', body: '' });
    const worker = await recordingWorker(context);
    // A real click needs a person; the worker's handler gets the same event shape instead.
    const outcome = await worker.evaluate(async ({ id, url }) => {
      const event = new Event('notificationclick') as any;
      let closed = false;
      const pending: Promise<unknown>[] = [];
      event.notification = { data: { url, id }, close: () => { closed = true; } };
      event.action = '';
      event.waitUntil = (p: Promise<unknown>) => pending.push(p);
      self.dispatchEvent(event);
      const settled = await Promise.allSettled(pending);
      return { closed, settled: settled.map((s) => s.status) };
    }, { id, url: `${appURL}/` });
    expect(outcome.closed).toBe(true);
    await expect.poll(async () => (await notificationStatus(id)).clicks).toBe(1);
  });
});
