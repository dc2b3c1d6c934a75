-- Points that break their series' pattern: a flag that says "check this", never a correction.
-- PRIVACY: built from the PUBLISHED tables (reporting), not from the facts behind them, on
-- purpose: a flag must be a function of what the viewer can already read, or a flag on (or a
-- baseline through) a withheld cell would say something about a small count. A withheld point
-- (no published value) is never flagged and never enters a baseline.
-- Method (Iglewicz & Hoaglin's modified z-score on the residual of the series' own pattern):
--   monthly series: trend = median of the published values of the 13 months centred on the
--     point; season = median of (value - trend) of the same calendar month in the series'
--     other years (0 with fewer than three); expected = trend + season;
--   yearly series: slope = median of the year-on-year changes between consecutive published
--     years; level = median of (value - slope * years since the first); expected = level +
--     slope * years since the first;
--   residual = value - expected; robust z = 0.6745 (residual - median) / MAD over the series
--     (MAD = 0: (residual - median) / (1.2533 mean absolute deviation), else 0);
--   flagged when |z| > var('anomaly_z_threshold', 3.5) and the series has enough published
--     points (var('anomaly_min_points_yearly', 5), var('anomaly_min_points_monthly', 24)).
with

cases_monthly as (
    select * from {{ ref('rpt_cases_monthly') }}
),

published_figures as (
    select * from {{ ref('rpt_published_figures_yearly') }}
),

monthly_points as (
    -- the series "Cases per month by channel" plots: hotline and partners together, the sum of
    -- the month's published cells (NULL where none is published)
    select
        'cases_monthly_by_channel' as series_kind,
        'cases_monthly_by_channel:' || channel_code as series_key,
        'Cases per month, ' || channel_name || ' (hotline and partners)' as series_name,
        channel_code,
        channel_name,
        period_start,
        to_char(period_start, 'YYYY-MM') as period_label,
        sum(cases)::numeric as value,
        bool_or(is_synthetic) as is_synthetic
    from cases_monthly
    group by channel_code, channel_name, period_start
),

yearly_points as (
    select
        'published_figures_yearly' as series_kind,
        concat_ws(':', 'published_figures_yearly', publisher, series, category_code,
            coalesce(country_code, '-'), coalesce(region, '-'), coalesce(age_group, '-'),
            coalesce(sex, '-'), coalesce(channel_code, '-')) as series_key,
        concat_ws(', ', publisher_name || ': ' || series_name, coalesce(category_name, category_code),
            country_name, region, age_group, sex, channel_code) as series_name,
        channel_code,
        null::text as channel_name,
        make_date(year, 1, 1) as period_start,
        period_label,
        figure_value::numeric as value,
        is_synthetic
    from published_figures
    where period_type = 'year'
),

-- monthly: trend and season from published values only ----------------------------------

monthly_trend as (
    select
        point.series_key,
        point.period_start,
        percentile_cont(0.5) within group (order by around.value) as trend_value,
        count(*) as window_count
    from monthly_points as point
    inner join monthly_points as around
        on around.series_key = point.series_key
        and around.period_start between point.period_start - interval '6 months'
        and point.period_start + interval '6 months'
        and around.value is not null
    where point.value is not null
    group by point.series_key, point.period_start
),

monthly_detrended as (
    select
        monthly_points.*,
        case when monthly_trend.window_count >= 5 then monthly_trend.trend_value end as trend_value,
        monthly_points.value - case when monthly_trend.window_count >= 5
            then monthly_trend.trend_value end as detrended_value
    from monthly_points
    left join monthly_trend
        on monthly_points.series_key = monthly_trend.series_key
        and monthly_points.period_start = monthly_trend.period_start
),

monthly_season as (
    select
        point.series_key,
        point.period_start,
        percentile_cont(0.5) within group (order by other.detrended_value) as season_value,
        count(*) as other_year_count
    from monthly_detrended as point
    inner join monthly_detrended as other
        on other.series_key = point.series_key
        and extract(month from other.period_start) = extract(month from point.period_start)
        and other.period_start <> point.period_start
        and other.detrended_value is not null
    where point.detrended_value is not null
    group by point.series_key, point.period_start
),

