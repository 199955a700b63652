// The SDK on a customer's site (demo-site/, on its own origin) in Chromium, with the
// fake PushManager: the card `mount` renders, in every state and with the topic choices;
// styles that stay on their side of the shadow root; `onChange`; and a click reported
// by the site's own worker (which imports Clarion's sw.js) to Clarion's origin.
import { expect, test } from '@playwright/test';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { DemoSite } from '../pages/demo-site';
import { installFakePush } from '../support/fake-push';
import { appURL, broadcast, defineTopic, deleteTopic, demoURL, listedEndpoints, mintSubscription, notificationStatus, pushURL, storedTopics, vapidPublicKey } from '../support/servers';

const run = Date.now().toString(36);
const sales = `sales-${run}`;
const shipping = `shipping-${run}`;

test.describe.configure({ mode: 'serial' });

/** A file's lines, trimmed, without blank ones. */
const lines = (text: string) => text.split('\n').map((l) => l.trim()).filter(Boolean);

test('the demo site is the README\'s snippets, as pasted', () => {
  const read = (file: string) => readFileSync(path.resolve(__dirname, '../..', file), 'utf8');
  const section = read('../README.md').split('## Add Clarion to your site')[1];
  const [worker, snippet] = [...section.matchAll(/```(?:js|html)\n([\s\S]*?)```/g)].map((m) => lines(m[1]));
  expect(lines(read('demo-site/clarion-worker.js'))).toEqual(worker);
  // The page adds one line for the tests: `window.clarion = clarion;`.
  const page = lines(read('demo-site/index.html')).filter((l) => l !== 'window.clarion = clarion;').join('\n');
  expect(page).toContain(snippet.join('\n'));
  // The second site's page (tests/firefox/sdk.spec.ts) is docs/sites.md's snippet.
  const [siteSnippet] = [...read('../docs/sites.md').matchAll(/```html\n([\s\S]*?)```/g)].map((m) => lines(m[1]));
  const shop = lines(read('demo-site/shop.html')).filter((l) => l !== 'window.clarion = clarion;').join('\n');
  expect(shop).toContain(siteSnippet.join('\n'));
});

