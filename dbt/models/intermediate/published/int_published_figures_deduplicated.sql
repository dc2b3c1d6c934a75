-- One figure per identity: publisher, series, measure (category), dimensions and period. The
-- citation is not part of it: the same NCMEC figure delivered by NCMEC's report table, its
-- incident-type table and a secondary compilation is one figure, counted once.
--
-- When several deliveries carry one identity, one wins by declared precedence:
--   1. real figures over generated sample data;
--   2. the publisher's own table (source_role primary) over a secondary source;
--   3. the later edition (the publication's date, as the contract declares it);
--   4. the delivery loaded last (a publisher's revision of the same edition).
-- The others stay in raw for lineage and are counted here (delivery_count), never summed.
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
            partition by {{ published_figure_identity('figures') }}
            order by
                figures.is_synthetic,
                figures.source_role = 'primary' desc,
                figures.edition desc nulls last,
                batches.finished_at desc,
                figures.batch_id desc
        ) as delivery_rank,
        count(*) over (
            partition by {{ published_figure_identity('figures') }}
        ) as delivery_count
    from figures
    inner join batches on figures.batch_id = batches.batch_id
    where batches.has_loaded_rows
),

final as (
    select
        publisher,
        coalesce(publisher_name, publisher) as publisher_name,
        series,
        coalesce(series_name, series) as series_name,
        category_code,
        category_label,
        contract_category_name,
        country_code,
        region,
        age_group,
        sex,
        channel_code,
        period_type,
        period_start,
        figure_year,
        figure_quarter,
        figure_month,
        figure_value,
        unit,
        is_total,
        total_reconciles,
        reconcile_note,
        source_name,
        source_url,
        source_role,
        edition,
        is_synthetic,
        delivery_count,
        batch_id
    from ranked
    where delivery_rank = 1
)

select * from final
