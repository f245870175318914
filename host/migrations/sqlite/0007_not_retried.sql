-- Why an attempt that failed was not retried (the failure kind is not in the policy's retry_on,
-- or it was the last attempt); NULL for attempts that succeeded or were retried.
ALTER TABLE executions ADD COLUMN not_retried TEXT;
