// The whole loop in Firefox ESR: a real pushManager.subscribe() through
// `clarion push-service` (Mozilla's WebSocket protocol), real encryption by the server,
// real decryption by Firefox, and the notification shown by sw.js.
import { expect, test, type Browser } from '@playwright/test';
import { PushPage } from '../pages/push-page';
import { installFakePush } from '../support/fake-push';
import {
  broadcast,
  defineTopic,
  deleteTopic,
  listedEndpoints,
  pushURL,
  restartServer,
  rotateKey,
  storedTopics,
  vapidPublicKey,
  waitForBrowserConnection,
} from '../support/servers';

async function subscribedPage(browser: Browser) {
  const context = await browser.newContext();
  const push = new PushPage(await context.newPage());
  await push.goto();
  await push.expectState('ready');
  await push.enable();
  return { context, push };
}

/** Reloads the page after the server's key changed: it subscribes again under the new key,
 * and Clarion lists the new endpoint instead of the old one. Answers the new endpoint. */
async function expectMovedToNewKey(push: PushPage, oldEndpoint: string): Promise<string> {
  await push.page.reload();
  await push.expectState('subscribed');
  await expect(push.notice).toContainText("The server's key changed");
  const { endpoint: newEndpoint } = await push.subscription();
  expect(newEndpoint).not.toBe(oldEndpoint);
  const listed = await listedEndpoints();
  expect(listed).toContain(newEndpoint);
  expect(listed).not.toContain(oldEndpoint);
  return newEndpoint;
}

test.describe.configure({ mode: 'serial' });

test.describe('real push (Firefox ESR + clarion push-service)', () => {
  test.beforeAll(async ({ browser }) => {
    // Firefox opens its push WebSocket in an idle task some time after start-up, and a
    // subscribe() made before its hello is lost: launch it, idle on a page, and wait.
    const context = await browser.newContext();
    await (await context.newPage()).goto('/');
    await waitForBrowserConnection();
    await context.close();
  });

  test('enable makes a real subscription that the server lists', async ({ browser }) => {
    const { context, push } = await subscribedPage(browser);
    const { endpoint } = await push.subscription();
    expect(endpoint.startsWith(`${pushURL}/push/`)).toBe(true);
    expect(await listedEndpoints()).toContain(endpoint);
    await context.close();
  });

  test('send test notification is decrypted by Firefox and shown by the service worker', async ({ browser }) => {
    const { context, push } = await subscribedPage(browser);
    await push.sendTest();
    const shown = await push.waitForNotification('Clarion test notification');
    expect(shown.body).toBe('Push works: this came from your Clarion server.');
    await context.close();
  });

  test('a broadcast through the REST API reaches two browser contexts', async ({ browser }) => {
    const first = await subscribedPage(browser);
    const second = await subscribedPage(browser);
    const status = await broadcast({ title: 'Broadcast to all', body: 'Both of you', url: '/' });
    expect(status.failed).toBe(0);
    expect(status.delivered).toBeGreaterThanOrEqual(2);
    for (const { push } of [first, second]) {
      const shown = await push.waitForNotification('Broadcast to all');
      expect(shown.body).toBe('Both of you');
    }
    await first.context.close();
    await second.context.close();
  });

  test('the subscription survives a reload and a server restart', async ({ browser }) => {
    const { context, push } = await subscribedPage(browser);
    const { endpoint } = await push.subscription();
    await push.page.reload();
    await push.expectState('subscribed');
    await restartServer();
    await push.page.reload();
    await push.expectState('subscribed');
    expect((await push.subscription()).endpoint).toBe(endpoint);
    await push.sendTest();
    await push.waitForNotification('Clarion test notification');
    await context.close();
  });

  test('disable removes the subscription from the server, and broadcasts skip it', async ({ browser }) => {
    const { context, push } = await subscribedPage(browser);
    const { endpoint } = await push.subscription();
    await push.disable();
    expect(await listedEndpoints()).not.toContain(endpoint);
    const total = (await listedEndpoints()).length;
    const status = await broadcast({ title: 'After disable', body: '' });
    expect(status.total).toBe(total);
    await context.close();
  });

  test('denied permission shows the blocked state and stores nothing', async ({ browser }) => {
    const context = await browser.newContext();
    await installFakePush(context, { permission: 'denied' });
    const before = await listedEndpoints();
    const push = new PushPage(await context.newPage());
    await push.goto();
    await push.expectState('blocked');
    await expect(push.page.getByTestId('blocked-help')).toBeVisible();
    expect(await listedEndpoints()).toEqual(before);
    await context.close();
  });

  test('after a key rotation the old subscription still receives, and the next visit moves it to the new key with its topics', async ({ browser }) => {
    await defineTopic('rotation-news', 'Rotation news');
    const { context, push } = await subscribedPage(browser);
    await push.chooseTopic('rotation-news', true);
    const { endpoint: oldEndpoint } = await push.subscription();
    const oldKey = await vapidPublicKey();
    const rotated = await rotateKey();
    expect(rotated.public_key).not.toBe(oldKey);
    // Not moved yet: the push is signed with the key it subscribed with, or the push
    // service would refuse it; Firefox decrypts it and sw.js shows it.
    const before = await broadcast({ title: 'Sent after the rotation', body: 'to the old key', topics: ['rotation-news'] });
    expect(before.delivered).toBe(1);
    await push.waitForNotification('Sent after the rotation');
    // The next visit moves the browser to the new key; its topics go with it.
    const newEndpoint = await expectMovedToNewKey(push, oldEndpoint);
    expect(await storedTopics(newEndpoint)).toEqual(['rotation-news']);
    const after = await broadcast({ title: 'Sent to the new key', body: 'moved', topics: ['rotation-news'] });
    expect(after.delivered).toBe(1);
    await push.waitForNotification('Sent to the new key');
    await deleteTopic('rotation-news');
    await context.close();
  });

  test('after the server key changes, the page re-subscribes with the new key and pushes arrive', async ({ browser }) => {
    const { context, push } = await subscribedPage(browser);
    const { endpoint: oldEndpoint } = await push.subscription();
    // A fresh P-256 scalar, base64url: the server restarts with it as CLARION_VAPID_PRIVATE_KEY.
    const newKey = await push.page.evaluate(async () => {
      const pair = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign']);
      const jwk = await crypto.subtle.exportKey('jwk', pair.privateKey);
      return jwk.d as string;
    });
    await restartServer(newKey);
    await expectMovedToNewKey(push, oldEndpoint);
    await push.sendTest();
    await push.waitForNotification('Clarion test notification');
    await context.close();
  });

  test.afterAll(async () => {
    // Leave the server on its own key (the data dir's), as the other tests expect.
    await restartServer();
  });
});
