-- Published yearly figures with their change on the year before: the numbers advocacy
-- quotes ("online enticement reports rose 97.5% from 2019 to 2020").
with

figures as (
    select * from {{ ref('int_published_figures_deduplicated') }}
),

categories as (
    select * from {{ ref('published_categories') }}
),

with_previous as (
    select
        figures.*,
        lag(figures.figure_value) over (
            partition by figures.source_name, figures.category_code
            order by figures.figure_year
        ) as previous_value,
        lag(figures.figure_year) over (
            partition by figures.source_name, figures.category_code
            order by figures.figure_year
        ) as previous_year
    from figures
),

final as (
    select
        with_previous.source_name || '|' || with_previous.category_code || '|'
        || with_previous.figure_year as figure_id,
        with_previous.source_name,
        with_previous.publisher,
        with_previous.series,
        with_previous.is_synthetic,
        with_previous.category_code,
        -- a category no seed describes (a new publisher's table) shows its own label
        coalesce(categories.category_name, with_previous.category_label) as category_name,
        with_previous.category_label,
        with_previous.figure_year,
        with_previous.figure_value,
        -- only a consecutive year counts as "the year before"
        case when with_previous.previous_year = with_previous.figure_year - 1
            then with_previous.previous_value end as previous_value,
        case when with_previous.previous_year = with_previous.figure_year - 1
            then with_previous.figure_value - with_previous.previous_value end as yoy_change_count,
        case when with_previous.previous_year = with_previous.figure_year - 1
                and with_previous.previous_value > 0
            then round(100.0 * (with_previous.figure_value - with_previous.previous_value)
                / with_previous.previous_value, 1) end as yoy_change_pct,
        -- a published total of the other categories: never add it to them
        with_previous.is_total,
        with_previous.batch_id
    from with_previous
    left join categories on with_previous.category_code = categories.category_code
)

select * from final
