// A customer's site that embeds Clarion through the SDK (demo-site/index.html): its
// `window.clarion` client, and Clarion's card as the SDK mounts it in a shadow root.
import { expect, type Page } from '@playwright/test';
import { demoURL } from '../support/servers';
import { waitForShown, type ShownNotification } from './push-page';

export class DemoSite {
  constructor(readonly page: Page) {}

  /** Opens the site (at `path`, e.g. `/shop.html`) and waits until `connect` has resolved. */
  async goto(origin = demoURL, path = '/') {
    await this.page.goto(`${origin}${path}`);
    await this.page.waitForFunction(() => (window as any).clarion !== undefined, null, { timeout: 30_000 });
  }

  async state(): Promise<string> {
    return this.page.evaluate(() => (window as any).clarion.state());
  }

  /** The card (Playwright's locators reach into open shadow roots). */
  card() {
    return this.page.locator('#notifications').getByTestId('push-control');
  }

  async expectCardState(state: string) {
    await expect(this.card()).toHaveAttribute('data-state', state);
  }

  /** `clarion.subscribe(options)`, resolved or rejected, as data. */
  async subscribe(options: Record<string, unknown> = {}) {
    return this.page.evaluate(async (options) => {
      try {
        return { ok: true, subscription: await (window as any).clarion.subscribe(options) };
      } catch (e: any) {
        return { ok: false, name: e.name, code: e.code, message: String(e.message) };
      }
    }, options);
  }

  async notifications(): Promise<ShownNotification[]> {
    return this.page.evaluate(async () => {
      const registration = await navigator.serviceWorker.getRegistration('/clarion-worker.js');
      const shown = (await registration?.getNotifications()) ?? [];
      return shown.map((n) => ({ title: n.title, body: n.body, icon: n.icon, data: n.data }));
    });
  }

  async waitForNotification(title: string): Promise<ShownNotification> {
    return waitForShown(() => this.notifications(), title);
  }
}
