// The SDK on a customer's site (demo-site/, on its own origin) in Firefox ESR, with real
// subscriptions through `clarion push-service`: connect, subscribe with an identity
// token, a REST send shown by the site's own worker, unsubscribe; a site Clarion
// does not list, which cannot subscribe; and a second site of the same Clarion on that
// origin, which can, and receives its own sends. (Playwright cannot reach a service worker in
// Firefox, so the click report from the site's worker is dispatched in Chromium:
// tests/chromium/sdk.spec.ts.)
import { expect, test } from '@playwright/test';
import { DemoSite } from '../pages/demo-site';
import {
  broadcast,
  broadcastToSite,
  createSite,
  demoURL,
  identityToken,
  listedEndpoints,
  removeSite,
  siteEndpoints,
  strangerURL,
  vapidPublicKey,
  waitForBrowserConnection,
} from '../support/servers';

test.describe.configure({ mode: 'serial' });

test.describe('the SDK on another site (Firefox ESR + clarion push-service)', () => {
  test.beforeAll(async ({ browser }) => {
    const context = await browser.newContext();
    await (await context.newPage()).goto('/');
    await waitForBrowserConnection();
    await context.close();
  });

  test('connect, subscribe as a signed-in user, a send shown by the site\'s worker, unsubscribe', async ({ page }) => {
    const site = new DemoSite(page);
    await site.goto();
    // From navigation to `connect` resolved: sdk.js, its glue and wasm, the worker's
    // registration and the reconciliation with Clarion, on loopback.
    const firstLoad = await page.evaluate(() => performance.now());
    const transferred = await page.evaluate(() =>
      performance
        .getEntriesByType('resource')
        .filter((r) => /\/sdk(\.js|\/)/.test(r.name))
        .map((r) => ({ name: r.name.replace(/^.*\//, ''), encoded: (r as PerformanceResourceTiming).encodedBodySize, decoded: (r as PerformanceResourceTiming).decodedBodySize })),
    );
    console.log(`SDK first load in Firefox: ${Math.round(firstLoad)} ms; files ${JSON.stringify(transferred)}`);
    expect(transferred.map((f) => f.name.split('.').pop()).sort()).toEqual(['js', 'js', 'wasm']);
    expect(await site.state()).toBe('ready');
    await site.expectCardState('ready');

    const user = `shopper-${Date.now().toString(36)}`;
    const subscribed = await site.subscribe({ userToken: identityToken(user) });
    expect(subscribed.ok, JSON.stringify(subscribed)).toBe(true);
    const endpoint = subscribed.subscription.endpoint;
    expect(endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/push\//);
    expect(await site.state()).toBe('subscribed');
    await site.expectCardState('subscribed');
    expect(await listedEndpoints()).toContain(endpoint);

    const status = await broadcast({ title: 'Your order shipped', body: 'It arrives Tuesday', url: '/orders/7', users: [user] });
    expect(status.total).toBe(1);
    expect(status.delivered).toBe(1);
    const shown = await site.waitForNotification('Your order shipped');
    expect(shown.body).toBe('It arrives Tuesday');
    // Links open the site's pages, not Clarion's.
    expect(shown.data.url).toBe(`${demoURL}/orders/7`);
    expect(shown.data.id).toBe(status.id);

    await page.evaluate(() => (window as any).clarion.unsubscribe());
    expect(await site.state()).toBe('ready');
    await site.expectCardState('ready');
    expect(await listedEndpoints()).not.toContain(endpoint);
  });

  test('a site Clarion does not list cannot subscribe, and subscribe() says why', async ({ page }) => {
    const site = new DemoSite(page);
    await site.goto(strangerURL);
    const refused = await site.subscribe();
    expect(refused.ok).toBe(false);
    expect(refused.name).toBe('ClarionError');
    expect(refused.message).toContain('CLARION_CORS_ORIGINS');
    expect(refused.message).toContain(strangerURL);
    expect(await site.state()).toBe('ready');
  });

  test('a second site on its own origin subscribes through the SDK and receives that site\'s send, signed with its key', async ({ page }) => {
    // The stranger's origin is no origin of default's; it becomes the site `shop`'s.
    const shop = await createSite('shop', [strangerURL]);
    expect(shop.vapid_public_key).not.toBe(await vapidPublicKey());
    try {
      const site = new DemoSite(page);
      await site.goto(strangerURL, '/shop.html');
      const subscribed = await site.subscribe();
      expect(subscribed.ok, JSON.stringify(subscribed)).toBe(true);
      const endpoint = subscribed.subscription.endpoint;
      expect(await siteEndpoints('shop')).toContain(endpoint);
      expect(await listedEndpoints()).not.toContain(endpoint);

      // Sent to shop: Firefox subscribed with shop's key, and the push service refuses a
      // push signed with any other.
      const status = await broadcastToSite('shop', { title: 'Shop news', body: 'Only for the shop' });
      expect(status.total).toBe(1);
      expect(status.delivered).toBe(1);
      const shown = await site.waitForNotification('Shop news');
      expect(shown.body).toBe('Only for the shop');
      expect(shown.data.url).toBe(`${strangerURL}/`);
    } finally {
      await removeSite('shop');
    }
  });
});
