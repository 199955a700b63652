-- A broadcast is split into ranges of subscription ids when it starts, and any worker
-- (of any instance) claims a range under a lease with a fencing epoch: so several
-- instances send one broadcast together. The broadcast row keeps the counts, failure
-- reasons and stopped origins that every range adds to.
CREATE TABLE broadcast_ranges (
    broadcast_id INTEGER NOT NULL REFERENCES broadcasts (id) ON DELETE CASCADE,
    range_no     INTEGER NOT NULL,
    after_id     INTEGER NOT NULL,            -- the range holds ids in (after_id, last_id]
    last_id      INTEGER NOT NULL,
    cursor       INTEGER NOT NULL,            -- highest id whose outcome is committed
    done         INTEGER NOT NULL DEFAULT 0,  -- main pass and retries settled
    lease_owner  TEXT,
    lease_until  INTEGER,                     -- unix seconds
    lease_epoch  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (broadcast_id, range_no)
);

CREATE INDEX broadcast_ranges_open ON broadcast_ranges (broadcast_id, range_no) WHERE done = 0;

-- A broadcast that was sending under the one-lease engine becomes one range that resumes
-- after its cursor; its retries belong to that range.
INSERT INTO broadcast_ranges (broadcast_id, range_no, after_id, last_id, cursor)
SELECT id, 0, 0, COALESCE(last_id, 0), cursor FROM broadcasts WHERE status = 'sending';
UPDATE broadcasts SET lease_owner = NULL, lease_until = NULL WHERE status = 'sending';

ALTER TABLE broadcast_retries ADD COLUMN range_no INTEGER NOT NULL DEFAULT 0;
CREATE INDEX broadcast_retries_range_due ON broadcast_retries (broadcast_id, range_no, not_before);

-- A push service's Retry-After, shared: every instance waits it out, in every broadcast.
CREATE TABLE origin_holds (
    origin   TEXT    PRIMARY KEY,
    until_ms INTEGER NOT NULL     -- unix milliseconds
);
