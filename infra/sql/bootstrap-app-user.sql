-- One-time bootstrap of the application users for multi-user ("alternating users") rotation.
--
-- Run it as the RDS master user (secret users-service/<env>/database-master), connected to the
-- `users` database, once per environment after the first `cdk deploy` and before the service is
-- deployed with the application secret (procedure: infra/README.md, "Bootstrap of the application user"):
--
--   psql "host=<endpoint> user=users_service dbname=users sslmode=require" \
--     -v app_password=<password of users-service/<env>/database> -f bootstrap-app-user.sql
--
-- What it creates:
--   users_owner      NOLOGIN role that owns every table the service creates;
--   users_app        the user in users-service/<env>/database, with that secret's password;
--   users_app_clone  the user the rotation function alternates to (random password: the first
--                    rotation sets the real one).
-- Both login users are members of users_owner and start every session as users_owner
-- (ALTER ROLE ... SET role), so a table created by the migration Job under either user is
-- owned by users_owner and stays usable, and alterable, after the next rotation switches users.
-- Without this, a table created as users_app_clone would belong to it alone and users_app
-- could not read it after the rotation after that.
--
-- Safe to re-run: existing roles keep their passwords (the rotation function owns them from the
-- first rotation on); grants and settings are re-applied.
-- Run it as the master user and nobody else: on PostgreSQL 16+ only a role's creator (or a holder of
-- ADMIN OPTION on it) may change its password, and the rotation function signs in as master.

\set ON_ERROR_STOP on
\if :{?app_password}
\else
  \echo 'app_password is not set: psql -v app_password=<password of users-service/<env>/database> ...'
  SELECT 1 / 0 AS app_password_missing;
\endif

-- psql variables are not expanded inside dollar-quoted blocks; pass the password as a session setting.
SELECT set_config('bootstrap.app_password', :'app_password', false) IS NOT NULL AS app_password_received;

BEGIN;

DO $bootstrap$
DECLARE
  pw text := current_setting('bootstrap.app_password');
BEGIN
  IF length(pw) < 16 THEN
    RAISE EXCEPTION 'app_password is % characters long; expected the generated password of users-service/<env>/database', length(pw);
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'users_owner') THEN
    CREATE ROLE users_owner NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'users_app') THEN
    EXECUTE format('CREATE ROLE users_app LOGIN PASSWORD %L', pw);
  ELSE
    RAISE NOTICE 'users_app exists: password left unchanged';
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'users_app_clone') THEN
    EXECUTE format('CREATE ROLE users_app_clone LOGIN PASSWORD %L', md5(random()::text || clock_timestamp()::text) || md5(random()::text));
  ELSE
    RAISE NOTICE 'users_app_clone exists: password left unchanged';
  END IF;
  -- The database name is only known at run time; GRANT takes no expression.
  EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO users_owner', current_database());
END
$bootstrap$;

-- Membership: both login users act as users_owner; the master user too, so that it may hand over
-- objects it created (below) and administer the tables.
GRANT users_owner TO users_app, users_app_clone;
GRANT users_owner TO CURRENT_USER;
ALTER ROLE users_app SET role = 'users_owner';
ALTER ROLE users_app_clone SET role = 'users_owner';
-- PostgreSQL 15+ no longer lets every user create in schema public.
GRANT USAGE, CREATE ON SCHEMA public TO users_owner;

-- An environment that ran with the master credentials before: hand its tables, views and
-- sequences in public to users_owner (a table's owned sequences and indexes follow it).
DO $handover$
DECLARE
  r record;
BEGIN
  FOR r IN
    SELECT c.oid::regclass AS rel,
           CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END AS kind
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'public'
       AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
       AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
       -- sequences owned by a column move with their table
       AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i'))
     ORDER BY c.relkind = 'S'
  LOOP
    EXECUTE format('ALTER %s %s OWNER TO users_owner', r.kind, r.rel);
    RAISE NOTICE 'handed % % to users_owner', lower(r.kind), r.rel;
  END LOOP;
END
$handover$;

COMMIT;

SELECT r.rolname, r.rolcanlogin, array_remove(array_agg(m.rolname), NULL) AS member_of, s.setconfig
  FROM pg_roles r
  LEFT JOIN pg_auth_members am ON am.member = r.oid
  LEFT JOIN pg_roles m ON m.oid = am.roleid
  LEFT JOIN pg_db_role_setting s ON s.setrole = r.oid AND s.setdatabase = 0
 WHERE r.rolname IN ('users_owner', 'users_app', 'users_app_clone')
 GROUP BY r.rolname, r.rolcanlogin, s.setconfig
 ORDER BY r.rolname;
