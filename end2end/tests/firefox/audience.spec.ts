// Audience in Firefox ESR with real subscriptions through `clarion push-service`: topics
// chosen on the page, a send to a topic reaching only those who chose it, and a send to
// a signed-in user reaching each of that user's browsers. Topic and user names are this
// run's own, and the topics are deleted afterwards, so no other test sees them.
import { expect, test, type Browser } from '@playwright/test';
import { PushPage } from '../pages/push-page';
import { broadcast, defineTopic, deleteTopic, identityToken, storedTopics, waitForBrowserConnection } from '../support/servers';

const run = Date.now().toString(36);
const news = `news-${run}`;
const sport = `sport-${run}`;

async function subscribedPage(browser: Browser, query = '') {
  const context = await browser.newContext();
  const push = new PushPage(await context.newPage());
  await push.goto(query);
  await push.expectState('ready');
  await push.enable();
  return { context, push };
}

/** Waits a moment for anything in flight, then checks `title` was not shown. */
async function expectNotShown(push: PushPage, title: string) {
  await push.page.waitForTimeout(1500);
  expect((await push.notifications()).map((n) => n.title)).not.toContain(title);
}

test.describe.configure({ mode: 'serial' });

test.describe('audience (Firefox ESR + clarion push-service)', () => {
  test.beforeAll(async ({ browser }) => {
    const context = await browser.newContext();
    await (await context.newPage()).goto('/');
    await waitForBrowserConnection();
    await context.close();
    await defineTopic(news, 'News');
    await defineTopic(sport, 'Sport');
  });

  test.afterAll(async () => {
    await deleteTopic(news);
    await deleteTopic(sport);
  });

  test('after Enable the page offers the topics, and each change is saved at once', async ({ browser }) => {
    const { context, push } = await subscribedPage(browser);
    await expect(push.page.getByTestId('topic-choices')).toBeVisible();
    await expect(push.topic(news)).not.toBeChecked();
    const { endpoint } = await push.subscription();
    await push.chooseTopic(news, true);
    expect(await storedTopics(endpoint)).toEqual([news]);
    await push.chooseTopic(sport, true);
    await push.chooseTopic(news, false);
    expect(await storedTopics(endpoint)).toEqual([sport]);
    // The page's re-sync on load shows what the server has.
    await push.page.reload();
    await push.expectState('subscribed');
    await expect(push.topic(sport)).toBeChecked();
    await expect(push.topic(news)).not.toBeChecked();
    await context.close();
  });

  test('a send to a topic reaches only the browsers that chose it', async ({ browser }) => {
    const reader = await subscribedPage(browser);
    const fan = await subscribedPage(browser);
    await reader.push.chooseTopic(news, true);
    await fan.push.chooseTopic(sport, true);
    const status = await broadcast({ title: 'Topic: news', body: 'For news readers', topics: [news] });
    expect(status.total).toBe(1);
    expect(status.delivered).toBe(1);
    expect(status.audience).toEqual({ topics: [news] });
    expect((await reader.push.waitForNotification('Topic: news')).body).toBe('For news readers');
    await expectNotShown(fan.push, 'Topic: news');
    await reader.context.close();
    await fan.context.close();
  });

  test('a send to a user reaches both of that user\'s browsers, and nobody else', async ({ browser }) => {
    const user = `user-${run}`;
    const laptop = await subscribedPage(browser, `?user_token=${identityToken(user)}`);
    const phone = await subscribedPage(browser, `?user_token=${identityToken(user)}`);
    const stranger = await subscribedPage(browser);
    const status = await broadcast({ title: 'Someone replied', body: 'To your post', users: [user] });
    expect(status.total).toBe(2);
    expect(status.delivered).toBe(2);
    for (const { push } of [laptop, phone]) {
      expect((await push.waitForNotification('Someone replied')).body).toBe('To your post');
    }
    await expectNotShown(stranger.push, 'Someone replied');
    for (const page of [laptop, phone, stranger]) {
      await page.context.close();
    }
  });
});
