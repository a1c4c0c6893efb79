-- E-mail: verified addresses, the user's mail language, single-use account tokens (e-mail
-- verification, password reset, e-mail change), invitations bound to an address, what a
-- login session shows on the account page, and the durable outbox of mail to send.

-- Accounts that existed before verification was introduced count as verified.
ALTER TABLE users ADD COLUMN email_verified_at bigint;
UPDATE users SET email_verified_at = created_at;
ALTER TABLE users ADD COLUMN language text NOT NULL DEFAULT 'en' CHECK (language IN ('en', 'de'));

-- Sessions: when last used, and a coarse client description ("Chrome on Linux"); never the
-- User-Agent itself.
ALTER TABLE login_sessions ADD COLUMN last_seen_at bigint;
ALTER TABLE login_sessions ADD COLUMN client text NOT NULL DEFAULT '';

-- A link's token is 256 random bits; only its SHA-256 is stored. Single use (used_at) and
-- short-lived (expires_at). Global: accounts are not tenant data.
CREATE TABLE account_tokens (
    token_hash  bytea PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     text NOT NULL CHECK (purpose IN ('verify', 'reset', 'email_change')),
    new_email   text,
    created_at  bigint NOT NULL,
    expires_at  bigint NOT NULL,
    used_at     bigint
);
CREATE INDEX account_tokens_user ON account_tokens (user_id, purpose);

-- The address an invitation was sent to; accepting needs a verified account with it.
ALTER TABLE invitations ADD COLUMN email text;

-- Mail waiting to be sent, being sent, sent or given up. Global: mail to a person is not a
-- workspace's data. The message (which may hold a link with a token) is sealed with the
-- master key and erased once it was handed to the mail server.
CREATE TABLE mail_outbox (
    id               uuid PRIMARY KEY,
    recipient        text NOT NULL,
    kind             text NOT NULL,
    status           text NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    ciphertext       bytea,
    nonce            bytea,
    key_version      integer,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  bigint NOT NULL,
    claimed_by       uuid,
    claimed_until    bigint,
    last_error       text,
    created_at       bigint NOT NULL,
    sent_at          bigint
);
CREATE INDEX mail_outbox_due ON mail_outbox (status, next_attempt_at);
