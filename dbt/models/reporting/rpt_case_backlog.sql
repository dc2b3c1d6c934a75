-- Open cases by age band, weekly and at the data's as-of date, published coarser rather than
-- withheld (publication.sql, rule 4: the backlog's stock and flow). A case open more than 90 days
-- at d+7 was open more than 83 days at d, so the weeks bound each other's bands
-- (open(over 90, d+7) <= open(31-90, d) + open(over 90, d)): a band withheld at one date is
-- pinned by its neighbours' published bands. So nothing is withheld within a date: walking from
-- the oldest band to the youngest, a band below k is merged with the next younger one until the
-- merged band holds k or more; a young remainder below k joins the band before it. Every
-- published band holds k or more, and the bands of a date still cover every age (no row is
-- absent, so no row says 0). A date with fewer than k open cases in all is one withheld row
-- ('all ages').
with

backlog as (
    select * from {{ ref('fct_case_backlog') }}
),

buckets as (
    select * from {{ ref('ref_backlog_age_buckets') }}
),

bands as (
    select
        backlog.as_of_date,
        backlog.is_latest,
        backlog.is_synthetic,
        backlog.bucket_order,
        buckets.min_days,
        buckets.max_days,
        backlog.open_case_count,
        -- 1 for the oldest band of the date, counting towards the youngest
        row_number() over (
            partition by backlog.as_of_date order by backlog.bucket_order desc
        ) as step
    from backlog
    inner join buckets on backlog.age_bucket = buckets.age_bucket
),

walk as (
    -- recursive within a subquery: dbt's unit tests put their inputs before the first CTE
    select * from (
        with recursive steps as (
            -- the oldest band opens the first merged band
            select
                as_of_date,
                step,
                bucket_order,
                1 as merged_band,
                open_case_count as merged_so_far
            from bands
            where step = 1
            union all
            -- the next younger band joins the current merged band while that is below k
            select
                bands.as_of_date,
                bands.step,
                bands.bucket_order,
                case
                    when walk.merged_so_far >= {{ min_published_count() }}
                        then walk.merged_band + 1
                    else walk.merged_band
                end as merged_band,
                case
                    when walk.merged_so_far >= {{ min_published_count() }} then bands.open_case_count
                    else walk.merged_so_far + bands.open_case_count
                end as merged_so_far
            from steps as walk
            inner join bands on walk.as_of_date = bands.as_of_date and bands.step = walk.step + 1
        )
        select * from steps
    ) as walked
),

last_band as (
    -- the youngest merged band of a date, and whether it reached k
    select distinct on (as_of_date)
        as_of_date,
        merged_band,
        merged_so_far >= {{ min_published_count() }} as reached_k
    from walk
    order by as_of_date, step desc
),

assigned as (
    -- a youngest merged band below k joins the one before it (none before: the whole date)
    select
        walk.as_of_date,
        walk.bucket_order,
        case
            when walk.merged_band = last_band.merged_band and not last_band.reached_k
                and last_band.merged_band > 1
                then last_band.merged_band - 1
            else walk.merged_band
        end as merged_band
    from walk
    inner join last_band on walk.as_of_date = last_band.as_of_date
),

merged as (
    select
        bands.as_of_date,
        bands.is_latest,
        bands.is_synthetic,
        min(bands.bucket_order) as bucket_order,
        min(bands.min_days) as min_age_days,
        -- the oldest band has no upper end: neither has a merged band that holds it
        case when bool_or(bands.max_days is null) then null else max(bands.max_days) end
            as max_age_days,
        sum(bands.open_case_count)::bigint as open_case_count
    from bands
    inner join assigned
        on bands.as_of_date = assigned.as_of_date and bands.bucket_order = assigned.bucket_order
    group by bands.as_of_date, bands.is_latest, bands.is_synthetic, assigned.merged_band
),

final as (
    select
        as_of_date,
        is_latest,
        case
            when min_age_days = 0 and max_age_days is null then 'all ages'
            when max_age_days is null then 'over ' || (min_age_days - 1) || ' days'
            else min_age_days || '-' || max_age_days || ' days'
        end as age_bucket,
        bucket_order,
        min_age_days,
        max_age_days,
        {{ published_count('open_case_count') }} as open_cases,
        {{ is_suppressed('open_case_count') }} as is_suppressed,
        is_synthetic
    from merged
)

select * from final
