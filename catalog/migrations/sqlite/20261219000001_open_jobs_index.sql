-- The scheduler asks, after every job, for each tenant's oldest open job,
-- and a finishing job asks whether a newer file of its name is open: both
-- read only open jobs, a handful among every job ever recorded.
CREATE INDEX import_jobs_open ON import_jobs(tenant, received_at, id)
    WHERE status NOT IN ('imported', 'rejected', 'duplicate');
