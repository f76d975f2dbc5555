-- Coffre accounts, SQLite. Applied by `coffre db migrate` / `coffre serve`.
--
-- login: the canonical login. Coffre lower-cases the DOMAIN part (after the
--   last '@') on every insert and lookup and keeps the local part as written
--   (RFC 5321 §2.4), so hand-written INSERTs must lower-case the domain too.
-- password_hash: an argon2id PHC string (`coffre hash`) or a legacy scheme
--   (see crates/account-auth/README.md); replaced by argon2id on login.
-- Timestamps are UTC text, 'YYYY-MM-DDTHH:MM:SSZ'.
CREATE TABLE accounts (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    login          TEXT    NOT NULL UNIQUE
                   CHECK (length(CAST(login AS BLOB)) BETWEEN 1 AND 320),
    password_hash  TEXT    NOT NULL,
    enabled        BOOLEAN NOT NULL DEFAULT TRUE,
    quota_bytes    BIGINT  NULL CHECK (quota_bytes >= 0),
    quota_messages BIGINT  NULL CHECK (quota_messages >= 0),
    mail_location  TEXT    NULL,
    created_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    updated_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    last_login     TEXT    NULL
);
