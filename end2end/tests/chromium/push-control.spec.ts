// The push control's states and flows in Chromium, with the fake PushManager.
import { expect, test, type BrowserContext, type Page } from '@playwright/test';
import { PushPage } from '../pages/push-page';
import { installFakePush, type FakePushOptions } from '../support/fake-push';
import { listedEndpoints, mintSubscription, pushURL, receivedMessages, vapidPublicKey } from '../support/servers';

/**
 * A page subscribed through the fake PushManager. By default its subscription is minted
 * by the push service (which can decrypt for it); `options` can ask for a crypto.subtle
 * one instead (`endpointBase`) or a failing `unsubscribe()`.
 */
async function subscribedPage(context: BrowserContext, page: Page, options: FakePushOptions = {}) {
  const subscription = options.endpointBase ? undefined : await mintSubscription(await vapidPublicKey());
  await installFakePush(context, { subscription, ...options });
  const push = new PushPage(page);
  await push.goto();
  await push.enable();
  const { endpoint } = await push.subscription();
  return { push, endpoint };
}

test.describe('push control (Chromium, fake PushManager)', () => {
  test('enable subscribes, shows the JSON, and the server lists it', async ({ context, page }) => {
    const subscription = await mintSubscription(await vapidPublicKey());
    await installFakePush(context, { subscription });
    const push = new PushPage(page);
    await push.goto();
    await push.expectState('ready');
    await expect(push.sendTestButton).toBeDisabled();
    await push.screenshot('ready');
    await push.enable();
    await expect(push.status).toContainText('Notifications are on');
    const shown = await push.subscription();
    expect(shown.endpoint).toBe(subscription.endpoint);
    expect(shown.keys.p256dh).toBe(subscription.keys.p256dh);
    expect(await listedEndpoints()).toContain(subscription.endpoint);
    await push.screenshot('subscribed');
  });

  test('send test notification reaches the push service, which decrypts it', async ({ context, page }) => {
    const { push, endpoint } = await subscribedPage(context, page);
    await push.sendTest();
    const messages = await receivedMessages(endpoint);
    expect(messages).toHaveLength(1);
    expect(JSON.parse(messages[0].payload!).notification.title).toBe('Clarion test notification');
    expect(messages[0].claims.aud).toBe(pushURL);
  });

  test('a reload keeps the subscribed state', async ({ context, page }) => {
    const { push } = await subscribedPage(context, page);
    await page.reload();
    await expect(push.control).not.toHaveAttribute('data-state', 'checking');
    await push.expectState('subscribed');
  });

  test('disable unsubscribes and the server forgets it', async ({ context, page }) => {
    const { push, endpoint } = await subscribedPage(context, page, { endpointBase: pushURL });
    expect(await listedEndpoints()).toContain(endpoint);
    await push.disable();
    await expect(push.status).toContainText('The server has forgotten this browser');
    await expect(push.subscriptionJson).toHaveCount(0);
    expect(await listedEndpoints()).not.toContain(endpoint);
  });

  test('disable says so when the browser cannot unsubscribe, and the server still forgets', async ({ context, page }) => {
    const { push, endpoint } = await subscribedPage(context, page, { endpointBase: pushURL, unsubscribeFails: true });
    await push.disableButton.click();
    await expect(push.notice).toContainText('the browser could not unsubscribe');
    await expect(push.notice).toContainText('unsubscribe refused');
    expect(await listedEndpoints()).not.toContain(endpoint);
  });

  test('disable says so when the server cannot delete the subscription', async ({ context, page }) => {
    const { push, endpoint } = await subscribedPage(context, page, { endpointBase: pushURL });
    await page.route('**/api/fn/delete_subscription', (route) =>
      route.fulfill({ status: 500, contentType: 'text/plain', body: 'database unavailable' }),
    );
    await push.disableButton.click();
    await expect(push.notice).toContainText('the server could not delete the subscription');
    await push.expectState('ready');
    expect(await listedEndpoints()).toContain(endpoint);
  });

  test('a test push to a subscription the push service forgot resets the page', async ({ context, page }) => {
    const { push, endpoint } = await subscribedPage(context, page, { endpointBase: pushURL });
    await push.sendTestButton.click();
    await expect(push.notice).toContainText('no longer knows this subscription');
    await push.expectState('ready');
    expect(await listedEndpoints()).not.toContain(endpoint);
  });

  test('denied permission shows the blocked state, its help, and stores nothing', async ({ context, page }) => {
    await installFakePush(context, { endpointBase: pushURL, permission: 'denied' });
    const before = await listedEndpoints();
    const push = new PushPage(page);
    await push.goto();
    await push.expectState('blocked');
    await expect(page.getByTestId('blocked-help')).toContainText('set Notifications to Allow');
    await expect(push.enableButton).toBeDisabled();
    await push.screenshot('blocked');
    expect(await listedEndpoints()).toEqual(before);
  });

  test('a browser without PushManager shows the unsupported state', async ({ context, page }) => {
    await installFakePush(context, { unsupported: true });
    const push = new PushPage(page);
    await push.goto();
    await push.expectState('unsupported');
    await expect(page.getByTestId('unsupported-help')).toContainText('Add to Home Screen');
    await expect(push.enableButton).toBeDisabled();
    await expect(push.sendTestButton).toBeDisabled();
  });

  test('the controls work from the keyboard', async ({ context, page }) => {
    const subscription = await mintSubscription(await vapidPublicKey());
    await installFakePush(context, { subscription });
    const push = new PushPage(page);
    await push.goto();
    await push.enableButton.focus();
    await page.keyboard.press('Enter');
    await push.expectState('subscribed');
    // The toggle is disabled while busy and gives up focus; tab on from it.
    await push.disableButton.focus();
    await page.keyboard.press('Tab');
    await expect(push.sendTestButton).toBeFocused();
    await page.keyboard.press('Space');
    await expect(push.notice).toContainText('Test notification sent');
    expect(await receivedMessages(subscription.endpoint)).toHaveLength(1);
  });

  test('the server-rendered page is meaningful before hydration', async ({ browser }) => {
    const context = await browser.newContext({ javaScriptEnabled: false });
    const page = await context.newPage();
    await page.goto('/');
    await expect(page.getByRole('heading', { name: 'Clarion' })).toBeVisible();
    await expect(page.getByTestId('push-control')).toHaveAttribute('data-state', 'checking');
    await expect(page.getByRole('button', { name: 'Enable notifications' })).toBeDisabled();
    await context.close();
  });
});
