-- Lead management: the sales pipeline, attribution and scoring on the lead,
-- the referral on the message that carried it, and the tables of tags, notes
-- and the per-lead activity timeline.
ALTER TABLE leads ADD COLUMN status TEXT NOT NULL DEFAULT 'new'
    CHECK (status IN ('new', 'contacted', 'qualified', 'converted', 'lost'));
ALTER TABLE leads ADD COLUMN priority TEXT NOT NULL DEFAULT 'medium'
    CHECK (priority IN ('low', 'medium', 'high'));
-- Deal value in minor units (cents) of an ISO 4217 currency; both or neither.
ALTER TABLE leads ADD COLUMN value_minor BIGINT;
ALTER TABLE leads ADD COLUMN value_currency TEXT;
ALTER TABLE leads ADD COLUMN assigned_to TEXT;
ALTER TABLE leads ADD COLUMN next_follow_up_at TIMESTAMP;
ALTER TABLE leads ADD COLUMN converted_at TIMESTAMP;
-- Attribution: the click-to-WhatsApp referral and the business number of the
-- lead's first message.
ALTER TABLE leads ADD COLUMN source_type TEXT;
ALTER TABLE leads ADD COLUMN source_id TEXT;
ALTER TABLE leads ADD COLUMN source_url TEXT;
ALTER TABLE leads ADD COLUMN source_headline TEXT;
ALTER TABLE leads ADD COLUMN business_phone_number_id TEXT;
-- Engagement: replies to interactive prompts, and the score computed on ingest.
ALTER TABLE leads ADD COLUMN interactive_replies BIGINT NOT NULL DEFAULT 0;
ALTER TABLE leads ADD COLUMN score BIGINT NOT NULL DEFAULT 0;

-- Existing conversions keep their meaning in the pipeline.
UPDATE leads SET status = 'converted', converted_at = updated_at WHERE converted_to_student;

CREATE INDEX leads_status_idx ON leads (status);
CREATE INDEX leads_assigned_to_idx ON leads (assigned_to);
CREATE INDEX leads_next_follow_up_at_idx ON leads (next_follow_up_at);
CREATE INDEX leads_source_type_idx ON leads (source_type);
CREATE INDEX leads_business_phone_number_id_idx ON leads (business_phone_number_id);
CREATE INDEX leads_converted_at_idx ON leads (converted_at);
-- Keyset pagination for every sort of the lead list: sort key, then id.
CREATE INDEX leads_created_keyset_idx ON leads (created_at DESC, id DESC);
CREATE INDEX leads_messages_keyset_idx ON leads (message_count DESC, id DESC);
CREATE INDEX leads_value_keyset_idx ON leads (value_minor DESC, id DESC);
CREATE INDEX leads_score_keyset_idx ON leads (score DESC, id DESC);

ALTER TABLE messages ADD COLUMN referral_source_type TEXT;
ALTER TABLE messages ADD COLUMN referral_source_id TEXT;
ALTER TABLE messages ADD COLUMN referral_source_url TEXT;
ALTER TABLE messages ADD COLUMN referral_headline TEXT;
CREATE INDEX messages_message_type_idx ON messages (message_type);

CREATE TABLE lead_tags (
    lead_id BIGINT NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    tag     TEXT NOT NULL,
    PRIMARY KEY (lead_id, tag)
);
CREATE INDEX lead_tags_tag_idx ON lead_tags (tag, lead_id);

CREATE TABLE lead_notes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    lead_id    BIGINT NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    author     TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX lead_notes_lead_id_idx ON lead_notes (lead_id, id);

-- Append-only history of a lead: `kind` names the event, `detail` is JSON.
CREATE TABLE lead_activity (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    lead_id    BIGINT NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    actor      TEXT,
    detail     TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX lead_activity_lead_id_idx ON lead_activity (lead_id, id);
