-- E-mail: verified addresses, the user's mail language, single-use account tokens (e-mail
-- verification, password reset, e-mail change), invitations bound to an address, what a
-- login session shows on the account page, and the durable outbox of mail to send.

-- Accounts that existed before verification was introduced count as verified.
ALTER TABLE users ADD COLUMN email_verified_at INTEGER;
UPDATE users SET email_verified_at = created_at;
ALTER TABLE users ADD COLUMN language TEXT NOT NULL DEFAULT 'en' CHECK (language IN ('en', 'de'));

-- Sessions: when last used, and a coarse client description ("Chrome on Linux"); never the
-- User-Agent itself.
ALTER TABLE login_sessions ADD COLUMN last_seen_at INTEGER;
ALTER TABLE login_sessions ADD COLUMN client TEXT NOT NULL DEFAULT '';

-- A link's token is 256 random bits; only its SHA-256 is stored. Single use (used_at) and
-- short-lived (expires_at). Global: accounts are not tenant data.
CREATE TABLE account_tokens (
    token_hash  BLOB PRIMARY KEY NOT NULL,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL CHECK (purpose IN ('verify', 'reset', 'email_change')),
    new_email   TEXT,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
) STRICT;
CREATE INDEX account_tokens_user ON account_tokens (user_id, purpose);

-- The address an invitation was sent to; accepting needs a verified account with it.
ALTER TABLE invitations ADD COLUMN email TEXT;

-- Mail waiting to be sent, being sent, sent or given up. Global: mail to a person is not a
-- workspace's data. The message (which may hold a link with a token) is sealed with the
-- master key and erased once it was handed to the mail server.
CREATE TABLE mail_outbox (
    id               BLOB PRIMARY KEY NOT NULL,
    recipient        TEXT NOT NULL,
    kind             TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    ciphertext       BLOB,
    nonce            BLOB,
    key_version      INTEGER,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    claimed_by       BLOB,
    claimed_until    INTEGER,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    sent_at          INTEGER
) STRICT;
CREATE INDEX mail_outbox_due ON mail_outbox (status, next_attempt_at);
