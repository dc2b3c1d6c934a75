-- The warehouse: schemas by layer, grants by role, default privileges so that new tables
-- inherit the right grants. Run as an administrator in the warehouse database. Idempotent.
--
--   landing, raw, quarantine, ops   <- loader   (checked batches, rejected rows, audit)
--   staging, marts         <- transformer   (dbt)
--   publish_candidate      <- transformer   (dbt builds the published models here)
--   reporting              <- transformer   (`safeguard release` only: the published layer, small
--                                            counts suppressed; never written by dbt)
--   releases               <- administrator (every release's rows, append only: audit)
--   cases, snapshots       <- transformer   (dbt: one row per case, exact times; status history)
--
-- Who reads what:  transformer: raw, ops       analyst: marts, publish_candidate, reporting, ops
--                  engineer: raw, ops, marts, cases, snapshots, publish_candidate, reporting,
--                            releases
--                  viewer: reporting only     quarantine: the loader alone
-- Case-level data (one row per case with exact times) lives in cases and snapshots, which only
-- the engineer reads; analysts get marts.fct_hotline_cases_coarse (month, bands, no rare
-- combinations) instead.

revoke all on database :"warehouse_db" from public;
grant connect on database :"warehouse_db" to
    :"loader", :"transformer", :"analyst", :"engineer",
    :"viewer";
revoke create on schema public from public;
-- dbt unit tests build their fixtures as temporary tables
grant temporary on database :"warehouse_db" to :"transformer";
-- the loader's rule pass keeps a batch's failing rows in a temporary table until it commits
grant temporary on database :"warehouse_db" to :"loader";

create schema if not exists raw authorization :"loader";
-- landing: one batch at a time per source, checked before anything reaches raw; the loader's
-- alone (no role reads it, not even the transformer), emptied after every batch
create schema if not exists landing authorization :"loader";
revoke all on schema landing from public;
create schema if not exists quarantine authorization :"loader";
create schema if not exists ops authorization :"loader";
create schema if not exists staging authorization :"transformer";
create schema if not exists marts authorization :"transformer";
create schema if not exists reporting authorization :"transformer";
create schema if not exists publish_candidate authorization :"transformer";
create schema if not exists snapshots authorization :"transformer";
create schema if not exists cases authorization :"transformer";

-- the transformer reads what was landed, and the audit trail
grant usage on schema raw, ops to :"transformer";
grant select on all tables in schema raw, ops to :"transformer";
alter default privileges for role :"loader" in schema raw
    grant select on tables to :"transformer";
alter default privileges for role :"loader" in schema ops
    grant select on tables to :"transformer";

-- analysts: modelled (aggregates, coarsened cases) and published layers, plus the audit trail
grant usage on schema marts, reporting, ops to :"analyst";
grant select on all tables in schema marts, reporting, ops to :"analyst";
alter default privileges for role :"transformer" in schema marts
    grant select on tables to :"analyst";
alter default privileges for role :"transformer" in schema reporting
    grant select on tables to :"analyst";
alter default privileges for role :"loader" in schema ops
    grant select on tables to :"analyst";
-- not case-level data: the status history (and, before schema cases, the case facts in marts)
revoke all on all tables in schema snapshots from :"analyst";
revoke usage on schema snapshots from :"analyst";
alter default privileges for role :"transformer" in schema snapshots
    revoke select on tables from :"analyst";
drop table if exists marts.fct_hotline_cases, marts.fct_case_exploitation_types;

-- data engineers: everything but landing and quarantine, case level included
grant usage on schema raw, ops, marts, cases, snapshots, reporting to :"engineer";
grant select on all tables in schema raw, ops, marts, cases, snapshots, reporting
    to :"engineer";
alter default privileges for role :"loader" in schema raw, ops
    grant select on tables to :"engineer";
alter default privileges for role :"transformer" in schema marts, cases, snapshots, reporting
    grant select on tables to :"engineer";

-- viewers: the published layer only
grant usage on schema reporting to :"viewer";
grant select on all tables in schema reporting to :"viewer";
alter default privileges for role :"transformer" in schema reporting
    grant select on tables to :"viewer";

-- landing tables lived in raw (where the transformer could read them) before schema landing
do $$
declare t record;
begin
    for t in select tablename from pg_tables where schemaname = 'raw'
             and tablename like 'landing\_\_%' loop
        execute format('drop table raw.%I', t.tablename);
    end loop;
end $$;

-- publish_candidate: dbt builds the published models here; periods still under embargo and
-- revisions the release gate holds are in it, so the viewer never reads it
grant usage on schema publish_candidate to :"analyst", :"engineer";
grant select on all tables in schema publish_candidate to :"analyst", :"engineer";
alter default privileges for role :"transformer" in schema publish_candidate
    grant select on tables to :"analyst", :"engineer";

-- releases: every release's published rows, kept for audit (safeguard.release). Owned by the
-- administrator: the transformer may add a release's rows and read them back, nobody may change
-- or remove them; engineers read them; the viewer and analysts have no access (nor, by
-- 04_catalog.sql, any way to learn their size).
create schema if not exists releases;
revoke all on schema releases from public;
grant usage on schema releases to :"transformer", :"engineer";
create table if not exists releases.release_rows (
    release_no  int not null,       -- ops.releases.release_no
    table_name  text not null,      -- the published table (reporting.<table_name>)
    row_data    jsonb not null      -- one published row, as to_jsonb() gives it
);
create index if not exists release_rows_release on releases.release_rows (release_no, table_name);
revoke all on releases.release_rows from public;
grant select, insert on releases.release_rows to :"transformer";
grant select on releases.release_rows to :"engineer";
