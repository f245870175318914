-- Fewer index entries to rewrite per run. A status index over every record changed on every
-- attempt's end; the only status the API looks up by index is `error` (recent errors), and the
-- only runs looked up by status are the unfinished ones (recovery). Partial indexes keep those
-- lookups and drop the rest of the churn.
DROP INDEX executions_by_status;
CREATE INDEX executions_errors ON executions (id) WHERE status = 'error';
DROP INDEX runs_by_status;
CREATE INDEX runs_unfinished ON runs (fire_us, id) WHERE status IN ('pending', 'running');
