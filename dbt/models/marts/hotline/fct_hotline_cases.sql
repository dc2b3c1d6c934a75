-- One row per hotline case, its current lifecycle and how long each step took.
-- Incremental: a run merges (on case_key) only the cases of batches the previous run could not
-- have seen - finished after the newest batch it saw, or still in flight when it read (their
-- load may commit a moment later) - recorded as merge_watermark on the rows it merged. Both
-- stamps come from the server's clock (the loader sets them), so loaders on several machines
-- cannot fall behind it. For those cases "latest batch wins" is applied to their versions only
-- (the same macro as stg_raw__hotline_cases), joined set-wise - one scan of raw, a sort of the
-- changed versions only - so a run costs the size of the change, not of the history.
-- --full-refresh rebuilds from every case.
with

cases as (
    select * from {{ ref('stg_raw__hotline_cases') }}
),

-- read twice in incremental runs: not materialized, so each read is a plain scan of raw
case_versions as not materialized (
    select * from {{ ref('stg_raw__hotline_case_versions') }}
),

batches as (
    select * from {{ ref('stg_ops__batches') }}
),

-- where the next run starts: after the newest loaded batch this run sees, or at the start of
-- the first batch still loading now, whichever is earlier (NULL, no batch yet: from the start)
next_watermark as (
    select least(
        max(batches.finished_at) filter (where batches.has_loaded_rows)
        + interval '1 microsecond',
        min(batches.started_at) filter (where batches.batch_status in ('landing', 'landed'))
    ) as merge_watermark
    from batches
),

{% if is_incremental() %}
watermark as (
    select coalesce(
        {%- if incremental_has_column('merge_watermark') %}
        max(merge_watermark),
        {%- else %}
        -- a table merged before merge_watermark existed: the lookback it was merged with
        max(batch_finished_at) - interval '{{ var("incremental_lookback_hours", 24) }} hours',
        {%- endif %}
        '-infinity'::timestamptz
    ) as finished_from
    from {{ this }}
),

new_batches as (
    select batches.batch_id
    from batches
    where batches.has_loaded_rows
        and batches.finished_at >= (select watermark.finished_from from watermark)
),

changed_case_keys as (
    select distinct case_versions.case_key
    from case_versions
    inner join new_batches on case_versions.batch_id = new_batches.batch_id
),

changed_case_versions as (
    select case_versions.*
    from case_versions
    inner join changed_case_keys on case_versions.case_key = changed_case_keys.case_key
),

current_cases as (
    {{ latest_batch_wins('changed_case_versions', 'batches', 'changed_case_versions.case_key') }}
),
{% else %}
current_cases as (
    select * from cases
),
{% endif %}

timed as (
    select
        current_cases.*,
        current_cases.referral_target_code is not null
            and current_cases.referral_target_code <> 'none'
            and current_cases.referred_at is not null as is_referred,
        round((extract(epoch from current_cases.triaged_at - current_cases.received_at)
            / 3600.0)::numeric, 2) as hours_to_triage,
        case when current_cases.referral_target_code <> 'none'
            then round((extract(epoch from current_cases.referred_at - current_cases.received_at)
                / 3600.0)::numeric, 2)
        end as hours_to_referral,
        round((extract(epoch from current_cases.closed_at - current_cases.received_at)
            / 3600.0)::numeric, 2) as hours_to_close
    from current_cases
),

final as (
    select
        case_key,
        source_organisation,
        is_synthetic,
        received_at,
        -- calendar keys in UTC, stored so that aggregates group by a column, not an expression
        (received_at at time zone 'UTC')::date as received_date,
        date_trunc('week', received_at at time zone 'UTC')::date as received_week_start,
        date_trunc('month', received_at at time zone 'UTC')::date as received_month_start,
        coalesce(reporter_type_code, 'unknown') as reporter_type_code,
        coalesce(channel_code, 'unknown') as channel_code,
        coalesce(grooming_stage_code, 'unknown') as grooming_stage_code,
        coalesce(age_band_code, 'unknown') as age_band_code,
        coalesce(country_code, 'ZZ') as country_code,
        exploitation_type_codes,
        coalesce(cardinality(exploitation_type_codes), 0) as exploitation_type_count,
        triaged_at,
        assessment_code,
        referral_target_code,
        referred_at,
        closed_at,
        hours_to_triage,
        hours_to_referral,
        hours_to_close,
        is_referred,
        coalesce(is_referred and hours_to_referral <= 24, false) as is_referred_within_24h,
        coalesce(is_referred and hours_to_referral <= 72, false) as is_referred_within_72h,
        triaged_at is not null as is_triaged,
        closed_at is null as is_open,
        batch_id,
        batch_finished_at,
        (select next_watermark.merge_watermark from next_watermark) as merge_watermark,
        -- when this run merged the row (the server's clock): fct_case_exploitation_types
        -- takes the cases merged since it last ran
        now() as merged_at
    from timed
)

select * from final