test.describe('the SDK\'s mounted card on another site (Chromium, fake PushManager)', () => {
  test.beforeAll(async () => {
    await defineTopic(sales, 'Sales');
    await defineTopic(shipping, 'Shipping news');
  });

  test.afterAll(async () => {
    await deleteTopic(sales);
    await deleteTopic(shipping);
  });

  test('a browser without push: the card says so, and state() is unsupported', async ({ context, page }) => {
    await installFakePush(context, { unsupported: true });
    const site = new DemoSite(page);
    await site.goto();
    expect(await site.state()).toBe('unsupported');
    await site.expectCardState('unsupported');
    await expect(site.card().getByTestId('unsupported-help')).toBeVisible();
    await expect(site.card().getByTestId('push-toggle')).toBeDisabled();
  });

  test('notifications blocked: the card says how to allow them, and subscribe() rejects', async ({ context, page }) => {
    await installFakePush(context, { permission: 'denied', endpointBase: pushURL });
    const site = new DemoSite(page);
    await site.goto();
    expect(await site.state()).toBe('blocked');
    await site.expectCardState('blocked');
    await expect(site.card().getByTestId('blocked-help')).toBeVisible();
    const refused = await site.subscribe();
    expect(refused).toMatchObject({ ok: false, name: 'ClarionError', code: 'blocked' });
  });

  test('ready, then Enable in the card subscribes; the topic choices save at once; Disable forgets', async ({ context, page }) => {
    await installFakePush(context, { endpointBase: pushURL });
    const site = new DemoSite(page);
    await site.goto();
    await page.evaluate(() => {
      (window as any).changes = [];
      (window as any).clarion.onChange((state: string) => (window as any).changes.push(state));
    });
    await site.expectCardState('ready');
    const toggle = site.card().getByTestId('push-toggle');
    await expect(toggle).toHaveText('Enable notifications');
    await toggle.click();
    await site.expectCardState('subscribed');
    expect(await site.state()).toBe('subscribed');
    const { endpoint } = await page.evaluate(() => (window as any).clarion.subscription());
    expect(await listedEndpoints()).toContain(endpoint);
    await expect(site.card().getByTestId('subscription-json')).toContainText(endpoint);

    const choice = (name: string) => site.card().locator(`input[data-testid="topic-choice"][value="${name}"]`);
    await expect(choice(sales)).not.toBeChecked();
    await choice(sales).check();
    await expect(site.card().getByTestId('push-notice')).toHaveText('Your topics are saved.');
    expect(await storedTopics(endpoint)).toEqual([sales]);
    // A script's setTopics shows in the card too.
    expect(await page.evaluate((t) => (window as any).clarion.setTopics(t), [shipping])).toEqual([shipping]);
    await expect(choice(shipping)).toBeChecked();
    await expect(choice(sales)).not.toBeChecked();
    expect(await storedTopics(endpoint)).toEqual([shipping]);

    await expect(toggle).toHaveText('Disable notifications');
    await toggle.click();
    await site.expectCardState('ready');
    await expect.poll(listedEndpoints).not.toContain(endpoint);
    await expect.poll(() => page.evaluate(() => (window as any).changes)).toEqual(['subscribed', 'ready']);
  });

  test('styles stay on their side: the site\'s rules do not reach the card, nor the card\'s the site', async ({ context, page }) => {
    await installFakePush(context, { endpointBase: pushURL });
    const site = new DemoSite(page);
    await site.goto();
    // The site hides `.push-card` and paints every button red; the card shows, unpainted.
    await expect(site.card()).toBeVisible();
    const cardButton = await site.card().getByTestId('push-toggle').evaluate((b) => getComputedStyle(b).backgroundColor);
    expect(cardButton).not.toBe('rgb(255, 0, 0)');
    const siteButton = page.locator('#site-button');
    expect(await siteButton.evaluate((b) => getComputedStyle(b).backgroundColor)).toBe('rgb(255, 0, 0)');
    expect(await siteButton.evaluate((b) => getComputedStyle(b).borderRadius)).not.toBe('8px');
    expect(await page.evaluate(() => getComputedStyle(document.body).fontFamily)).toContain('Georgia');
  });

  test('subscribe() with topics; the site\'s worker reports a click to Clarion\'s origin', async ({ context, page }) => {
    const subscription = await mintSubscription(await vapidPublicKey());
    await installFakePush(context, { subscription });
    const site = new DemoSite(page);
    await site.goto();
    const subscribed = await site.subscribe({ topics: [sales] });
    expect(subscribed.ok, JSON.stringify(subscribed)).toBe(true);
    expect(subscribed.subscription.endpoint).toBe(subscription.endpoint);
    expect(await storedTopics(subscription.endpoint)).toEqual([sales]);

    // The worker is the site's own file, which imports Clarion's sw.js.
    const worker = context.serviceWorkers().find((w) => w.url().startsWith(`${demoURL}/clarion-worker.js`)) ?? (await context.waitForEvent('serviceworker'));
    expect(new URL(worker.url()).searchParams.get('clarion')).toBe(appURL);
    const { id } = await broadcast({ title: 'Flash sale', body: '', topics: [sales] });
    // A real click needs a person; the worker's handler gets the same event shape instead.
    // (Focusing the window afterwards is refused without a real click; the report is not.)
    // Chromium's worker cannot see the page's fake subscription; it is handed the same one,
    // whose endpoint and auth prove the click.
    const closed = await worker.evaluate(async ({ id, url, subscription }) => {
      (self as any).registration.pushManager.getSubscription = async () => ({ toJSON: () => subscription });
      const event = new Event('notificationclick') as any;
      const pending: Promise<unknown>[] = [];
      let closed = false;
      event.notification = { data: { url, id }, close: () => { closed = true; } };
      event.action = '';
      event.waitUntil = (p: Promise<unknown>) => pending.push(p);
      self.dispatchEvent(event);
      await Promise.allSettled(pending);
      return closed;
    }, { id, url: `${demoURL}/`, subscription });
    expect(closed).toBe(true);
    await expect.poll(async () => (await notificationStatus(id)).clicks).toBe(1);
  });
});
