-- Open cases by age, at the end of every week (Sunday) and at the data's as-of date.
-- "As of" is the latest time the hotline extract shows (receipt, triage, referral or closure),
-- not the clock of the run, so a rebuild gives the same rows.
-- A case is open at the end of day d when received on or before d and not closed on or before
-- d; its age is d - received date, in days. Set-based without a case x date join: each case is
-- open in age bucket b over one date interval [received + min_days, least(received + max_days,
-- closed - 1)]; intervals become +1/-1 events, summed per bucket and day, and the backlog at d
-- is the running sum of the events up to d.
with

cases as (
    select * from {{ ref('fct_hotline_cases') }}
),

buckets as (
    select * from {{ ref('ref_backlog_age_buckets') }}
),

as_of as (
    select
        greatest(max(received_at), max(triaged_at), max(referred_at), max(closed_at)) as as_of_at,
        (greatest(max(received_at), max(triaged_at), max(referred_at), max(closed_at))
            at time zone 'UTC')::date as as_of_date,
        min(received_date) as first_received_date,
        coalesce(bool_or(is_synthetic), false) as is_synthetic
    from cases
),

case_dates as (
    select
        received_date,
        (closed_at at time zone 'UTC')::date as closed_date
    from cases
),

intervals as (
    select
        buckets.age_bucket,
        case_dates.received_date + buckets.min_days as open_from,
        -- least() skips nulls: an open case in the last bucket has no end
        least(case_dates.received_date + buckets.max_days, case_dates.closed_date - 1) as open_to
    from case_dates
    cross join buckets
),

events as (
    select age_bucket, open_from as event_date, 1 as delta
    from intervals
    where open_to is null or open_from <= open_to
    union all
    select age_bucket, open_to + 1 as event_date, -1 as delta
    from intervals
    where open_to is not null and open_from <= open_to
),

daily_events as (
    select age_bucket, event_date, sum(delta) as delta
    from events
    group by age_bucket, event_date
),

as_of_dates as (
    -- every Sunday from the first week with cases, then the as-of date itself
    select sunday::date as as_of_date
    from as_of
    cross join lateral generate_series(
        as_of.first_received_date + (7 - extract(isodow from as_of.first_received_date)::integer),
        as_of.as_of_date,
        interval '1 week'
    ) as sunday
    union
    select as_of_date from as_of where as_of_date is not null
),

grid as (
    select as_of_dates.as_of_date, buckets.age_bucket, buckets.bucket_order
    from as_of_dates
    cross join buckets
),

backlog as (
    select
        grid.as_of_date,
        grid.age_bucket,
        grid.bucket_order,
        coalesce(sum(daily_events.delta), 0)::bigint as open_case_count
    from grid
    left join daily_events
        on grid.age_bucket = daily_events.age_bucket
        and daily_events.event_date <= grid.as_of_date
    group by grid.as_of_date, grid.age_bucket, grid.bucket_order
),

final as (
    select
        backlog.as_of_date,
        backlog.as_of_date = as_of.as_of_date as is_latest,
        backlog.age_bucket,
        backlog.bucket_order,
        backlog.open_case_count,
        as_of.is_synthetic
    from backlog
    cross join as_of
)

select * from final
