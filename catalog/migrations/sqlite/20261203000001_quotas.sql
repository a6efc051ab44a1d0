-- Per-tenant quota overrides (`passerelle tenant quota`): NULL means the
-- `[quotas]` default of the configuration applies.
ALTER TABLE tenants ADD COLUMN quota_bytes BIGINT;
ALTER TABLE tenants ADD COLUMN quota_files BIGINT;
