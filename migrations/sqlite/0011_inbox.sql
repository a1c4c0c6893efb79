-- The chat-log inbox: conversations newest first across all bots, paged by the keyset
-- (last_activity_at, id) without OFFSET.
CREATE INDEX conversations_inbox ON conversations (tenant_id, last_activity_at, id);
