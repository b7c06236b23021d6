//! Table definitions shared by both backends. Written by hand: the SQLite and
//! PostgreSQL migrations create the same columns with the same types.

diesel::table! {
    students (id) {
        id -> BigInt,
        phone_number -> Nullable<Text>,
        user_id -> Nullable<Text>,
        parent_user_id -> Nullable<Text>,
        username -> Nullable<Text>,
        name -> Nullable<Text>,
        email -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    leads (id) {
        id -> BigInt,
        phone_number -> Nullable<Text>,
        user_id -> Nullable<Text>,
        parent_user_id -> Nullable<Text>,
        username -> Nullable<Text>,
        sender_name -> Nullable<Text>,
        first_message -> Text,
        first_message_time -> Timestamp,
        last_message -> Text,
        last_message_time -> Timestamp,
        message_count -> BigInt,
        is_active -> Bool,
        converted_to_student -> Bool,
        student_id -> Nullable<BigInt>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        status -> Text,
        priority -> Text,
        value_minor -> Nullable<BigInt>,
        value_currency -> Nullable<Text>,
        assigned_to -> Nullable<Text>,
        next_follow_up_at -> Nullable<Timestamp>,
        converted_at -> Nullable<Timestamp>,
        source_type -> Nullable<Text>,
        source_id -> Nullable<Text>,
        source_url -> Nullable<Text>,
        source_headline -> Nullable<Text>,
        business_phone_number_id -> Nullable<Text>,
        interactive_replies -> BigInt,
        score -> BigInt,
    }
}

diesel::table! {
    messages (id) {
        id -> BigInt,
        wamid -> Text,
        lead_id -> Nullable<BigInt>,
        direction -> Text,
        phone_number -> Nullable<Text>,
        user_id -> Nullable<Text>,
        sender_name -> Nullable<Text>,
        business_phone_number_id -> Nullable<Text>,
        message_type -> Text,
        body -> Text,
        wa_timestamp -> Timestamp,
        received_at -> Timestamp,
        status -> Nullable<Text>,
        status_updated_at -> Nullable<Timestamp>,
        referral_source_type -> Nullable<Text>,
        referral_source_id -> Nullable<Text>,
        referral_source_url -> Nullable<Text>,
        referral_headline -> Nullable<Text>,
    }
}

diesel::table! {
    webhook_failures (id) {
        id -> BigInt,
        reason -> Text,
        body -> Text,
        received_at -> Timestamp,
    }
}

diesel::table! {
    lead_tags (lead_id, tag) {
        lead_id -> BigInt,
        tag -> Text,
    }
}

diesel::table! {
    lead_notes (id) {
        id -> BigInt,
        lead_id -> BigInt,
        author -> Text,
        body -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// Append-only history of a lead; `detail` holds JSON.
    lead_activity (id) {
        id -> BigInt,
        lead_id -> BigInt,
        kind -> Text,
        actor -> Nullable<Text>,
        detail -> Text,
        created_at -> Timestamp,
    }
}

diesel::joinable!(leads -> students (student_id));
diesel::joinable!(messages -> leads (lead_id));
diesel::joinable!(lead_tags -> leads (lead_id));
diesel::joinable!(lead_notes -> leads (lead_id));
diesel::joinable!(lead_activity -> leads (lead_id));
diesel::allow_tables_to_appear_in_same_query!(
    students,
    leads,
    messages,
    webhook_failures,
    lead_tags,
    lead_notes,
    lead_activity
);

diesel::table! {
    /// One row (id 1) of running totals, kept exact by triggers.
    lead_counters (id) {
        id -> Integer,
        leads -> BigInt,
        active -> BigInt,
        converted -> BigInt,
        messages -> BigInt,
    }
}

diesel::table! {
    /// How many leads have each status, source type and business number
    /// (`kind` names which), kept exact by triggers.
    lead_value_counts (kind, value) {
        kind -> Text,
        value -> Text,
        leads -> BigInt,
    }
}

diesel::table! {
    /// How many leads of each value of the `lead_value_counts` kinds had
    /// their latest message on each day (UTC), kept exact by triggers.
    lead_activity_days (kind, value, day) {
        kind -> Text,
        value -> Text,
        day -> Date,
        leads -> BigInt,
    }
}

diesel::table! {
    /// How many leads were created on each day (UTC), kept exact by
    /// triggers.
    lead_created_days (day) {
        day -> Date,
        leads -> BigInt,
    }
}
