-- Tenant isolation: tenant database roles (and any other role of the
-- server) may neither connect to the catalog's database nor create objects
-- in its `public` schema (PostgreSQL 14 and older grant both to PUBLIC).
-- The owner keeps its rights; a catalog account that does not own the
-- database cannot revoke anything, and PostgreSQL then only warns.
DO $$
BEGIN
    EXECUTE format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
END
$$;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
