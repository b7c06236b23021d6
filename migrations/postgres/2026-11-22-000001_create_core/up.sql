-- Core tables. Identity: a person is known by a phone number, a WhatsApp
-- business-scoped user id (BSUID), or both; each is unique when present.
CREATE TABLE students (
    id             BIGSERIAL PRIMARY KEY,
    phone_number   TEXT UNIQUE,
    user_id        TEXT UNIQUE,
    parent_user_id TEXT,
    username       TEXT,
    name           TEXT,
    email          TEXT,
    created_at     TIMESTAMP NOT NULL,
    CHECK (phone_number IS NOT NULL OR user_id IS NOT NULL)
);
CREATE INDEX students_parent_user_id_idx ON students (parent_user_id);
CREATE INDEX students_username_idx ON students (username);

CREATE TABLE leads (
    id                   BIGSERIAL PRIMARY KEY,
    phone_number         TEXT UNIQUE,
    user_id              TEXT UNIQUE,
    parent_user_id       TEXT,
    username             TEXT,
    sender_name          TEXT,
    first_message        TEXT NOT NULL,
    first_message_time   TIMESTAMP NOT NULL,
    last_message         TEXT NOT NULL,
    last_message_time    TIMESTAMP NOT NULL,
    message_count        BIGINT NOT NULL DEFAULT 0,
    is_active            BOOLEAN NOT NULL DEFAULT TRUE,
    converted_to_student BOOLEAN NOT NULL DEFAULT FALSE,
    student_id           BIGINT REFERENCES students (id) ON DELETE SET NULL,
    created_at           TIMESTAMP NOT NULL,
    updated_at           TIMESTAMP NOT NULL,
    CHECK (phone_number IS NOT NULL OR user_id IS NOT NULL)
);
CREATE INDEX leads_created_at_idx ON leads (created_at);
CREATE INDEX leads_updated_at_idx ON leads (updated_at);
CREATE INDEX leads_last_message_time_idx ON leads (last_message_time);
CREATE INDEX leads_student_id_idx ON leads (student_id);
CREATE INDEX leads_parent_user_id_idx ON leads (parent_user_id);
CREATE INDEX leads_username_idx ON leads (username);

-- Every inbound message, exactly once per WhatsApp message id.
CREATE TABLE messages (
    id                       BIGSERIAL PRIMARY KEY,
    wamid                    TEXT NOT NULL UNIQUE,
    lead_id                  BIGINT REFERENCES leads (id) ON DELETE CASCADE,
    direction                TEXT NOT NULL DEFAULT 'inbound',
    phone_number             TEXT,
    user_id                  TEXT,
    sender_name              TEXT,
    business_phone_number_id TEXT,
    message_type             TEXT NOT NULL,
    body                     TEXT NOT NULL,
    wa_timestamp             TIMESTAMP NOT NULL,
    received_at              TIMESTAMP NOT NULL,
    status                   TEXT,
    status_updated_at        TIMESTAMP
);
CREATE INDEX messages_lead_id_wa_timestamp_idx ON messages (lead_id, wa_timestamp, id);
CREATE INDEX messages_received_at_idx ON messages (received_at);

-- Authentic webhook bodies that could not be (fully) understood.
CREATE TABLE webhook_failures (
    id          BIGSERIAL PRIMARY KEY,
    reason      TEXT NOT NULL,
    body        TEXT NOT NULL,
    received_at TIMESTAMP NOT NULL
);
CREATE INDEX webhook_failures_received_at_idx ON webhook_failures (received_at);
