{#- The publication rules of the reporting layer, in one place. k = var('min_published_count', 10).

    1. Primary suppression. A count below k is never published: NULL, with is_suppressed. Zero
       counts too: a 0 says as much about a group as a 3.
    2. Derived numbers follow their counts. A share is withheld with its count, and where the
       cases it counts or the cases it leaves out are below k (published_share: 2% of a base an
       attacker can bound is one or two cases); a median or percentile is withheld where it
       describes fewer than k cases; a percentage change is published only where both sides are
       published and count var('min_count_for_change', 50) or more (NCMEC's practice: a change
       on a small base misleads). Of two nested shares of one base, the outer is published only
       where the cases between them count k or more too (published_outer_share).
    3. Complementary (secondary) suppression. Wherever the total of a group of cells can be
       learnt - a total or remainder row, a share that gives the total away, the same cases
       published at another grain in another table - the group's withheld cells must not be
       recoverable, nor narrowed to fewer than k values. Where rows exist only where there are
       cases, the attacker knows that a row holds a case at least (its floor is 1; on a declared
       grid, rule 5, it is 0), so the rule is:
         a group has no withheld cell, or at least two whose slack - their cases beyond their
         floors - is k or more.
       Where a group breaks it, its smallest published cell is withheld too, and the rule is
       applied again over every group until nothing changes (complementary_suppression below;
       dbt/tests/assert_complementary_suppression_holds.sql checks the fixed point).
       A withheld total withholds its whole breakdown, so that published parts never bound it
       from below; and a total whose breakdown could not be protected even with every cell of it
       withheld (a small cell, and too few cases beyond one per row) is itself withheld.

    Choice: the published margins are made consistent with suppression rather than left out.
    Where a breakdown's total is learnt anyway, the table publishes it as an explicit remainder
    row (the withheld cells as one count, published only where the rule above holds for them), so
    that dashboards summing over the breakdown get the right totals wherever they are published.
    The groups each table protects:
      cases, each counted once (hotline and partners): the shared grain month x region x channel
        x source_kind (int_case_groups_withheld), protected within the months of a year, region
        and channel (rpt_stage_by_channel_yearly's shares give that total away; where its
        withheld months cannot be protected, that table withholds every stage of it instead) and
        within the hotline groups of a month (weekly intake and the hotline total add up to it).
        Below it: the countries of a group (rpt_cases_monthly, remainder row 'XX'), the
        assessment x referral outcomes of a hotline group (rpt_case_outcomes_monthly, remainder
        row 'withheld'); beside it: the stages of a year, region and channel
        (rpt_stage_by_channel_yearly) and the weeks of the hotline total
        (rpt_case_handling_weekly).
      case-form pairs (a hotline case once per form): online enticement 2019/2020 by channel and
        by stage, both breakdowns of the same yearly total (rpt_enticement_change_2019_2020); below
        each channel count its regions (rpt_exploitation_types_yearly).
      open cases (rpt_case_backlog): rule 4 below, nothing withheld within a date.
    4. Stock and flow. A case open over 90 days at d + 7 was open over 83 days at d (a closed
       case stays closed), and one younger than 7 days was received since: the dates of the
       backlog bound each other's bands, through the weekly intake too, so a band withheld at
       one date can be pinned by the next (over 90 days going from 40 to 48 puts 31-90 days a
       week before at 8 or 9). The backlog is published coarser instead of withheld: from the
       oldest band, a band below k is merged with the next younger one until it holds k or
       more (rpt_case_backlog); only a date with fewer than k open cases in all is withheld, as
       one row.
    5. Zeros and row existence. Where rows exist only where there are cases, an absent row
       publishes an exact 0 and a withheld one "at least one". A breakdown of case data is
       published as a declared grid instead: a row for every period from the first to the last
       and every code of its dimensions (the reference lists), a zero withheld like any small
       count (declared_grid below). Tables on this rule: rpt_case_handling_weekly,
       rpt_stage_by_channel_yearly, rpt_exploitation_types_yearly,
       rpt_enticement_change_2019_2020, rpt_case_backlog (its bands cover every age), and the
       monthly breakdowns in two levels: every group of month x region x channel x source_kind
       (int_case_groups_withheld) is there, a group withheld as a whole as one row, a published
       one as every country of its region (rpt_cases_monthly) or every assessment x referral
       outcome (rpt_case_outcomes_monthly). The full grid of countries would be some 200,000
       rows for seven years, most of them in groups withheld whole; the two levels say the same
       (a withheld group's countries are all withheld) in the rows the data needs.
    tests/test_disclosure.py attacks the published tables as the viewer role with these and every
    other linear relation between them (subtraction, linear algebra, linear-programming bounds). -#}

{% macro min_published_count() -%}
    {{ var('min_published_count', 10) }}
{%- endmacro %}

{% macro min_count_for_change() -%}
    {{ var('min_count_for_change', 50) }}
{%- endmacro %}

{% macro is_suppressed(count_column) -%}
    coalesce({{ count_column }} < {{ min_published_count() }}, false)
{%- endmacro %}

{% macro published_count(count_column) -%}
    case when {{ count_column }} >= {{ min_published_count() }} then {{ count_column }} end
{%- endmacro %}

{% macro published_pct_change(current_count, previous_count) -%}
    case
        when {{ current_count }} >= {{ min_count_for_change() }}
            and {{ previous_count }} >= {{ min_count_for_change() }}
            then round(100.0 * ({{ current_count }} - {{ previous_count }}) / {{ previous_count }}, 1)
    end
{%- endmacro %}

{#- A share (percent, one decimal) of a base, published only where the base, the numerator and
    the complement all count k or more: 2% of a base an attacker can bound is 1 or 2 cases. -#}
{% macro share_is_publishable(numerator_count, base_count) -%}
    ({{ base_count }} >= {{ min_published_count() }}
        and {{ numerator_count }} >= {{ min_published_count() }}
        and {{ base_count }} - {{ numerator_count }} >= {{ min_published_count() }})
{%- endmacro %}

{% macro published_share(numerator_count, base_count) -%}
    case
        when {{ share_is_publishable(numerator_count, base_count) }}
            then round(100.0 * {{ numerator_count }} / {{ base_count }}, 1)
    end
{%- endmacro %}

{#- The outer of two nested shares of one base (within 72 h over within 24 h). Two shares of an
    unpublished base give it away by their rounding (47.6% and 52.4% fit a base of 21 alone, so
    10 and 11 cases), and with it the cases between them: the outer share is published only where
    the inner one is withheld, or the cases between them count k or more. -#}
{% macro published_outer_share(outer_count, inner_count, base_count) -%}
    case
        when not {{ share_is_publishable(inner_count, base_count) }}
            or {{ outer_count }} - {{ inner_count }} >= {{ min_published_count() }}
            then {{ published_share(outer_count, base_count) }}
    end
{%- endmacro %}

{#- The rule of complementary suppression for one group whose total can be learnt: its withheld
    cells are exposed when one stands alone, or when together they hold fewer than k cases
    beyond their floors (their slack). True/false; NULL slack (no withheld cell) is not exposed.
    The passes below apply it, and dbt/tests/assert_complementary_suppression_holds.sql checks
    it on the published tables. -#}
{% macro withheld_cells_exposed(withheld_cells, withheld_slack) -%}
    ({{ withheld_cells }} = 1 or {{ withheld_slack }} < {{ min_published_count() }})
{%- endmacro %}

{#- Complementary suppression, set-based and iterative.
    `cells` names a CTE with one row per cell and (at least) the columns
        cell_key     text, unique: the tie-breaker that makes the choice deterministic
        cell_count   the true count
        cell_floor   the least an attacker may assume the cell holds when withheld (1 for a row
                     published only where the count is positive, 0 where a row may hold 0; for
                     a group total, the number of published rows that break it down)
        is_primary   withheld to begin with: below k, or forced (the cell's own total is
                     withheld)
        one column per entry of `group_columns`: the key of the group of that kind the cell
                     belongs to (NULL: in no group of that kind). Every group named here is one
                     whose total an attacker can learn.
    Each pass withholds, in every group that has exactly one withheld cell or whose withheld
    cells have a slack (count minus floor, summed) below k, its smallest published cell; passes
    repeat var('suppression_passes', 12) times (the rule only ever adds cells, so the result is
    the fixed point once a pass changes nothing; the singular tests in dbt/tests check that
    every group ends up protected). `passes` sets fewer where fewer provably suffice: with one
    kind of group and a floor of 0, the cell a pass withholds in an exposed group is a published
    one, so it holds k or more beyond its floor, and one pass reaches the fixed point
    (rpt_cases_monthly and rpt_case_outcomes_monthly take two, to be safe: twelve over some
    200,000 country cells at a million cases a year cost seconds for nothing). Emits CTEs ending with `<cells>__withheld`: every column of
    `cells` plus is_withheld. The input row rides along each pass as one composite value, so the
    caller never joins the result back (a join on CTEs the planner cannot estimate went quadratic
    here). Each pass is a few window functions over the cells: set-based, no row-by-row loop.
    The cost is passes x one sort per group kind over the cells, and cells grow with the
    dimensions, not with the cases (some 12,000 country cells on the 20,000-case test data; a
    synthetic 1,000,000 cells in two kinds of groups took 76 s here). -#}
{% macro complementary_suppression(cells, group_columns, passes=none) -%}
    {%- set passes = passes if passes is not none else var('suppression_passes', 12) -%}
    {{ cells }}__pass_0 as materialized (
        select
            input_cell.cell_key,
            input_cell.cell_count,
            input_cell.cell_floor,
            {%- for group in group_columns %}
            input_cell.{{ group }},
            {%- endfor %}
            input_cell.is_primary as is_withheld,
            input_cell as input_cell
        from {{ cells }} as input_cell
    ),
    {%- for pass in range(1, passes + 1) %}
    {{ cells }}__pass_{{ pass }} as materialized (
        select
            cell_key,
            cell_count,
            cell_floor,
            {%- for group in group_columns %}
            {{ group }},
            {%- endfor %}
            is_withheld
            {%- for group in group_columns %}
            or (
                {{ group }} is not null
                and not is_withheld
                and {{ group }}__published_rank = 1
                and {{ group }}__withheld_cells >= 1
                and {{ withheld_cells_exposed(group ~ '__withheld_cells',
                                              group ~ '__withheld_slack') }}
            )
            {%- endfor %} as is_withheld,
            input_cell
        from (
            select
                previous_pass.*
                {%- for group in group_columns %},
                count(*) filter (where previous_pass.is_withheld)
                    over (partition by previous_pass.{{ group }}) as {{ group }}__withheld_cells,
                coalesce(sum(previous_pass.cell_count - previous_pass.cell_floor)
                    filter (where previous_pass.is_withheld)
                    over (partition by previous_pass.{{ group }}), 0) as {{ group }}__withheld_slack,
                row_number() over (
                    partition by previous_pass.{{ group }}, previous_pass.is_withheld
                    order by previous_pass.cell_count, previous_pass.cell_key
                ) as {{ group }}__published_rank
                {%- endfor %}
            from {{ cells }}__pass_{{ pass - 1 }} as previous_pass
        ) as ranked
    ),
    {%- endfor %}
    {{ cells }}__withheld as (
        select
            (input_cell).*,
            is_withheld
        from {{ cells }}__pass_{{ passes }}
    )
{%- endmacro %}


{#- What a published figure is, as partition or group columns: publisher, series, measure
    (category), dimensions and period. The citation (source_name) is not part of it. -#}
{% macro published_figure_identity(relation=none) -%}
{%- set prefix = (relation ~ '.') if relation else '' -%}
{%- set columns = ['publisher', 'series', 'category_code', 'country_code', 'region',
                   'age_group', 'sex', 'channel_code', 'period_type', 'period_start'] -%}
{%- for c in columns %}{{ prefix }}{{ c }}{% if not loop.last %}, {% endif %}{% endfor -%}
{%- endmacro %}


{#- Rule 5: the declared grid of a breakdown, every combination of its domains (CTEs of one row
    per value, with distinct column names): left join the counts to it and count a missing one
    as 0, so that zero is withheld like any small count and no row's absence says anything. -#}
{% macro declared_grid(domains) -%}
    select *
    from {{ domains | join(' cross join ') }}
{%- endmacro %}
