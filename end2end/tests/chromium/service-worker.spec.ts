// sw.js in real Chromium: pushes delivered through the DevTools protocol
// (ServiceWorker.deliverPushMessage), which needs no push service, and the notifications
// read back with registration.getNotifications().
import { expect, test, type BrowserContext, type Page } from '@playwright/test';
import { PushPage, type ShownNotification } from '../pages/push-page';
import { appURL } from '../support/servers';

/**
 * Delivers `data` to the page's service worker through the DevTools protocol and waits
 * for the notification titled `title`. DevTools can report a registration before its
 * worker version is activated, and a push delivered then is dropped; so this waits for
 * an activated version first.
 */
async function deliverAndWait(context: BrowserContext, page: Page, data: string, title: string): Promise<ShownNotification> {
  const cdp = await context.newCDPSession(page);
  const registrations = new Map<string, string>();
  const activated = new Set<string>();
  cdp.on('ServiceWorker.workerRegistrationUpdated', ({ registrations: updated }) => {
    for (const r of updated) {
      if (r.scopeURL === `${appURL}/` && !r.isDeleted) registrations.set(r.registrationId, r.scopeURL);
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
      registrationId = [...registrations.keys()].find((id) => activated.has(id)) ?? '';
      return registrationId;
    })
    .not.toBe('');
  await cdp.send('ServiceWorker.deliverPushMessage', { origin: appURL, registrationId, data });
  return new PushPage(page).waitForNotification(title);
}

test.describe('service worker (Chromium, DevTools push)', () => {
  test.beforeEach(async ({ context, page }) => {
    await context.grantPermissions(['notifications']);
    await page.goto('/');
    await page.evaluate(async () => {
      await navigator.serviceWorker.ready;
    });
  });

  test('a JSON payload gives the title, body, icon and click URL', async ({ context, page }) => {
    const payload = { title: 'Release 2.0', body: 'Now with more push', icon: '/icon.svg', url: '/changelog' };
    const shown = await deliverAndWait(context, page, JSON.stringify(payload), 'Release 2.0');
    expect(shown.body).toBe('Now with more push');
    expect(shown.icon).toBe(`${appURL}/icon.svg`);
    expect(shown.data?.url).toBe(`${appURL}/changelog`);
  });

  test('plain text falls back to a text notification', async ({ context, page }) => {
    const shown = await deliverAndWait(context, page, 'plain words, not JSON', 'Clarion');
    expect(shown.body).toBe('plain words, not JSON');
  });

  test('an empty push shows a generic notification', async ({ context, page }) => {
    const shown = await deliverAndWait(context, page, '', 'Clarion');
    expect(shown.body).toBe('You have a new notification.');
  });

  test('the Declarative Web Push shape is shown too', async ({ context, page }) => {
    const payload = { web_push: 8030, notification: { title: 'Declarative', body: 'Safari-style payload', navigate: '/d' } };
    const shown = await deliverAndWait(context, page, JSON.stringify(payload), 'Declarative');
    expect(shown.body).toBe('Safari-style payload');
    expect(shown.data?.url).toBe(`${appURL}/d`);
  });
});
