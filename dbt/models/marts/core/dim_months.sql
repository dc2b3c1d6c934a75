-- The calendar of months, from var('calendar_start_month') to var('calendar_end_month'): fixed
-- bounds rather than now(), so a rebuild gives the same rows. Facts join it to find the month
-- before and the same month a year before.
with

months as (
    select month_start::date as month_start
    from generate_series(
        date '{{ var("calendar_start_month", "2010-01-01") }}',
        date '{{ var("calendar_end_month", "2035-12-01") }}',
        interval '1 month'
    ) as month_start
),

final as (
    select
        month_start,
        (month_start + interval '1 month' - interval '1 day')::date as month_end,
        extract(year from month_start)::integer as year,
        extract(quarter from month_start)::integer as quarter,
        extract(month from month_start)::integer as month_number,
        to_char(month_start, 'FMMonth') as month_name,
        to_char(month_start, 'YYYY-MM') as month_label,
        (month_start - interval '1 month')::date as previous_month_start,
        (month_start - interval '1 year')::date as same_month_last_year_start
    from months
)

select * from final
