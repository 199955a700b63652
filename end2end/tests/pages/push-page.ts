// Page object for Clarion's home page and its push control.
import { expect, type Locator, type Page } from '@playwright/test';

export type PushState = 'checking' | 'unsupported' | 'blocked' | 'ready' | 'subscribed';

export interface ShownNotification {
  title: string;
  body: string;
  icon: string;
  data: any;
}

/** Polls `shown` (a page's `registration.getNotifications()`) until one is titled `title`. */
export async function waitForShown(shown: () => Promise<ShownNotification[]>, title: string): Promise<ShownNotification> {
  let found: ShownNotification | undefined;
  await expect
    .poll(async () => {
      found = (await shown()).find((n) => n.title === title);
      return found !== undefined;
    }, { timeout: 20_000 })
    .toBe(true);
  return found!;
}

export class PushPage {
  readonly control: Locator;
  readonly status: Locator;
  readonly enableButton: Locator;
  readonly disableButton: Locator;
  readonly sendTestButton: Locator;
  readonly subscriptionJson: Locator;
  readonly notice: Locator;

  constructor(readonly page: Page) {
    this.control = page.getByTestId('push-control');
    this.status = page.getByRole('status');
    this.enableButton = page.getByRole('button', { name: 'Enable notifications' });
    this.disableButton = page.getByRole('button', { name: 'Disable notifications' });
    this.sendTestButton = page.getByRole('button', { name: 'Send test notification' });
    this.subscriptionJson = page.getByTestId('subscription-json');
    this.notice = page.getByTestId('push-notice');
  }

  /** Opens the page (with a query string, if given) and waits until the control has looked at the browser. */
  async goto(query = '') {
    await this.page.goto(`/${query}`);
    await expect(this.control).not.toHaveAttribute('data-state', 'checking');
  }

  async expectState(state: PushState) {
    await expect(this.control).toHaveAttribute('data-state', state);
  }

  async enable() {
    await this.enableButton.click();
    await this.expectState('subscribed');
  }

  async disable() {
    await this.disableButton.click();
    await this.expectState('ready');
  }

  async sendTest() {
    await this.sendTestButton.click();
    await expect(this.notice).toContainText('Test notification sent');
  }

  /** The checkbox of one topic on the page. */
  topic(name: string): Locator {
    return this.page.locator(`[data-testid="topic-choice"][value="${name}"]`);
  }

  /** Ticks or unticks a topic and waits until the server has saved the set. */
  async chooseTopic(name: string, on: boolean) {
    await this.topic(name).setChecked(on);
    await expect(this.notice).toHaveText('Your topics are saved.');
    await expect(this.topic(name)).toBeEnabled();
  }

  async subscription(): Promise<{ endpoint: string; keys: { p256dh: string; auth: string } }> {
    return JSON.parse((await this.subscriptionJson.textContent()) ?? 'null');
  }

  /** What the service worker has shown, via registration.getNotifications(). */
  async notifications(): Promise<ShownNotification[]> {
    return this.page.evaluate(async () => {
      const registration = await navigator.serviceWorker.ready;
      const shown = await registration.getNotifications();
      return shown.map((n) => ({ title: n.title, body: n.body, icon: n.icon, data: n.data }));
    });
  }

  async waitForNotification(title: string): Promise<ShownNotification> {
    return waitForShown(() => this.notifications(), title);
  }

  async screenshot(name: string) {
    await this.page.screenshot({ path: `test-results/screens/${name}.png`, fullPage: true });
  }
}
