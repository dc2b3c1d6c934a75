-- The few numbers leadership quotes, one row per metric, each with unit, period and source.
-- Every metric has its row even when its data is not loaded yet (value NULL then).
with

published as (
    select * from {{ ref('fct_published_figures_yearly') }}
),

coverage as (
    select * from {{ ref('fct_legislation_coverage') }}
),

cases as (
    select * from {{ ref('fct_hotline_cases') }}
),

enticement as (
    -- one figure, chosen by what it is: NCMEC's CyberTipline reports of online enticement,
    -- world-wide, for the year 2020 (each identity is in the published facts once, already
    -- chosen by declared precedence among the sources that deliver it)
    select
        figure_value,
        previous_value,
        series_name,
        source_name,
        is_synthetic
    from published
    where publisher = 'ncmec'
        and series = 'cybertipline_reports'
        and category_code = 'online_enticement'
        and period_type = 'year'
        and figure_year = 2020
        and country_code is null
        and region is null
        and age_group is null
        and sex is null
        and channel_code is null
),

enticement_metric as (
    select
        'enticement_change_2019_2020_pct' as metric_code,
        'Change in online-enticement reports to NCMEC, 2019 to 2020 ('
            || coalesce(enticement.series_name, 'CyberTipline reports') || ')' as metric_name,
        {{ published_pct_change('enticement.figure_value', 'enticement.previous_value') }}::numeric
            as value,
        'percent' as unit,
        '2019 to 2020' as period_label,
        enticement.source_name,
        coalesce(enticement.is_synthetic, false) as is_synthetic,
        false as is_suppressed,
        1 as sort_order
    from (select 1) as one_row
    left join enticement on true
),

legislation_metrics as (
    select
        metrics.metric_code,
        metrics.metric_name,
        case metrics.measure
            when 'reviewed' then coverage.countries_reviewed
            else coverage.countries_with_law
        end::numeric as value,
        'countries' as unit,
        editions.edition_label as period_label,
        coverage.source_name,
        coalesce(coverage.is_synthetic, false) as is_synthetic,
        false as is_suppressed,
        metrics.sort_order
    from (
        values
            ('countries_reviewed_ed1', 'Countries reviewed by ICMEC (1st edition)', 1, 'reviewed', 2),
            ('countries_with_grooming_law_ed1',
                'Countries with dedicated online-grooming legislation (1st edition)', 1, 'with_law', 3),
            ('countries_reviewed_ed2', 'Countries reviewed by ICMEC (2nd edition)', 2, 'reviewed', 4),
            ('countries_with_grooming_law_ed2',
                'Countries with dedicated online-grooming legislation (2nd edition)', 2, 'with_law', 5)
    ) as metrics (metric_code, metric_name, edition, measure, sort_order)
    inner join {{ ref('ref_legislation_editions') }} as editions
        on metrics.edition = editions.edition
    left join coverage
        on metrics.edition = coverage.edition
        and coverage.is_overall
),

hotline_summary as (
    select
        count(*) as case_count,
        count(*) filter (where is_triaged) as triaged_count,
        percentile_cont(0.5) within group (order by hours_to_triage) as median_hours_to_triage,
        min(received_month_start) as first_month,
        max(received_month_start) as last_month,
        string_agg(distinct source_organisation, '; ') as source_name,
        coalesce(bool_or(is_synthetic), false) as is_synthetic
    from cases
),

hotline_metrics as (
    select
        'hotline_cases_total' as metric_code,
        'Cases received by the hotline' as metric_name,
        {{ published_count('case_count') }}::numeric as value,
        'cases' as unit,
        to_char(first_month, 'YYYY-MM') || ' to ' || to_char(last_month, 'YYYY-MM') as period_label,
        source_name,
        is_synthetic,
        {{ is_suppressed('case_count') }} as is_suppressed,
        6 as sort_order
    from hotline_summary
    union all
    select
        'median_hours_to_triage' as metric_code,
        'Median hours from receipt to triage' as metric_name,
        case when triaged_count >= {{ min_published_count() }}
            then round(median_hours_to_triage::numeric, 1) end as value,
        'hours' as unit,
        to_char(first_month, 'YYYY-MM') || ' to ' || to_char(last_month, 'YYYY-MM') as period_label,
        source_name,
        is_synthetic,
        {{ is_suppressed('triaged_count') }} as is_suppressed,
        7 as sort_order
    from hotline_summary
),

unioned as (
    select * from enticement_metric
    union all
    select * from legislation_metrics
    union all
    select * from hotline_metrics
),

final as (
    select
        metric_code,
        metric_name,
        value,
        unit,
        period_label,
        source_name,
        sort_order,
        is_synthetic,
        is_suppressed
    from unioned
)

select * from final
