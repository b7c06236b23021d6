DROP INDEX leads_value_keyset_idx;
CREATE INDEX leads_value_keyset_idx ON leads (value_minor DESC, id DESC);
