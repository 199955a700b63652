-- The number of stored subscriptions, kept by triggers, so that no request has to count
-- the table (a COUNT(*) reads every row: 11 times slower subscribes at 500k stored).
-- An upsert that updates a known endpoint fires no INSERT trigger, so it is not counted.
CREATE TABLE subscription_count (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    stored INTEGER NOT NULL
);
INSERT INTO subscription_count (id, stored) SELECT 1, COUNT(*) FROM subscriptions;

CREATE TRIGGER subscription_counted AFTER INSERT ON subscriptions
BEGIN
    UPDATE subscription_count SET stored = stored + 1 WHERE id = 1;
END;

CREATE TRIGGER subscription_uncounted AFTER DELETE ON subscriptions
BEGIN
    UPDATE subscription_count SET stored = stored - 1 WHERE id = 1;
END;
