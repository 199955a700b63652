// The admin console in Chromium: sign-in, compose with preview and size meter, send with
// live progress, history, and subscribers. Subscriptions are minted by `clarion
// push-service`, which decrypts what reaches them, so the test checks the real payload.
import { expect, test, request as playwrightRequest } from '@playwright/test';
import { AdminPage } from '../pages/admin-page';
import { PushPage } from '../pages/push-page';
import { installFakePush } from '../support/fake-push';
import { appURL, listedEndpoints, mintSubscription, receivedMessages, vapidPublicKey, type Subscription } from '../support/servers';

const adminToken = process.env.CLARION_E2E_ADMIN_TOKEN!;

async function adminApi() {
  return playwrightRequest.newContext({ extraHTTPHeaders: { Authorization: `Bearer ${adminToken}` } });
}

/** Deletes every stored subscription, then stores `n` minted by the push service. */
async function freshSubscribers(n: number): Promise<Subscription[]> {
  const api = await adminApi();
  for (const endpoint of await listedEndpoints()) {
    expect((await api.delete(`${appURL}/api/v1/subscriptions`, { data: { endpoint } })).status()).toBe(204);
  }
  const key = await vapidPublicKey();
  const minted: Subscription[] = [];
  for (let i = 0; i < n; i++) {
    const subscription = await mintSubscription(key);
    expect((await api.post(`${appURL}/api/v1/subscriptions`, { data: subscription })).status()).toBe(201);
    minted.push(subscription);
  }
  return minted;
}

async function signedIn(page: import('@playwright/test').Page) {
  const admin = new AdminPage(page);
  await admin.goto();
  await admin.signIn(adminToken);
  await expect(admin.signOutButton).toBeVisible();
  return admin;
}

