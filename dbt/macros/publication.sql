{#- The publication rules of the reporting layer, in one place.
    - A count below var('min_published_count', 10) is never published: NULL, is_suppressed.
    - A percentage change is published only where both sides count var('min_count_for_change', 50)
      or more (NCMEC's practice): a change on a small base misleads. -#}

{% macro min_published_count() -%}
    {{ var('min_published_count', 10) }}
{%- endmacro %}

{% macro is_suppressed(count_column) -%}
    coalesce({{ count_column }} < {{ min_published_count() }}, false)
{%- endmacro %}

{% macro published_count(count_column) -%}
    case when {{ count_column }} >= {{ min_published_count() }} then {{ count_column }} end
{%- endmacro %}

{% macro published_pct_change(current_count, previous_count) -%}
    case
        when {{ current_count }} >= {{ var('min_count_for_change', 50) }}
            and {{ previous_count }} >= {{ var('min_count_for_change', 50) }}
            then round(100.0 * ({{ current_count }} - {{ previous_count }}) / {{ previous_count }}, 1)
    end
{%- endmacro %}

{#- Secondary suppression within a group whose total can be learnt (from a share, or from another
    breakdown of the same total): when exactly one cell of the group is suppressed, the smallest
    other cell is suppressed too, so the hidden cell cannot be had by subtraction.
    Returns a boolean expression; needs the primary flag and the count per row. -#}
{% macro is_secondarily_suppressed(count_column, primary_flag, group_by, tie_breaker) -%}
    (
        not {{ primary_flag }}
        and count(*) filter (where {{ primary_flag }}) over (partition by {{ group_by }}) = 1
        and row_number() over (
            partition by {{ group_by }}, {{ primary_flag }}
            order by {{ count_column }}, {{ tie_breaker }}
        ) = 1
    )
{%- endmacro %}
