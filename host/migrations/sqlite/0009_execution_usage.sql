-- What an attempt used outside its instance (HTTP requests, hosts, bytes, directories), as JSON;
-- NULL when it used nothing (or ran on a remote handler).
ALTER TABLE executions ADD COLUMN usage TEXT;
