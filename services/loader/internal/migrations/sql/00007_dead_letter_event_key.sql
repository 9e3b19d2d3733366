-- dead_letter gains the version of the rejected event, and a second unique key: one dead
-- letter per (event_id, event_version, stage, reason). The same event read twice at two
-- positions of the stream (a producer retried after a 503 and its first put had landed)
-- is then dead-lettered once, not once per position. The position key
-- (dead_letter_position_stage_key) stays: it makes a redelivered batch a no-op, also for
-- records whose event is unknown. The loader inserts with ON CONFLICT DO NOTHING, which
-- skips a row that collides on either key.
--
-- event_version is NULL when the event's version is unknown (the record could not be
-- decoded that far) or when the event id could not be stored verbatim (the loader had to
-- replace or truncate it, see services/loader/README.md): NULL never collides, so such a
-- record is deduplicated by its position only, and two different events whose ids differ
-- only in unstorable bytes are never merged. Rows from before this migration have NULL.

-- +goose Up
ALTER TABLE dead_letter
    ADD COLUMN event_version bigint NULL;

CREATE UNIQUE INDEX dead_letter_event_key
    ON dead_letter (event_id, event_version, stage, reason)
    WHERE event_id IS NOT NULL AND event_version IS NOT NULL;

-- +goose Down
DROP INDEX dead_letter_event_key;

ALTER TABLE dead_letter
    DROP COLUMN event_version;
