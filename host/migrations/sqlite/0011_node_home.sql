-- The data directory a node ran on (an id kept in the directory). A host holds its data
-- directory's lock while it runs, so the nodes that ran there before it are gone: a host that
-- starts again takes back their runs at once instead of after their leases.
ALTER TABLE nodes ADD COLUMN home TEXT;
