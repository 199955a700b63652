// The two servers the suite runs against, and one helper per endpoint the tests use.
import { expect, request as playwrightRequest } from '@playwright/test';
import { createHmac } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export const appURL = `http://127.0.0.1:${process.env.CLARION_E2E_PORT}`;
export const pushURL = `http://127.0.0.1:${process.env.CLARION_E2E_PUSH_PORT}`;
/** A customer's site that embeds Clarion (demo-site/), listed in CLARION_CORS_ORIGINS. */
export const demoURL = `http://127.0.0.1:${process.env.CLARION_E2E_DEMO_PORT}`;
/** The same site on an origin CLARION_CORS_ORIGINS does not list. */
export const strangerURL = `http://127.0.0.1:${process.env.CLARION_E2E_STRANGER_PORT}`;
const adminToken = process.env.CLARION_E2E_ADMIN_TOKEN!;
const dataDir = process.env.CLARION_E2E_DATA_DIR!;

async function api() {
  return playwrightRequest.newContext({ extraHTTPHeaders: { Authorization: `Bearer ${adminToken}` } });
}

export interface Subscription {
  endpoint: string;
  expirationTime: number | null;
  keys: { p256dh: string; auth: string };
}

export async function vapidPublicKey(): Promise<string> {
  const ctx = await api();
  const body = await (await ctx.get(`${appURL}/api/v1/vapid-public-key`)).json();
  return body.public_key;
}

export async function listedEndpoints(): Promise<string[]> {
  const ctx = await api();
  const response = await ctx.get(`${appURL}/api/v1/subscriptions?limit=500`);
  expect(response.status()).toBe(200);
  const body = await response.json();
  return body.subscriptions.map((s: { endpoint: string }) => s.endpoint);
}

/** Queues a notification through the REST API and waits until it is done. */
export async function broadcast(notification: Record<string, unknown>) {
  const ctx = await api();
  const queued = await ctx.post(`${appURL}/api/v1/notifications`, { data: notification });
  expect(queued.status()).toBe(202);
  const { id } = await queued.json();
  let status: any;
  await expect
    .poll(async () => {
      status = await (await ctx.get(`${appURL}/api/v1/notifications/${id}`)).json();
      return status.status;
    })
    .toBe('done');
  return status;
}

/** Makes a site (admin) with these origins; answers it. */
export async function createSite(name: string, origins: string[]) {
  const ctx = await api();
  const response = await ctx.post(`${appURL}/api/v1/sites`, { data: { name, origins } });
  expect(response.status(), await response.text()).toBe(201);
  return response.json();
}

/** Removes a site and its subscriptions (admin). */
export async function removeSite(name: string) {
  const ctx = await api();
  const response = await ctx.delete(`${appURL}/api/v1/sites/${name}?purge=true`);
  expect(response.status(), await response.text()).toBe(200);
}

/** The endpoints stored for a site (admin). */
export async function siteEndpoints(site: string): Promise<string[]> {
  const ctx = await api();
  const response = await ctx.get(`${appURL}/api/v1/sites/${site}/subscriptions?limit=500`);
  expect(response.status()).toBe(200);
  return (await response.json()).subscriptions.map((s: { endpoint: string }) => s.endpoint);
}

/** Queues a notification to a site's subscribers and waits until it is done. */
export async function broadcastToSite(site: string, notification: Record<string, unknown>) {
  const ctx = await api();
  const queued = await ctx.post(`${appURL}/api/v1/sites/${site}/notifications`, { data: notification });
  expect(queued.status()).toBe(202);
  const { id } = await queued.json();
  let status: any;
  await expect
    .poll(async () => {
      status = await (await ctx.get(`${appURL}/api/v1/sites/${site}/notifications/${id}`)).json();
      return status.status;
    })
    .toBe('done');
  return status;
}

/** Rotates the default site's VAPID key (admin); answers the new key. */
export async function rotateKey(): Promise<{ id: number; public_key: string }> {
  const ctx = await api();
  const response = await ctx.post(`${appURL}/api/v1/sites/default/vapid-keys`);
  expect(response.status()).toBe(201);
  return response.json();
}

/** Defines a topic through the REST API (admin). */
export async function defineTopic(name: string, label: string) {
  const ctx = await api();
  const response = await ctx.put(`${appURL}/api/v1/topics/${name}`, { data: { label } });
  expect([200, 201]).toContain(response.status());
}

/** Deletes a topic (and every subscription's choice of it). */
export async function deleteTopic(name: string) {
  const ctx = await api();
  expect((await ctx.delete(`${appURL}/api/v1/topics/${name}`)).status()).toBe(204);
}

/** The topics stored for a subscription, from the admin listing. */
export async function storedTopics(endpoint: string): Promise<string[]> {
  const ctx = await api();
  const body = await (await ctx.get(`${appURL}/api/v1/subscriptions?limit=500`)).json();
  const row = body.subscriptions.find((s: { endpoint: string }) => s.endpoint === endpoint);
  expect(row, `${endpoint} is listed`).toBeTruthy();
  return row.topics;
}

/** An identity token as a site's backend mints it: HS256 over {sub, exp}, one hour. */
export function identityToken(user: string): string {
  const b64 = (value: string | Buffer) => Buffer.from(value).toString('base64url');
  const claims = { sub: user, exp: Math.floor(Date.now() / 1000) + 3600 };
  const input = `${b64(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64(JSON.stringify(claims))}`;
  const signature = createHmac('sha256', process.env.CLARION_E2E_IDENTITY_SECRET!).update(input).digest();
  return `${input}.${b64(signature)}`;
}

/** A notification's status from the REST API. */
export async function notificationStatus(id: number) {
  const ctx = await api();
  const response = await ctx.get(`${appURL}/api/v1/notifications/${id}`);
  expect(response.status()).toBe(200);
  return response.json();
}

/** A subscription minted by the push service, which can decrypt what reaches it. */
export async function mintSubscription(applicationServerKey: string): Promise<Subscription> {
  const ctx = await playwrightRequest.newContext();
  const response = await ctx.post(`${pushURL}/_test/subscriptions`, { data: { application_server_key: applicationServerKey } });
  expect(response.status()).toBe(201);
  return response.json();
}

export async function receivedMessages(endpoint: string): Promise<Array<{ payload: string | null; claims: { aud: string } }>> {
  const ctx = await playwrightRequest.newContext();
  const response = await ctx.get(`${pushURL}/_test/messages`, { params: { endpoint } });
  expect(response.status()).toBe(200);
  return response.json();
}

/** Resolves once a browser holds a push WebSocket (Firefox drops subscribe() before its hello). */
export async function waitForBrowserConnection() {
  const ctx = await playwrightRequest.newContext();
  await expect
    .poll(async () => (await (await ctx.get(`${pushURL}/_test/browsers`)).json()).connected.length, { timeout: 45_000 })
    .toBeGreaterThan(0);
}

/**
 * Restarts `clarion serve` on the same data dir (tools/serve.sh watches for this file),
 * optionally with another VAPID private key (base64url of the raw scalar).
 */
export async function restartServer(vapidPrivateKey = '') {
  const control = path.join(path.dirname(dataDir), `control-${path.basename(dataDir)}`);
  writeFileSync(control, vapidPrivateKey);
  await expect.poll(() => existsSync(control), { timeout: 10_000 }).toBe(false);
  const ctx = await playwrightRequest.newContext();
  await expect
    .poll(async () => {
      try {
        return (await ctx.get(`${appURL}/healthz`)).status();
      } catch {
        return 0;
      }
    }, { timeout: 20_000 })
    .toBe(200);
}
