-- One counted click per broadcast and subscription: a click report must prove its
-- subscription, and a second report from it is not counted again.
CREATE TABLE broadcast_clicks (
    broadcast_id    BIGINT NOT NULL REFERENCES broadcasts (id) ON DELETE CASCADE,
    subscription_id BIGINT NOT NULL,
    PRIMARY KEY (broadcast_id, subscription_id)
);