monthly_expected as (
    select
        monthly_detrended.series_kind,
        monthly_detrended.series_key,
        monthly_detrended.series_name,
        monthly_detrended.channel_code,
        monthly_detrended.channel_name,
        monthly_detrended.period_start,
        monthly_detrended.period_label,
        monthly_detrended.value,
        monthly_detrended.is_synthetic,
        monthly_detrended.trend_value + case when monthly_season.other_year_count >= 3
            then monthly_season.season_value else 0 end as expected_value,
        'monthly: value - (centred 13-month median + same-month median of other years);'
        || ' robust z (median, MAD), |z| > {{ var("anomaly_z_threshold", 3.5) }}' as method,
        {{ var('anomaly_min_points_monthly', 24) }} as min_points
    from monthly_detrended
    left join monthly_season
        on monthly_detrended.series_key = monthly_season.series_key
        and monthly_detrended.period_start = monthly_season.period_start
),

-- yearly: a trend of the median year-on-year change --------------------------------------

yearly_changes as (
    select
        this_year.series_key,
        percentile_cont(0.5) within group (
            order by this_year.value - last_year.value) as slope
    from yearly_points as this_year
    inner join yearly_points as last_year
        on last_year.series_key = this_year.series_key
        and last_year.period_start = this_year.period_start - interval '1 year'
    where this_year.value is not null and last_year.value is not null
    group by this_year.series_key
),

yearly_detrended as (
    select
        yearly_points.*,
        yearly_changes.slope
        * (extract(year from yearly_points.period_start) - min(extract(year from yearly_points.period_start))
            over (partition by yearly_points.series_key)) as trend_offset
    from yearly_points
    left join yearly_changes on yearly_points.series_key = yearly_changes.series_key
),

yearly_level as (
    select
        series_key,
        percentile_cont(0.5) within group (order by value - trend_offset) as level_value
    from yearly_detrended
    where value is not null and trend_offset is not null
    group by series_key
),

yearly_expected as (
    select
        yearly_detrended.series_kind,
        yearly_detrended.series_key,
        yearly_detrended.series_name,
        yearly_detrended.channel_code,
        yearly_detrended.channel_name,
        yearly_detrended.period_start,
        yearly_detrended.period_label,
        yearly_detrended.value,
        yearly_detrended.is_synthetic,
        yearly_level.level_value + yearly_detrended.trend_offset as expected_value,
        'yearly: value - (median level + median year-on-year change x years);'
        || ' robust z (median, MAD), |z| > {{ var("anomaly_z_threshold", 3.5) }}' as method,
        {{ var('anomaly_min_points_yearly', 5) }} as min_points
    from yearly_detrended
    left join yearly_level on yearly_detrended.series_key = yearly_level.series_key
),

-- both: the modified z-score of the residual within its series ---------------------------

expected as (
    select
        *,
        case when value is not null then value - expected_value end as residual
    from monthly_expected
    union all
    select
        *,
        case when value is not null then value - expected_value end as residual
    from yearly_expected
),

residual_centre as (
    select
        series_key,
        percentile_cont(0.5) within group (order by residual) as median_residual,
        count(*) as point_count
    from expected
    where residual is not null
    group by series_key
),

residual_spread as (
    select
        expected.series_key,
        percentile_cont(0.5) within group (
            order by abs(expected.residual - residual_centre.median_residual)) as mad,
        avg(abs(expected.residual - residual_centre.median_residual)) as mean_absolute_deviation
    from expected
    inner join residual_centre on expected.series_key = residual_centre.series_key
    where expected.residual is not null
    group by expected.series_key
),

scored as (
    select
        expected.*,
        coalesce(residual_centre.point_count, 0) as point_count,
        case
            when expected.residual is null
                or coalesce(residual_centre.point_count, 0) < expected.min_points then null
            when residual_spread.mad > 0
                then 0.6745 * (expected.residual - residual_centre.median_residual)
                / residual_spread.mad
            when residual_spread.mean_absolute_deviation > 0
                then (expected.residual - residual_centre.median_residual)
                / (1.253314 * residual_spread.mean_absolute_deviation)
            else 0
        end as robust_z
    from expected
    left join residual_centre on expected.series_key = residual_centre.series_key
    left join residual_spread on expected.series_key = residual_spread.series_key
),

final as (
    select
        series_kind,
        series_key,
        series_name,
        channel_code,
        channel_name,
        period_start,
        period_label,
        value,
        round(expected_value::numeric, 1) as expected_value,
        round(residual::numeric, 1) as residual,
        round(robust_z::numeric, 2) as robust_z,
        point_count,
        coalesce(abs(robust_z) > {{ var('anomaly_z_threshold', 3.5) }}, false) as is_flagged,
        value is null as is_withheld,
        method,
        is_synthetic
    from scored
)

select * from final
