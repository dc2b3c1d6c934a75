-- Roles, one job each (least privilege). Idempotent: safe to run on every start.
-- Passwords are set by `safeguard db up` from $SAFEGUARD_HOME/secrets.env (never in git).
do $$
declare
    r text;
begin
    foreach r in array array[
        :'loader',       -- lands files: writes raw, quarantine, ops
        :'transformer',  -- dbt: reads raw, writes staging, marts, reporting
        :'analyst',      -- self-service: aggregates, coarsened cases and reporting
        :'engineer',     -- data engineers: exact case-level data (cases, snapshots, raw)
        :'viewer',       -- dashboards for leadership and the public: reporting only
        :'airflow',      -- owns the Airflow metadata database
        :'superset'      -- owns the Superset metadata database
    ] loop
        if not exists (select from pg_roles where rolname = r) then
            execute format('create role %I login nosuperuser nocreatedb nocreaterole noinherit', r);
        end if;
    end loop;
end
$$;
