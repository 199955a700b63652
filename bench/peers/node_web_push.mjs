// Peer: Node `web-push` 3.6.7, used as its README shows (setVapidDetails once, then
// sendNotification per subscription), with 64 sends in flight.
//   node node_web_push.mjs SUBSCRIPTIONS.jsonl VAPID_PUBLIC VAPID_PRIVATE SUBJECT PAYLOAD
// prints {"pushes", "ok", "failed", "seconds"}.
import { readFileSync } from 'node:fs';
import webpush from 'web-push';

const [file, publicKey, privateKey, subject, payload] = process.argv.slice(2);
const subscriptions = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
webpush.setVapidDetails(subject, publicKey, privateKey);

const IN_FLIGHT = 64;
let next = 0;
let ok = 0;
let failed = 0;
const started = process.hrtime.bigint();
async function worker() {
  while (next < subscriptions.length) {
    const subscription = subscriptions[next++];
    try {
      await webpush.sendNotification(subscription, payload, { TTL: 60 });
      ok++;
    } catch (error) {
      failed++;
      if (failed <= 3) console.error(String(error));
    }
  }
}
await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
console.log(JSON.stringify({ pushes: subscriptions.length, ok, failed, seconds }));
