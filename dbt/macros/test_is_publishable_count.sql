{#- A published count is either withheld (NULL) or at least var('min_published_count'): a
    guard on every count of the reporting layer, whatever the model's logic. -#}
{% test is_publishable_count(model, column_name) %}
select {{ column_name }}
from {{ model }}
where {{ column_name }} < {{ var('min_published_count', 10) }}
{% endtest %}
