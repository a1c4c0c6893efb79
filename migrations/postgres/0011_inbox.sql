-- The chat-log inbox: conversations newest first across all bots, paged by the keyset
-- (last_activity_at, id) without OFFSET.
CREATE INDEX conversations_inbox ON conversations (tenant_id, last_activity_at, id);

-- Full-text search over messages: the same expression as the inbox query
-- (api/src/storage/inbox.rs), so the planner uses this index. 'simple' configuration:
-- no stemming, so visitors' languages are all treated alike.
CREATE INDEX messages_search ON messages USING gin (to_tsvector('simple', content));
