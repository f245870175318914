-- Count every execution record as it is written, inside SQLite: a writer then needs no extra
-- statement (and no extra round trip) to keep the lifetime count.
CREATE TRIGGER executions_lifetime AFTER INSERT ON executions
BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'lifetime_executions';
END;
