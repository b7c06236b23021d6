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

diesel::joinable!(leads -> students (student_id));
diesel::joinable!(messages -> leads (lead_id));
diesel::allow_tables_to_appear_in_same_query!(students, leads, messages, webhook_failures);

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
