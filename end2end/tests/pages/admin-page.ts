// Page object for the admin console at /admin.
import { expect, type Locator, type Page } from '@playwright/test';

export class AdminPage {
  readonly token: Locator;
  readonly signInButton: Locator;
  readonly signInError: Locator;
  readonly signOutButton: Locator;
  readonly composer: Locator;
  readonly preview: Locator;
  readonly payloadSize: Locator;
  readonly sendButton: Locator;
  readonly progress: Locator;
  readonly history: Locator;
  readonly subscribers: Locator;

  constructor(readonly page: Page) {
    this.token = page.getByTestId('admin-token');
    this.signInButton = page.getByTestId('sign-in');
    this.signInError = page.getByTestId('sign-in-error');
    this.signOutButton = page.getByTestId('sign-out');
    this.composer = page.getByTestId('composer');
    this.preview = page.getByTestId('preview');
    this.payloadSize = page.getByTestId('payload-size');
    this.sendButton = page.getByTestId('send');
    this.progress = page.getByTestId('progress');
    this.history = page.getByTestId('history');
    this.subscribers = page.getByTestId('subscribers');
  }

  /** Opens /admin and waits until the WASM has taken over the page. */
  async goto() {
    await this.page.goto('/admin');
    await this.hydrated();
  }

  /** Loads the console again, and waits until its island is live (its buttons work). */
  async reload() {
    await this.page.reload();
    await this.hydrated();
  }

  /** The console is an island that hydrates when the browser is idle: the server's HTML
   * shows first, and its buttons do nothing until then. */
  async hydrated() {
    await expect(this.page.getByTestId('admin')).toHaveAttribute('data-hydrated', 'true');
  }

  async signIn(token: string) {
    await this.token.fill(token);
    await this.signInButton.click();
  }

  field(name: string): Locator {
    return this.page.getByTestId(`compose-${name}`);
  }

  /** The number of bytes the size meter reports. */
  async size(): Promise<number> {
    const text = (await this.payloadSize.textContent()) ?? '';
    return Number(text.split(' ')[0]);
  }

  historyItem(id: number): Locator {
    return this.history.locator(`[data-testid="history-item"][data-id="${id}"]`);
  }

  async screenshot(name: string) {
    // The preview pane is sticky: from the top, it sits beside the form.
    await this.page.evaluate(() => window.scrollTo(0, 0));
    await this.page.screenshot({ path: `test-results/screens/${name}.png`, fullPage: true });
  }
}
