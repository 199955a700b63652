// Chromium cannot make a real push subscription offline (it needs Google's FCM), so for
// UI tests this init script replaces PushManager's methods. The subscription it hands out
// is either one minted by `clarion push-service` (real keys the push service can decrypt
// for, so "Send test notification" really delivers) or, when none is given, one with a
// fresh P-256 key pair from crypto.subtle.
import type { BrowserContext } from '@playwright/test';
import type { Subscription } from './servers';

export interface FakePushOptions {
  subscription?: Subscription;
  /** Endpoint for subscriptions generated with crypto.subtle. */
  endpointBase?: string;
  permission?: 'granted' | 'denied';
  /** Remove PushManager entirely: the "unsupported" browser. */
  unsupported?: boolean;
  /** Make PushSubscription.unsubscribe() reject, as a broken browser might. */
  unsubscribeFails?: boolean;
}

export async function installFakePush(context: BrowserContext, options: FakePushOptions) {
  if (options.permission !== 'denied' && !options.unsupported) {
    await context.grantPermissions(['notifications']);
  }
  await context.addInitScript((opts: FakePushOptions) => {
    if (opts.unsupported) {
      delete (window as any).PushManager;
      return;
    }
    if (opts.permission === 'denied') {
      Object.defineProperty(Notification, 'permission', { get: () => 'denied' });
      Notification.requestPermission = async () => 'denied';
    }
    const STORE = 'clarion-fake-push-subscription';
    const b64 = (bytes: Uint8Array) =>
      btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    const unb64 = (text: string) => {
      const s = atob(text.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((text.length + 3) % 4));
      return Uint8Array.from(s, (c) => c.charCodeAt(0));
    };
    const toBytes = (key: any) =>
      typeof key === 'string' ? unb64(key) : new Uint8Array(key instanceof ArrayBuffer ? key : key.buffer);
    type Stored = { endpoint: string; p256dh: string; auth: string; key: string };
    const wrap = (s: Stored) => ({
      endpoint: s.endpoint,
      expirationTime: null,
      options: { userVisibleOnly: true, applicationServerKey: unb64(s.key).buffer },
      getKey: (name: string) => unb64(name === 'p256dh' ? s.p256dh : s.auth).buffer,
      toJSON: () => ({ endpoint: s.endpoint, expirationTime: null, keys: { p256dh: s.p256dh, auth: s.auth } }),
      unsubscribe: async () => {
        if (opts.unsubscribeFails) throw new DOMException('unsubscribe refused', 'InvalidStateError');
        localStorage.removeItem(STORE);
        return true;
      },
    });
    PushManager.prototype.subscribe = async function (init?: PushSubscriptionOptionsInit) {
      if (Notification.permission !== 'granted') throw new DOMException('Registration failed - permission denied', 'NotAllowedError');
      const key = b64(toBytes(init?.applicationServerKey));
      let stored: Stored;
      if (opts.subscription) {
        stored = { endpoint: opts.subscription.endpoint, p256dh: opts.subscription.keys.p256dh, auth: opts.subscription.keys.auth, key };
      } else {
        const pair = await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, true, ['deriveBits']);
        const raw = new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey));
        const auth = crypto.getRandomValues(new Uint8Array(16));
        stored = { endpoint: `${opts.endpointBase}/push/fake-${b64(crypto.getRandomValues(new Uint8Array(9)))}`, p256dh: b64(raw), auth: b64(auth), key };
      }
      localStorage.setItem(STORE, JSON.stringify(stored));
      return wrap(stored) as unknown as PushSubscription;
    };
    PushManager.prototype.getSubscription = async function () {
      const text = localStorage.getItem(STORE);
      return (text ? wrap(JSON.parse(text)) : null) as unknown as PushSubscription;
    };
    PushManager.prototype.permissionState = async function () {
      return Notification.permission === 'default' ? 'prompt' : (Notification.permission as PermissionState);
    };
  }, options);
}
