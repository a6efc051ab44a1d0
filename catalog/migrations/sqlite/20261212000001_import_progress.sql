-- Progress of a running import, written by the job that runs it about once
-- a second (never once per row): rows and bytes done so far, when its
-- current run started and when progress was last written (Unix
-- milliseconds). NULL until a run records progress.
ALTER TABLE import_jobs ADD COLUMN progress_rows BIGINT;
ALTER TABLE import_jobs ADD COLUMN progress_bytes BIGINT;
ALTER TABLE import_jobs ADD COLUMN run_started_at BIGINT;
ALTER TABLE import_jobs ADD COLUMN progress_at BIGINT;
