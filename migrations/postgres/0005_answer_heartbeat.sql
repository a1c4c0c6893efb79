-- When a pending answer's streamed text was last saved (unix ms): the process streaming it
-- writes it at least every few seconds (see api/src/widget/recovery.rs). A pending answer
-- whose last save (or, before the first one, creation) is older than the staleness limit
-- belongs to a process that is gone and is turned into `interrupted` with the text saved.
-- Existing policies on `messages` cover the new column.
ALTER TABLE messages ADD COLUMN saved_at bigint;

CREATE INDEX messages_pending ON messages (tenant_id, saved_at) WHERE status = 'pending';
