-- The delivery policy: retries are durable rows, so a throttled or failing push service
-- never holds up a broadcast's progress through the others, and a restart resumes them.

ALTER TABLE broadcasts ADD COLUMN retried INTEGER NOT NULL DEFAULT 0;
-- JSON object: push-service origin -> why sending to it stopped (401/403).
ALTER TABLE broadcasts ADD COLUMN stopped_origins TEXT NOT NULL DEFAULT '{}';

CREATE TABLE broadcast_retries (
    broadcast_id    INTEGER NOT NULL REFERENCES broadcasts (id) ON DELETE CASCADE,
    subscription_id INTEGER NOT NULL,
    attempts        INTEGER NOT NULL,   -- sends made so far
    not_before      INTEGER NOT NULL,   -- unix milliseconds
    PRIMARY KEY (broadcast_id, subscription_id)
);

CREATE INDEX broadcast_retries_due ON broadcast_retries (broadcast_id, not_before);
