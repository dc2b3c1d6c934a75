with

source as (
    select * from {{ source('raw', 'published_figures') }}
),

renamed as (
    select
        batch_id,
        source_row_number,
        -- what the figure is: publisher, series, measure, dimensions, period
        publisher,
        series,
        category as category_code,
        country_code,
        region,
        age_group,
        sex,
        channel as channel_code,
        year as figure_year,
        quarter as figure_quarter,
        month as figure_month,
        -- its value, and how its source describes it
        value as figure_value,
        coalesce(is_total, false) as is_total,
        total_reconciles,
        reconcile_note,
        category_label,
        category_name as contract_category_name,
        publisher_name,
        series_name,
        coalesce(unit, 'count') as unit,
        -- where it comes from, and which source wins when several deliver it
        source_name,
        source_url,
        coalesce(source_role, 'primary') as source_role,
        edition,
        is_synthetic
    from source
),

with_period as (
    select
        *,
        case
            when figure_month is not null then 'month'
            when figure_quarter is not null then 'quarter'
            else 'year'
        end as period_type,
        make_date(
            figure_year,
            coalesce(figure_month, (coalesce(figure_quarter, 1) - 1) * 3 + 1),
            1
        ) as period_start
    from renamed
)

select * from with_period
