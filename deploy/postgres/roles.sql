-- Least privilege for one flashcore database. Run once, as a superuser (or the
-- database's owner), connected to that database:
--
--   psql "postgres://admin@db/flashcore" -v owner=flashcore_owner -v app=flashcore_app \
--        -f deploy/postgres/roles.sql
--
-- It creates two login roles (if they do not exist):
--
--   :owner  owns the schema: flashcore applies its migrations as this role
--           (FLASHCORE_MIGRATE_DATABASE_URL), and nothing else runs as it;
--   :app    what the service connects as (DATABASE_URL): it reads and writes
--           the tables, and cannot create, alter or drop anything.
--
-- Passwords are never in this file: set them afterwards from your secret store
-- (ALTER ROLE … PASSWORD, or your operator's password management).
\set ON_ERROR_STOP on

SELECT format('CREATE ROLE %I LOGIN', :'owner')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner') \gexec
SELECT format('CREATE ROLE %I LOGIN', :'app')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app') \gexec

-- Only the owner may create in the schema (PostgreSQL 15 already revokes it
-- from PUBLIC; older versions grant it to everyone).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO :"owner";
GRANT USAGE ON SCHEMA public TO :"app";
SELECT format('GRANT CONNECT ON DATABASE %I TO %I, %I', current_database(), :'owner', :'app') \gexec

-- What the owner creates from now on (every migration), the app may use.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
  GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
  GRANT EXECUTE ON FUNCTIONS TO :"app";

-- And what the owner already created (running this on a migrated database).
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"app";
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO :"app";
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO :"app";
