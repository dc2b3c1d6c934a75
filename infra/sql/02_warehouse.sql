-- The warehouse: schemas by layer, grants by role, default privileges so that new tables
-- inherit the right grants. Run as an administrator in the warehouse database. Idempotent.
--
--   landing, raw, quarantine, ops   <- loader   (checked batches, rejected rows, audit)
--   staging, marts         <- transformer   (dbt)
--   reporting              <- transformer   (dbt; the published layer, small counts suppressed)
--   snapshots              <- transformer   (dbt snapshots: case status history)
--
-- Who reads what:  transformer: raw, ops       analyst: marts, reporting, snapshots, ops
--                  viewer: reporting only     quarantine: the loader alone

revoke all on database :"warehouse_db" from public;
grant connect on database :"warehouse_db" to
    safeguard_loader, safeguard_transformer, safeguard_analyst, safeguard_viewer;
revoke create on schema public from public;
-- dbt unit tests build their fixtures as temporary tables
grant temporary on database :"warehouse_db" to safeguard_transformer;
-- the loader's rule pass keeps a batch's failing rows in a temporary table until it commits
grant temporary on database :"warehouse_db" to safeguard_loader;

create schema if not exists raw authorization safeguard_loader;
-- landing: one batch at a time per source, checked before anything reaches raw; the loader's
-- alone (no role reads it, not even the transformer), emptied after every batch
create schema if not exists landing authorization safeguard_loader;
revoke all on schema landing from public;
create schema if not exists quarantine authorization safeguard_loader;
create schema if not exists ops authorization safeguard_loader;
create schema if not exists staging authorization safeguard_transformer;
create schema if not exists marts authorization safeguard_transformer;
create schema if not exists reporting authorization safeguard_transformer;
create schema if not exists snapshots authorization safeguard_transformer;

-- the transformer reads what was landed, and the audit trail
grant usage on schema raw, ops to safeguard_transformer;
grant select on all tables in schema raw, ops to safeguard_transformer;
alter default privileges for role safeguard_loader in schema raw
    grant select on tables to safeguard_transformer;
alter default privileges for role safeguard_loader in schema ops
    grant select on tables to safeguard_transformer;

-- analysts: modelled and published layers, case status history, plus the audit trail
grant usage on schema marts, reporting, snapshots, ops to safeguard_analyst;
grant select on all tables in schema marts, reporting, snapshots, ops to safeguard_analyst;
alter default privileges for role safeguard_transformer in schema marts
    grant select on tables to safeguard_analyst;
alter default privileges for role safeguard_transformer in schema reporting
    grant select on tables to safeguard_analyst;
alter default privileges for role safeguard_transformer in schema snapshots
    grant select on tables to safeguard_analyst;
alter default privileges for role safeguard_loader in schema ops
    grant select on tables to safeguard_analyst;

-- viewers: the published layer only
grant usage on schema reporting to safeguard_viewer;
grant select on all tables in schema reporting to safeguard_viewer;
alter default privileges for role safeguard_transformer in schema reporting
    grant select on tables to safeguard_viewer;

-- landing tables lived in raw (where the transformer could read them) before schema landing
do $$
declare t record;
begin
    for t in select tablename from pg_tables where schemaname = 'raw'
             and tablename like 'landing\_\_%' loop
        execute format('drop table raw.%I', t.tablename);
    end loop;
end $$;
