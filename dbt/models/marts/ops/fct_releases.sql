-- Releases of the published tables (safeguard.release), one row per release and table: what
-- each release changed - periods published for the first time, revised, held back by the
-- revision gate, still under embargo - as counts, never values. A view: a release is made after
-- the dbt build, and Pipeline health shows it at once.
with

releases as (
    select * from {{ ref('stg_ops__releases') }}
),

release_tables as (
    select * from {{ ref('stg_ops__release_tables') }}
),

final as (
    select
        releases.release_no,
        releases.as_of_date,
        releases.embargo_days,
        releases.released_at,
        (releases.released_at at time zone 'UTC')::date as released_date,
        releases.run_by,
        release_tables.table_name,
        release_tables.rows_published_count,
        release_tables.periods_new_count,
        release_tables.periods_revised_count,
        release_tables.periods_held_count,
        release_tables.periods_embargoed_count,
        release_tables.cells_changed_count,
        release_tables.cells_held_count,
        release_tables.held_periods,
        releases.release_no = max(releases.release_no) over () as is_latest
    from releases
    inner join release_tables on releases.release_no = release_tables.release_no
)

select * from final
