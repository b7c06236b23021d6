DROP TABLE webhook_failures;
DROP TABLE messages;
DROP TABLE leads;
DROP TABLE students;