test.describe('admin console (Chromium)', () => {
  test('a wrong token is refused; the right one gives a strict HttpOnly session; sign-out ends it', async ({ context, page }) => {
    const admin = new AdminPage(page);
    await admin.goto();
    await admin.signIn('not-the-token');
    await expect(admin.signInError).toContainText('neither the admin token');
    expect(await context.cookies()).toHaveLength(0);
    await expect(admin.composer).toHaveCount(0);

    await admin.signIn(adminToken);
    await expect(admin.composer).toBeVisible();
    const [cookie] = await context.cookies();
    expect(cookie.name).toBe('clarion_admin');
    expect(cookie.httpOnly).toBe(true);
    expect(cookie.sameSite).toBe('Strict');
    expect(cookie.expires).toBeGreaterThan(Date.now() / 1000 + 11 * 3600);
    // The page's script cannot read it.
    expect(await page.evaluate(() => document.cookie)).not.toContain('clarion_admin');

    // The server renders the console straight away for a signed-in browser.
    await admin.reload();
    await expect(admin.composer).toBeVisible();

    await admin.signOutButton.click();
    await expect(admin.token).toBeVisible();
    await admin.reload();
    await expect(admin.token).toBeVisible();
    await expect(admin.composer).toHaveCount(0);
  });

  test('a read-only API key signs in to history and subscribers but not to Send; revoking it ends its session', async ({ context, page }) => {
    const api = await adminApi();
    const created = await api.post(`${appURL}/api/v1/api-keys`, { data: { name: 'e2e reader', scopes: ['read'] } });
    expect(created.status()).toBe(201);
    const { id, secret } = await created.json();
    const admin = new AdminPage(page);
    await admin.goto();
    await admin.signIn(secret);
    await expect(page.getByTestId('signed-in')).toContainText('e2e reader');
    await expect(page.getByTestId('composer-unavailable')).toBeVisible();
    await expect(admin.composer).toHaveCount(0);
    await expect(admin.history).toBeVisible();
    await expect(admin.subscribers).toBeVisible();
    await expect(page.getByTestId('audit')).toHaveCount(0);
    // The server refuses a send from this session whatever the page offers.
    const refused = await context.request.post(`${appURL}/api/fn/admin_send`, {
      data: { request: { title: 'not allowed', body: '' } },
      headers: { Origin: appURL },
    });
    expect(refused.status()).toBe(403);
    expect(await refused.text()).toContain('send');
    // Revoked: the session ends with the key.
    expect((await api.delete(`${appURL}/api/v1/api-keys/${id}`)).status()).toBe(204);
    await admin.reload();
    await expect(admin.token).toBeVisible();
  });

  test('the admin reads the audit log in the console', async ({ page }) => {
    const api = await adminApi();
    const created = await api.post(`${appURL}/api/v1/api-keys`, { data: { name: 'e2e audited', scopes: ['send'] } });
    expect(created.status()).toBe(201);
    await signedIn(page);
    const audit = page.getByTestId('audit');
    await expect(audit).toBeVisible();
    const entry = audit.locator('[data-testid="audit-entry"][data-action="api_key.create"]').filter({ hasText: 'e2e audited' });
    await expect(entry.first()).toBeVisible();
    const { id } = await created.json();
    expect((await api.delete(`${appURL}/api/v1/api-keys/${id}`)).status()).toBe(204);
  });

  test('compose, preview, send to everyone: progress reaches done with the right counts', async ({ page }) => {
    const subscribers = await freshSubscribers(3);
    const admin = await signedIn(page);

    await admin.field('title').fill('Spring sale');
    await admin.field('body').fill('Everything is 20% off until Sunday.');
    await admin.field('url').fill('/sale');
    await admin.field('tag').fill('sale');
    await admin.field('require-interaction').check();
    await admin.field('app-badge').fill('2');
    await admin.field('action1-label').fill('Shop now');
    await admin.field('action1-url').fill('/shop');
    await admin.field('action2-label').fill('Later');
    await admin.field('action2-url').fill('/later');
    await admin.field('urgency').selectOption('high');

    // The preview follows the form, and the meter measures the payload the server sends.
    await expect(page.getByTestId('preview-title')).toHaveText('Spring sale');
    await expect(page.getByTestId('preview-body')).toHaveText('Everything is 20% off until Sunday.');
    await expect(page.getByTestId('preview-action')).toHaveText(['Shop now', 'Later']);
    const payload = JSON.parse((await page.getByTestId('payload-json').textContent())!);
    expect(payload.web_push).toBe(8030);
    expect(payload.notification.requireInteraction).toBe(true);
    const size = await admin.size();
    expect(size).toBeGreaterThan(JSON.stringify(payload).length);
    await expect(page.getByTestId('size-meter')).toHaveAttribute('data-level', 'ok');
    await admin.screenshot('admin-composer');

    await expect(admin.sendButton).toHaveText('Send to everyone');
    await admin.sendButton.click();
    await expect(admin.progress).toHaveAttribute('data-status', 'done');
    await expect(page.getByTestId('progress-total')).toHaveText('3');
    await expect(page.getByTestId('progress-delivered')).toHaveText('3');
    await expect(page.getByTestId('progress-failed')).toHaveText('0');
    await expect(page.getByTestId('progress-summary')).toContainText('Done: 3 of 3 delivered');
    await admin.screenshot('admin-progress');
    const id = Number(await admin.progress.getAttribute('data-id'));

    // The push service decrypted exactly what the console composed.
    for (const subscription of subscribers) {
      const messages = await receivedMessages(subscription.endpoint);
      expect(messages).toHaveLength(1);
      const received = JSON.parse(messages[0].payload!);
      expect(received.notification.title).toBe('Spring sale');
      expect(received.notification.navigate).toBe('/sale');
      expect(received.notification.actions.map((a: { title: string }) => a.title)).toEqual(['Shop now', 'Later']);
      expect(received.notification.data.notification_id).toBe(id);
      expect(received.app_badge).toBe(2);
    }

    // History shows it, and opens to its payload.
    const item = admin.historyItem(id);
    await expect(item).toHaveAttribute('data-status', 'done');
    await expect(item.getByTestId('history-title')).toHaveText('Spring sale');
    await expect(item.getByTestId('history-counts')).toContainText('3 of 3 delivered · 0 failed · 0 clicks');
    await item.locator('summary').click();
    await expect(item.getByTestId('history-payload')).toContainText('"requireInteraction": true');
    await admin.screenshot('admin-history');
  });

  test('the size meter warns from 3 KB and Send is refused over the limit', async ({ page }) => {
    const admin = await signedIn(page);
    await admin.field('title').fill('Big');
    await admin.field('body').fill('é'.repeat(1600));
    await expect(page.getByTestId('size-meter')).toHaveAttribute('data-level', 'warn');
    await expect(page.getByTestId('size-warning')).toBeVisible();
    expect(await admin.size()).toBeGreaterThan(3000);
    await expect(admin.sendButton).toBeEnabled();

    await admin.field('body').fill('€'.repeat(1400));
    await expect(page.getByTestId('compose-problem')).toContainText('a push carries at most 3993');
    await expect(admin.sendButton).toBeDisabled();

    await admin.field('body').fill('fine');
    await admin.field('url').fill('javascript:alert(1)');
    await expect(page.getByTestId('compose-problem')).toContainText('url must be an http(s) URL');
    await expect(admin.sendButton).toBeDisabled();
  });

  test('send to one subscriber picked from the list, then delete a subscriber', async ({ page }) => {
    const [first, second] = await freshSubscribers(2);
    const admin = await signedIn(page);
    await expect(page.getByTestId('subscriber-count')).toHaveText('2');
    const rows = page.getByTestId('subscriber-row');
    await expect(rows).toHaveCount(2);
    await expect(rows.first().getByTestId('subscriber-host')).toHaveText(new URL(first.endpoint).host);

    await rows.nth(1).getByTestId('target-subscriber').click();
    await expect(page.getByTestId('target-one')).toBeChecked();
    await admin.field('title').fill('Only for you');
    await expect(admin.sendButton).toHaveText('Send to this subscriber');
    await admin.sendButton.click();
    await expect(admin.progress).toHaveAttribute('data-status', 'done');
    await expect(page.getByTestId('progress-total')).toHaveText('1');
    await expect(page.getByTestId('progress-delivered')).toHaveText('1');
    expect(await receivedMessages(second.endpoint)).toHaveLength(1);
    expect(await receivedMessages(first.endpoint)).toHaveLength(0);

    page.once('dialog', (dialog) => dialog.accept());
    await rows.first().getByTestId('delete-subscriber').click();
    await expect(page.getByTestId('subscriber-count')).toHaveText('1');
    await expect(rows).toHaveCount(1);
    expect(await listedEndpoints()).toEqual([second.endpoint]);
  });

  test('schedule a send in the console, see it listed, cancel it: nothing is sent', async ({ page }) => {
    const [subscriber] = await freshSubscribers(1);
    const admin = await signedIn(page);
    await expect(page.getByTestId('scheduled-empty')).toBeVisible();
    await admin.field('title').fill('Tomorrow\'s sale');
    // An hour from now in the browser's own time zone, as a datetime-local value.
    const { local, utc } = await page.evaluate(() => {
      const at = new Date(Date.now() + 3600_000);
      at.setSeconds(0, 0);
      const pad = (n: number) => String(n).padStart(2, '0');
      const local = `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())}T${pad(at.getHours())}:${pad(at.getMinutes())}`;
      return { local, utc: at.toISOString() };
    });
    await admin.field('send-at').fill(local);
    await expect(admin.sendButton).toHaveText('Schedule');
    await admin.sendButton.click();
    await expect(page.getByTestId('send-warning')).toContainText('is scheduled');

    const item = page.getByTestId('scheduled-item');
    await expect(item).toHaveCount(1);
    await expect(item.getByTestId('scheduled-title')).toHaveText('Tomorrow\'s sale');
    const id = Number(await item.getAttribute('data-id'));
    const api = await adminApi();
    const status = await (await api.get(`${appURL}/api/v1/notifications/${id}`)).json();
    expect(status.status).toBe('scheduled');
    expect(new Date(status.send_at).getTime()).toBe(new Date(utc).getTime());
    await expect(admin.historyItem(id)).toHaveAttribute('data-status', 'scheduled');

    await item.getByTestId('scheduled-cancel').click();
    await expect(page.getByTestId('scheduled-empty')).toBeVisible();
    await expect(admin.historyItem(id)).toHaveAttribute('data-status', 'cancelled');
    expect((await (await api.get(`${appURL}/api/v1/notifications/${id}`)).json()).status).toBe('cancelled');
    expect(await receivedMessages(subscriber.endpoint)).toHaveLength(0);
  });
});

