-- The warehouse: schemas by layer, grants by role, default privileges so that new tables
-- inherit the right grants. Run as an administrator in the warehouse database. Idempotent.
--
--   landing, raw, quarantine, ops   <- loader   (checked batches, rejected rows, audit)
--   staging, marts         <- transformer   (dbt)
--   reporting              <- transformer   (dbt; the published layer, small counts suppressed)
--   cases, snapshots       <- transformer   (dbt: one row per case, exact times; status history)
--
-- Who reads what:  transformer: raw, ops       analyst: marts, reporting, ops
--                  engineer: raw, ops, marts, cases, snapshots, reporting
--                  viewer: reporting only     quarantine: the loader alone
-- Case-level data (one row per case with exact times) lives in cases and snapshots, which only
-- the engineer reads; analysts get marts.fct_hotline_cases_coarse (month, bands, no rare
-- combinations) instead.

revoke all on database :"warehouse_db" from public;
grant connect on database :"warehouse_db" to
    safeguard_loader, safeguard_transformer, safeguard_analyst, safeguard_engineer,
    safeguard_viewer;
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
create schema if not exists cases authorization safeguard_transformer;

-- the transformer reads what was landed, and the audit trail
grant usage on schema raw, ops to safeguard_transformer;
grant select on all tables in schema raw, ops to safeguard_transformer;
alter default privileges for role safeguard_loader in schema raw
    grant select on tables to safeguard_transformer;
alter default privileges for role safeguard_loader in schema ops
    grant select on tables to safeguard_transformer;

-- analysts: modelled (aggregates, coarsened cases) and published layers, plus the audit trail
grant usage on schema marts, reporting, ops to safeguard_analyst;
grant select on all tables in schema marts, reporting, ops to safeguard_analyst;
alter default privileges for role safeguard_transformer in schema marts
    grant select on tables to safeguard_analyst;
alter default privileges for role safeguard_transformer in schema reporting
    grant select on tables to safeguard_analyst;
alter default privileges for role safeguard_loader in schema ops
    grant select on tables to safeguard_analyst;
-- not case-level data: the status history (and, before schema cases, the case facts in marts)
revoke all on all tables in schema snapshots from safeguard_analyst;
revoke usage on schema snapshots from safeguard_analyst;
alter default privileges for role safeguard_transformer in schema snapshots
    revoke select on tables from safeguard_analyst;
drop table if exists marts.fct_hotline_cases, marts.fct_case_exploitation_types;

-- data engineers: everything but landing and quarantine, case level included
grant usage on schema raw, ops, marts, cases, snapshots, reporting to safeguard_engineer;
grant select on all tables in schema raw, ops, marts, cases, snapshots, reporting
    to safeguard_engineer;
alter default privileges for role safeguard_loader in schema raw, ops
    grant select on tables to safeguard_engineer;
alter default privileges for role safeguard_transformer in schema marts, cases, snapshots, reporting
    grant select on tables to safeguard_engineer;

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
