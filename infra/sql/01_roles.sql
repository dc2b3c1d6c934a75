-- Roles, one job each (least privilege). Idempotent: safe to run on every start.
-- Passwords are set by `safeguard db up` from $SAFEGUARD_HOME/secrets.env (never in git).
do $$
declare
    r text;
begin
    foreach r in array array[
        'safeguard_loader',       -- lands files: writes raw, quarantine, ops
        'safeguard_transformer',  -- dbt: reads raw, writes staging, marts, reporting
        'safeguard_analyst',      -- self-service: aggregates, coarsened cases and reporting
        'safeguard_engineer',     -- data engineers: exact case-level data (cases, snapshots, raw)
        'safeguard_viewer',       -- dashboards for leadership and the public: reporting only
        'safeguard_airflow',      -- owns the Airflow metadata database
        'safeguard_superset'      -- owns the Superset metadata database
    ] loop
        if not exists (select from pg_roles where rolname = r) then
            execute format('create role %I login nosuperuser nocreatedb nocreaterole noinherit', r);
        end if;
    end loop;
end
$$;
