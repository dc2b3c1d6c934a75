-- A publisher revises figures: when a later delivery carries the same year and category,
-- the latest delivery wins. Ordering is by when the batch finished loading, among the batches
-- whose rows are in raw.
with

figures as (
    select * from {{ ref('stg_raw__published_figures') }}
),

batches as (
    select * from {{ ref('stg_ops__batches') }}
),

ranked as (
    select
        figures.*,
        batches.finished_at as batch_finished_at,
        row_number() over (
            partition by figures.source_name, figures.category_code, figures.figure_year
            order by batches.finished_at desc, figures.batch_id desc
        ) as delivery_rank
    from figures
    inner join batches on figures.batch_id = batches.batch_id
    where batches.has_loaded_rows
),

final as (
    select
        source_name,
        publisher,
        series,
        is_synthetic,
        category_code,
        category_label,
        figure_year,
        figure_value,
        is_total,
        batch_id
    from ranked
    where delivery_rank = 1
)

select * from final
