-- The few leads that are inactive, and those converted to a student, each
-- in an index of their own ids. A search with `active` or `converted`
-- counts its matching leads by testing each id against these, instead of
-- looking every matching lead up (`LeadFilter::search_count_conditions`).
-- A lead enters one only once it is deactivated or converted: a new lead,
-- and a message to an active, unconverted one, write no entry in either.
-- The WHERE texts are the ones the count's queries use, which lets both
-- databases read the ids from the index alone.
CREATE INDEX leads_inactive_idx ON leads (id) WHERE is_active = FALSE;
CREATE INDEX leads_converted_idx ON leads (id) WHERE converted_to_student = TRUE;