test.describe('admin console: a test to this browser (Chromium, fake PushManager)', () => {
  test('the admin\'s own subscription gets the test, and no one else', async ({ context, page }) => {
    const [other] = await freshSubscribers(1);
    const mine = await mintSubscription(await vapidPublicKey());
    await installFakePush(context, { subscription: mine });
    const home = new PushPage(page);
    await home.goto();
    await home.enable();

    const admin = await signedIn(page);
    await page.getByTestId('target-self').check();
    await admin.field('title').fill('Only my browser');
    await expect(admin.sendButton).toHaveText('Send test to this browser');
    await admin.sendButton.click();
    await expect(admin.progress).toHaveAttribute('data-status', 'done');
    await expect(page.getByTestId('progress-total')).toHaveText('1');
    await expect(page.getByTestId('progress-delivered')).toHaveText('1');
    const received = await receivedMessages(mine.endpoint);
    expect(received).toHaveLength(1);
    expect(JSON.parse(received[0].payload!).notification.title).toBe('Only my browser');
    expect(await receivedMessages(other.endpoint)).toHaveLength(0);
  });
});

test.describe('iOS guidance', () => {
  test.use({
    userAgent:
      'Mozilla/5.0 (iPhone; CPU iPhone OS 18_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.4 Mobile/15E148 Safari/604.1',
    viewport: { width: 390, height: 844 },
  });

  test('iOS Safari in a tab shows the Add to Home Screen steps instead of a button that cannot work', async ({ page }) => {
    await page.goto('/');
    const control = page.getByTestId('push-control');
    await expect(control).toHaveAttribute('data-state', 'install');
    await expect(page.getByTestId('install-help')).toContainText('Add to Home Screen');
    await expect(page.getByRole('button', { name: 'Enable notifications' })).toBeDisabled();
    await page.screenshot({ path: 'test-results/screens/ios-install.png', fullPage: true });
  });

  test('the manifest makes the site installable, with PNG icons', async ({ request }) => {
    const response = await request.get('/manifest.webmanifest');
    expect(response.status()).toBe(200);
    const manifest = await response.json();
    expect(manifest.display).toBe('standalone');
    const sizes = manifest.icons.map((icon: { sizes: string }) => icon.sizes);
    expect(sizes).toEqual(expect.arrayContaining(['192x192', '512x512']));
    for (const icon of manifest.icons) {
      const file = await request.get(icon.src);
      expect(file.status(), icon.src).toBe(200);
      expect(file.headers()['content-type']).toBe(icon.type);
    }
  });
});
