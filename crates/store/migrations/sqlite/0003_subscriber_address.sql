-- Which client address created a subscription, as a keyed hash (never the address), so a
-- per-address cap can be enforced. NULL for imported subscriptions.
ALTER TABLE subscriptions ADD COLUMN client_hash TEXT;
CREATE INDEX subscriptions_client_hash ON subscriptions (client_hash) WHERE client_hash IS NOT NULL;
