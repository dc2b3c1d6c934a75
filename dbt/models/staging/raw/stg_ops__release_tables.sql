with

source as (
    select * from {{ source('ops', 'release_tables') }}
),

renamed as (
    select
        release_no,
        table_name,
        rows_published as rows_published_count,
        groups_new as periods_new_count,
        groups_revised as periods_revised_count,
        groups_held as periods_held_count,
        groups_embargoed as periods_embargoed_count,
        cells_changed as cells_changed_count,
        cells_held as cells_held_count,
        held_periods
    from source
)

select * from renamed
