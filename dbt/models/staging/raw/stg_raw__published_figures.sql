with

source as (
    select * from {{ source('raw', 'published_figures') }}
),

renamed as (
    select
        batch_id,
        source_row_number,
        source_name,
        publisher,
        series,
        is_synthetic,
        year as figure_year,
        category as category_code,
        category_label,
        value as figure_value,
        coalesce(is_total, false) as is_total
    from source
)

select * from renamed
