{#- "Latest batch wins": of the rows that compete (same partition_by), keep those of the batch
    that finished last among the batches whose rows are in raw (has_loaded_rows). Ties on
    finished_at go to the greater batch_id, so the result is deterministic.
    ranking='row_number' keeps one row per partition (a case); 'dense_rank' keeps every row of
    the winning batch (a partner's month, an edition of a review).
    rows and batches name relations or CTEs with batch_id (+ source_row_number) and
    batch_id, finished_at, has_loaded_rows. Adds batch_finished_at and delivery_rank. -#}
{% macro latest_batch_wins(rows, batches, partition_by, ranking='row_number') %}
    select ranked.*
    from (
        select
            {{ rows }}.*,
            {{ batches }}.finished_at as batch_finished_at,
            {{ ranking }}() over (
                partition by {{ partition_by }}
                order by {{ batches }}.finished_at desc, {{ rows }}.batch_id desc
                {%- if ranking == 'row_number' %}, {{ rows }}.source_row_number desc{% endif %}
            ) as delivery_rank
        from {{ rows }}
        inner join {{ batches }} on {{ rows }}.batch_id = {{ batches }}.batch_id
        where {{ batches }}.has_loaded_rows
    ) as ranked
    where ranked.delivery_rank = 1
{% endmacro %}
