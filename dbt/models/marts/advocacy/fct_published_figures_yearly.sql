-- Published figures, one per identity (publisher, series, measure, dimensions, period), with
-- the change on the period before: the numbers advocacy quotes ("online enticement reports
-- rose 97.5% from 2019 to 2020"). Yearly figures mostly; a publisher's quarterly or monthly
-- figures are compared with the quarter or month before.
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
        lag(figures.figure_value) over series_of_figure as previous_value,
        lag(figures.period_start) over series_of_figure as previous_period_start
    from figures
    window series_of_figure as (
        partition by figures.publisher, figures.series, figures.category_code,
            figures.country_code, figures.region, figures.age_group, figures.sex,
            figures.channel_code, figures.period_type
        order by figures.period_start
    )
),

with_step as (
    select
        *,
        -- only the period just before counts as "the period before"
        previous_period_start = (period_start - case period_type
            when 'month' then interval '1 month'
            when 'quarter' then interval '3 months'
            else interval '1 year' end)::date as follows_previous
    from with_previous
),

final as (
    select
        md5(concat_ws('|', with_step.publisher, with_step.series, with_step.category_code,
            with_step.country_code, with_step.region, with_step.age_group, with_step.sex,
            with_step.channel_code, with_step.period_type, with_step.period_start))
            as figure_id,
        with_step.publisher,
        with_step.publisher_name,
        with_step.series,
        with_step.series_name,
        with_step.category_code,
        -- the contract's display name, else the seed's, else the publisher's own label
        coalesce(with_step.contract_category_name, categories.category_name,
            with_step.category_label) as category_name,
        with_step.category_label,
        with_step.country_code,
        with_step.region,
        with_step.age_group,
        with_step.sex,
        with_step.channel_code,
        with_step.period_type,
        with_step.period_start,
        case with_step.period_type
            when 'month' then to_char(with_step.period_start, 'YYYY-MM')
            when 'quarter' then with_step.figure_year || '-Q' || with_step.figure_quarter
            else with_step.figure_year::text
        end as period_label,
        with_step.figure_year,
        with_step.figure_value,
        with_step.unit,
        case when with_step.follows_previous then with_step.previous_value end
            as previous_value,
        case when with_step.follows_previous
            then with_step.figure_value - with_step.previous_value end as yoy_change_count,
        case when with_step.follows_previous and with_step.previous_value > 0
            then round(100.0 * (with_step.figure_value - with_step.previous_value)
                / with_step.previous_value, 1) end as yoy_change_pct,
        -- a published total of the other categories: never add it to them
        with_step.is_total,
        -- false where the figure's group has a published total its parts do not add up to
        coalesce(with_step.total_reconciles = false, false) as has_warning,
        with_step.reconcile_note as warning_note,
        with_step.source_name,
        with_step.source_url,
        with_step.source_role,
        with_step.edition,
        with_step.is_synthetic,
        with_step.delivery_count,
        with_step.batch_id
    from with_step
    left join categories on with_step.category_code = categories.category_code
)

select * from final
