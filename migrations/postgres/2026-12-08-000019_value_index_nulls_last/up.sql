-- The value sort lists leads without a value last, which in a descending
-- order is PostgreSQL's `NULLS LAST` (its default for DESC is NULLS FIRST).
-- An index in that order serves the sort and its offsets; the one before,
-- in the default order, served neither, and each page sorted every lead
-- (1 M leads: the first page 0.46 s). SQLite's own default is this order.
DROP INDEX leads_value_keyset_idx;
CREATE INDEX leads_value_keyset_idx ON leads (value_minor DESC NULLS LAST, id DESC);
