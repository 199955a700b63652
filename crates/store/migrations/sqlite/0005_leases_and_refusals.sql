-- Fencing for broadcast leases, and per-subscription judgement of VAPID refusals.

-- Every claim of a broadcast increments its epoch. A worker writes (progress, renewal,
-- finish) only while the epoch is still the one it claimed, so a stalled old owner can
-- never commit over the worker that took the broadcast over.
ALTER TABLE broadcasts ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0;

-- 401/403 answers for this subscription under the current VAPID key, in a broadcast where
-- the same push service accepted the key for others; reset by a delivery. At
-- MAX_VAPID_REFUSALS the subscription is removed (it was made with another key).
ALTER TABLE subscriptions ADD COLUMN vapid_refusals INTEGER NOT NULL DEFAULT 0;

-- The admin token a console session was opened with (a tag derived from it, never the
-- token): sessions of an earlier token are not live.
ALTER TABLE admin_sessions ADD COLUMN admin_tag TEXT;
