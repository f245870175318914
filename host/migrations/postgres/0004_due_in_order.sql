-- The due schedules in the order a claim takes them (fire time, then id): schedules due at the
-- same instant (every schedule of an hourly cron, say) were sorted whole by id at every claim
-- pass, to take the first batch of them; the index gives them in that order.
DROP INDEX schedules_due;
CREATE INDEX schedules_due ON schedules (next_fire_us, id) WHERE paused = FALSE AND next_fire_us IS NOT NULL;
