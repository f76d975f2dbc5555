-- Coffre accounts, MariaDB / MySQL. Applied by `coffre db migrate` / `coffre serve`.
--
-- login: the canonical login. Coffre lower-cases the DOMAIN part (after the
--   last '@') on every insert and lookup and keeps the local part as written
--   (RFC 5321 §2.4), so hand-written INSERTs must lower-case the domain too.
--   The table uses a binary collation so that the database compares logins
--   and hashes byte for byte, as the other backends do (the server default
--   collations are case- and accent-insensitive).
-- password_hash: an argon2id PHC string (`coffre hash`) or a legacy scheme
--   (see crates/account-auth/README.md); replaced by argon2id on login.
-- Timestamps are TIMESTAMP (stored as UTC; coffre's sessions use UTC).
CREATE TABLE accounts (
    id             BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    login          VARCHAR(320) NOT NULL,
    password_hash  TEXT         NOT NULL,
    enabled        BOOLEAN      NOT NULL DEFAULT TRUE,
    quota_bytes    BIGINT       NULL,
    quota_messages BIGINT       NULL,
    mail_location  TEXT         NULL,
    created_at     TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at     TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP,
    last_login     TIMESTAMP    NULL DEFAULT NULL,
    CONSTRAINT accounts_login_key UNIQUE (login),
    CONSTRAINT accounts_login_len CHECK (LENGTH(login) BETWEEN 1 AND 320),
    CONSTRAINT accounts_quota_bytes CHECK (quota_bytes IS NULL OR quota_bytes >= 0),
    CONSTRAINT accounts_quota_messages CHECK (quota_messages IS NULL OR quota_messages >= 0)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
