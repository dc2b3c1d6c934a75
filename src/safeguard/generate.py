"""Synthetic data for the demo and the tests: a hotline case extract, partner aggregates, and
the illustrative legislation sample. Nothing here is real case data.

Every record is made up from a small seeded model whose trends follow published figures: the
yearly volume rises, online enticement grows by 97.5% from 2019 to 2020 (NCMEC CyberTipline:
19,174 -> 37,872), and the pandemic shifts reports toward gaming, messaging and live video.
Files carry categories, counts and times only: no content, no free text, no identifiers
beyond the hotline's own case number (pseudonymised at ingest). The contracts that read them
say ``is_synthetic: true``.

The generator streams. Cases are produced one at a time, in order of receipt, and written as
they come; what it holds in memory is bounded by the calendar (months, days) and the
category lists, never by the number of cases, so ten million cases need the memory of ten
thousand. Partner aggregates come from the same model's expected counts with Poisson noise,
not from the case rows. Output is written to a temporary name in the drop folder and renamed
into place, so a DAG polling the folder never reads half a file.
"""

from __future__ import annotations

import csv
import math
import os
import sys
import tempfile
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from itertools import accumulate
from pathlib import Path
from random import Random
from typing import Any, Protocol

import click

from safeguard.config import repo_root, settings

HOTLINE_CONTRACT = "sample_hotline_cases"
PARTNER_CONTRACT = "sample_partner_aggregates"

CASE_HEADER = (
    "Case ID", "Received", "Reporter", "Channel", "Exploitation types",
    "Highest grooming stage", "Victim age band", "Country", "Triaged", "Assessment",
    "Referred to", "Referred", "Closed",
)
PARTNER_HEADER = (
    "month", "country", "channel", "exploitation_type", "grooming_stage", "reporter_type",
    "cases",
)
LEGISLATION_HEADER = ("Country code", "Edition", "Dedicated grooming legislation")

# --- vocabulary: our code -> the hotline's label (as contracts/sample_hotline_cases.yml maps)
REPORTERS = {
    "public": "Member of the public", "parent_caregiver": "Parent or caregiver",
    "child_young_person": "Child or young person", "industry": "Industry",
    "law_enforcement": "Law enforcement", "partner_hotline": "Partner hotline",
}
CHANNELS = {
    "social_media": "Social media", "gaming": "Online gaming", "messaging": "Messaging app",
    "live_video": "Live video / webcam", "other": "Other", "unknown": "Unknown",
}
EXPLOITATION_TYPES = {
    "csam": "CSAM", "live_streaming": "Live streaming", "sextortion": "Sextortion",
    "harassment": "Harassment", "self_generated": "Self-generated",
    "unwanted_exposure": "Unwanted exposure", "online_enticement": "Online enticement",
}
STAGES = {
    "victim_selection": "Victim selection", "access_isolation": "Access and isolation",
    "trust_development": "Trust development", "desensitization": "Desensitization",
    "post_abuse_maintenance": "Post-abuse maintenance", "unknown": "Unknown",
}
AGE_BANDS = {
    "0-2": "0-2", "3-6": "3-6", "7-10": "7-10", "11-13": "11-13", "14-15": "14-15",
    "16-17": "16-17", "unknown": "Unknown",
}
ASSESSMENTS = {"actionable": "Actionable", "not_actionable": "Not actionable",
               "duplicate": "Duplicate"}
REFERRALS = {
    "law_enforcement": "Law enforcement", "industry": "Industry",
    "partner_hotline": "Partner hotline", "child_services": "Child services", "none": "None",
}
UNKNOWN_COUNTRY = "ZZ"

# --- the model ------------------------------------------------------------------------------
#: Relative hotline volume per year (rising; the 2020 jump is the pandemic).
YEAR_VOLUME = {2018: 0.88, 2019: 1.00, 2020: 1.42, 2021: 1.55, 2022: 1.68, 2023: 1.85,
               2024: 2.00}
ENTICEMENT_2019_TO_2020 = 37_872 / 19_174  # NCMEC CyberTipline, online enticement reports
#: Share of cases whose exploitation types include online enticement. 2020 is derived, so
#: that enticement cases grow by exactly the published factor in expectation.
ENTICEMENT_SHARE = {2018: 0.20, 2019: 0.22, 2021: 0.33, 2022: 0.38, 2023: 0.45, 2024: 0.50}
ENTICEMENT_SHARE[2020] = (ENTICEMENT_SHARE[2019] * ENTICEMENT_2019_TO_2020
                          * YEAR_VOLUME[2019] / YEAR_VOLUME[2020])

#: Channel mix by period: before, during (2020-2021) and after the lockdowns.
CHANNEL_MIX = {
    "before": {"social_media": 45, "gaming": 10, "messaging": 18, "live_video": 5,
               "other": 10, "unknown": 12},
    "pandemic": {"social_media": 34, "gaming": 18, "messaging": 24, "live_video": 11,
                 "other": 6, "unknown": 7},
    "after": {"social_media": 38, "gaming": 15, "messaging": 23, "live_video": 8,
              "other": 7, "unknown": 9},
}
#: Enticement happens where adults can talk to children: tilt its channels that way.
ENTICEMENT_CHANNEL_TILT = {"social_media": 1.0, "gaming": 1.5, "messaging": 1.4,
                           "live_video": 1.2, "other": 0.6, "unknown": 0.8}
#: The main form of exploitation of cases that are not enticement.
OTHER_PRIMARY = {"csam": 45, "live_streaming": 6, "sextortion": 14, "harassment": 12,
                 "self_generated": 13, "unwanted_exposure": 10}
#: Forms reported together with the main one: (main, also) -> probability.
ALSO_REPORTED = {
    "online_enticement": {"sextortion": 0.32, "self_generated": 0.28, "harassment": 0.06},
    "csam": {"self_generated": 0.18, "live_streaming": 0.04},
    "sextortion": {"self_generated": 0.40, "harassment": 0.10},
    "live_streaming": {"csam": 0.30},
    "self_generated": {"csam": 0.10},
    "harassment": {"unwanted_exposure": 0.15},
    "unwanted_exposure": {"harassment": 0.10},
}
STAGE_MIX = {
    "enticement": {"victim_selection": 8, "access_isolation": 12, "trust_development": 27,
                   "desensitization": 22, "post_abuse_maintenance": 8, "unknown": 23},
    "other": {"victim_selection": 4, "access_isolation": 5, "trust_development": 10,
              "desensitization": 11, "post_abuse_maintenance": 12, "unknown": 58},
}
AGE_MIX = {
    "enticement": {"0-2": 0, "3-6": 1, "7-10": 8, "11-13": 33, "14-15": 32, "16-17": 16,
                   "unknown": 10},
    "other": {"0-2": 3, "3-6": 7, "7-10": 14, "11-13": 24, "14-15": 21, "16-17": 13,
              "unknown": 18},
}
REPORTER_MIX = {"public": 40, "parent_caregiver": 19, "child_young_person": 10,
                "industry": 18, "law_enforcement": 5, "partner_hotline": 8}
ASSESSMENT_MIX = {"actionable": 56, "not_actionable": 34, "duplicate": 10}
REFERRAL_MIX = {"law_enforcement": 55, "industry": 27, "partner_hotline": 10,
                "child_services": 8}
#: Cases about another country go to that country's hotline more often.
REFERRAL_MIX_ABROAD = {"law_enforcement": 30, "industry": 25, "partner_hotline": 40,
                       "child_services": 5}

#: The sample hotline sits in the Netherlands: most cases are about it and its neighbours,
#: a few dozen countries make most of the rest, and every other country appears now and then.
HOME_COUNTRY = "NL"
COUNTRY_WEIGHTS = {
    "NL": 340, "BE": 60, "DE": 70, "GB": 45, "FR": 35, "US": 45, "LU": 6, "DK": 10,
    "PL": 14, "ES": 14, "IT": 14, "IE": 8, "AT": 8, "CH": 8, "SE": 9, "NO": 6, "FI": 4,
    "CZ": 5, "RO": 7, "PT": 5, "GR": 4, "HU": 4, "TR": 8, "MA": 7, "SR": 6, "IN": 9,
    "PH": 12, "ID": 5, "TH": 5, "BR": 8, "CA": 8, "AU": 7, "NG": 5, "ZA": 4, "UA": 5,
    "RU": 6, "MX": 4, "CN": 4, "JP": 3, "KE": 3,
}
TAIL_WEIGHT = 50  # shared by all other countries in the review
UNKNOWN_COUNTRY_WEIGHT = 70

#: Partner hotlines and their share of the partner volume, which is about 0.8 times ours.
PARTNER_COUNTRIES = {"DE": 20, "FR": 14, "BE": 9, "GB": 16, "IT": 8, "ES": 8, "PL": 6,
                     "US": 10, "CA": 5, "AU": 4}
PARTNER_VOLUME = 0.8
PARTNER_REPORTER_MIX = {"public": 44, "parent_caregiver": 17, "child_young_person": 9,
                        "industry": 22, "law_enforcement": 6, "partner_hotline": 2}

#: Time of day a report arrives (UTC hour weights): quiet at night, busiest in the evening.
HOURLY = (2, 1.5, 1, 1, 1, 1.5, 2.5, 4, 5, 5.5, 5.5, 5.5, 5.5, 5.5, 5.5, 5.5, 6, 6.5, 7,
          7.5, 7.5, 6.5, 5, 3.5)
#: Month of year: a little quieter in summer.
SEASON = (1.02, 0.98, 1.04, 1.0, 1.0, 0.96, 0.9, 0.9, 1.0, 1.04, 1.06, 1.1)
#: Lockdowns: reports surged in spring 2020.
LOCKDOWN = {(2020, 3): 1.25, (2020, 4): 1.4, (2020, 5): 1.3, (2020, 6): 1.1,
            (2020, 11): 1.1, (2020, 12): 1.1, (2021, 1): 1.15, (2021, 2): 1.1}

#: Lifecycle delays, in hours: lognormal (median, p90).
TRIAGE_DELAY = (6.0, 48.0)
REFERRAL_DELAY = (36.0, 96.0)  # after triage
CLOSE_DELAY_REFERRED = (10 * 24.0, 35 * 24.0)  # after referral
CLOSE_DELAY_NOT_REFERRED = (2 * 24.0, 9 * 24.0)  # after triage

LEGISLATION_SEED = 2017
LEGISLATION_YES = {1: 63, 2: 77}  # ICMEC, published totals
#: How plausible dedicated grooming legislation is by subregion (illustrative weights).
LEGISLATION_WEIGHT = {
    "Northern Europe": 9, "Western Europe": 9, "Southern Europe": 6, "Eastern Europe": 6,
    "Northern America": 9, "Australia and New Zealand": 9, "Latin America and the Caribbean": 2,
    "Eastern Asia": 3, "South-eastern Asia": 2, "Southern Asia": 1.5, "Central Asia": 1,
    "Western Asia": 1.2, "Northern Africa": 1, "Sub-Saharan Africa": 1, "Melanesia": 0.6,
    "Micronesia": 0.6, "Polynesia": 0.6,
}


class _RowWriter(Protocol):
    def writerow(self, row: Sequence[Any], /) -> Any: ...
    def writerows(self, rows: Any, /) -> None: ...


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = _EPOCH.toordinal()
_MINUTES_PER_DAY = 24 * 60


# --- small tools ----------------------------------------------------------------------------
class _Picker:
    """Draws a key with the given weights, by bisection on the cumulative weights."""

    __slots__ = ("keys", "cum", "total")

    def __init__(self, weights: dict[str, float]) -> None:
        self.keys = tuple(k for k, w in weights.items() if w > 0)
        self.cum = tuple(accumulate(weights[k] for k in self.keys))
        self.total = self.cum[-1]

    def __call__(self, rng: Random) -> str:
        return self.keys[bisect_right(self.cum, rng.random() * self.total)]


def _lognormal(median_p90: tuple[float, float]) -> tuple[float, float]:
    median, p90 = median_p90
    return math.log(median), math.log(p90 / median) / 1.2815515655446004


def _apportion(total: int, weights: Sequence[float]) -> list[int]:
    """Split ``total`` in proportion to ``weights``, exactly (largest remainder)."""
    s = sum(weights)
    if total <= 0 or s <= 0:
        return [0] * len(weights)
    exact = [total * w / s for w in weights]
    shares = [math.floor(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: (shares[i] - exact[i], i))
    for i in order[: total - sum(shares)]:
        shares[i] += 1
    return shares


def _poisson(rng: Random, lam: float) -> int:
    """Poisson draw: multiplication for small means, Hormann's PTRS for the others."""
    if lam <= 0:
        return 0
    if lam < 10:
        limit, k, p = math.exp(-lam), 0, rng.random()
        while p > limit:
            k += 1
            p *= rng.random()
        return k
    slam, loglam = math.sqrt(lam), math.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    invalpha = 1.1239 + 1.1328 / (b - 3.4)
    vr = 0.9277 - 3.6224 / (b - 2)
    while True:
        u = rng.random() - 0.5
        v = rng.random()
        us = 0.5 - abs(u)
        k = math.floor((2 * a / us + b) * u + lam + 0.43)
        if us >= 0.07 and v <= vr:
            return k
        if k < 0 or (us < 0.013 and v > us):
            continue
        if (math.log(v) + math.log(invalpha) - math.log(a / (us * us) + b)
                <= -lam + k * loglam - math.lgamma(k + 1)):
            return k


def _minutes(dt: datetime) -> int:
    return int((dt - _EPOCH).total_seconds() // 60)


class _Clock:
    """Formats minutes since the epoch as ISO 8601 UTC, from strings made once per day of
    the range (bounded by the calendar, and far cheaper than datetime per timestamp)."""

    __slots__ = ("first_day", "days", "times")

    def __init__(self, first: int, last: int) -> None:
        self.first_day = first // _MINUTES_PER_DAY
        self.days = [date.fromordinal(_EPOCH_ORDINAL + d).isoformat() + "T"
                     for d in range(self.first_day, last // _MINUTES_PER_DAY + 1)]
        self.times = [f"{h:02d}:{m:02d}:00Z" for h in range(24) for m in range(60)]

    def __call__(self, minutes: int) -> str:
        day, minute = divmod(minutes, _MINUTES_PER_DAY)
        return self.days[day - self.first_day] + self.times[minute]


def _write_atomically(path: Path, write: Callable[[_RowWriter], None],
                      tmp_dir: Path | None = None) -> None:
    """Write a CSV under a temporary name, then rename it to ``path`` in one step.

    For the drop folder the temporary file lives one level up (``tmp_dir``, same file
    system): the ingest DAG lists ``<drop>/<contract>/`` and takes the newest file there, so
    it must see either no file or the whole file, never a growing temporary one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp",
                               dir=tmp_dir or path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            write(csv.writer(f, lineterminator="\n"))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; readers may be other users
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def reference_countries(root: Path | None = None) -> list[dict[str, str]]:
    """Rows of ``dbt/seeds/ref_countries.csv``, the one list of countries."""
    path = (root or repo_root()) / "dbt" / "seeds" / "ref_countries.csv"
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _review_countries(root: Path | None = None) -> list[dict[str, str]]:
    rows = [r for r in reference_countries(root) if r["in_icmec_review"] == "true"]
    return sorted(rows, key=lambda r: r["country_code"])


# --- the calendar ----------------------------------------------------------------------------
def _year_volume(year: int) -> float:
    if year in YEAR_VOLUME:
        return YEAR_VOLUME[year]
    first, last = min(YEAR_VOLUME), max(YEAR_VOLUME)
    if year < first:
        return YEAR_VOLUME[first] * 0.92 ** (first - year)
    return YEAR_VOLUME[last] * 1.06 ** (year - last)


def _enticement_share(year: int) -> float:
    first, last = min(ENTICEMENT_SHARE), max(ENTICEMENT_SHARE)
    return ENTICEMENT_SHARE[min(max(year, first), last)]


def _period(year: int) -> str:
    return "before" if year < 2020 else "pandemic" if year <= 2021 else "after"


@dataclass(frozen=True)
class _Month:
    year: int
    month: int
    start: int  # minutes since the epoch, inclusive
    end: int  # exclusive
    weight: float  # relative expected volume

    @property
    def label(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


def _months(rng: Random, years: tuple[int, int], as_of: datetime) -> list[_Month]:
    """The months of the range up to ``as_of``. A year's months share its volume
    (``YEAR_VOLUME``, which sets the trend exactly) by season, lockdowns and a little noise."""
    cut = _minutes(as_of)
    months = []
    for year in range(years[0], years[1] + 1):
        shape, spans = [], []
        for month in range(1, 13):
            start = _minutes(datetime(year, month, 1, tzinfo=UTC))
            end = _minutes(datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC))
            noise = rng.lognormvariate(0.0, 0.04)  # drawn for every month: stable streams
            shape.append(SEASON[month - 1] * LOCKDOWN.get((year, month), 1.0) * noise)
            spans.append((start, end))
        scale = _year_volume(year) / sum(shape)
        for month, (w, (start, end)) in enumerate(zip(shape, spans, strict=True), start=1):
            cut_end = min(end, cut)
            if cut_end > start:  # the part of the month before the extract
                covered = (cut_end - start) / (end - start)
                months.append(_Month(year, month, start, cut_end, w * scale * covered))
    return months


@dataclass
class Summary:
    """What a run wrote: files and rows, and enough counts to eyeball the trend."""

    files: dict[Path, int] = field(default_factory=dict)  # path -> data rows
    cases_per_year: Counter[int] = field(default_factory=Counter)
    enticement_per_year: Counter[int] = field(default_factory=Counter)
    open_cases: int = 0

    @property
    def paths(self) -> list[Path]:
        return list(self.files)

    def change(self, before: int, after: int) -> float | None:
        """Relative change in enticement cases between two years (0.975 = +97.5%)."""
        a, b = self.enticement_per_year.get(before, 0), self.enticement_per_year.get(after, 0)
        return (b - a) / a if a else None


# --- the hotline cases -----------------------------------------------------------------------
class _CaseModel:
    """Per-year category mixes, built once; draws one case's categories at a time."""

    def __init__(self, root: Path | None = None) -> None:
        review = _review_countries(root)
        weights = {r["country_code"]: 0.0 for r in review}
        unknown = set(COUNTRY_WEIGHTS) - set(weights)
        if unknown:
            raise ValueError(f"COUNTRY_WEIGHTS has codes not in ref_countries.csv: {unknown}")
        tail = [c for c in weights if c not in COUNTRY_WEIGHTS]
        for code in tail:
            weights[code] = TAIL_WEIGHT / len(tail)
        weights.update(COUNTRY_WEIGHTS)
        weights[UNKNOWN_COUNTRY] = UNKNOWN_COUNTRY_WEIGHT
        self.country = _Picker(weights)
        self.other_primary = _Picker(OTHER_PRIMARY)
        self.stage = {k: _Picker(v) for k, v in STAGE_MIX.items()}
        self.age = {k: _Picker(v) for k, v in AGE_MIX.items()}
        self.reporter = _Picker(REPORTER_MIX)
        self.assessment = _Picker(ASSESSMENT_MIX)
        self.referral = _Picker(REFERRAL_MIX)
        self.referral_abroad = _Picker(REFERRAL_MIX_ABROAD)
        self.channel = {p: _Picker(mix) for p, mix in CHANNEL_MIX.items()}
        self.enticement_channel = {
            p: _Picker({k: w * ENTICEMENT_CHANNEL_TILT[k] for k, w in mix.items()})
            for p, mix in CHANNEL_MIX.items()
        }
        self.hour = _Picker({str(h): w for h, w in enumerate(HOURLY)})
        self.triage = _lognormal(TRIAGE_DELAY)
        self.referral_delay = _lognormal(REFERRAL_DELAY)
        self.close_referred = _lognormal(CLOSE_DELAY_REFERRED)
        self.close_other = _lognormal(CLOSE_DELAY_NOT_REFERRED)

    def types(self, rng: Random, enticement: bool) -> list[str]:
        main = "online_enticement" if enticement else self.other_primary(rng)
        also = ALSO_REPORTED.get(main, {})
        return [main, *(t for t in EXPLOITATION_TYPES if t in also and rng.random() < also[t])]


def _delay(rng: Random, mu_sigma: tuple[float, float]) -> int:
    """A lognormal delay in whole minutes (at least one)."""
    mu, sigma = mu_sigma
    return max(1, round(math.exp(rng.gauss(mu, sigma)) * 60))


def _case_rows(rng: Random, model: _CaseModel, months: list[_Month], cases: int, cut: int,
               clock: _Clock, summary: Summary) -> Iterator[tuple[str, ...]]:
    """The case extract, one row at a time, in order of receipt.

    Volumes are apportioned exactly (years, then months), and so are enticement cases per
    month; each month's cases are then drawn in time order (uniform order statistics through
    the hour-of-day profile) and enticement is spread over them by selection sampling. So the
    yearly trend holds to the case, and nothing is held but the current month's counters."""
    by_year: dict[int, list[_Month]] = {}
    for m in months:
        by_year.setdefault(m.year, []).append(m)
    years = sorted(by_year)
    per_year = _apportion(cases, [sum(m.weight for m in by_year[y]) for y in years])
    hour_cum = [0.0, *model.hour.cum]
    for year, year_cases in zip(years, per_year, strict=True):
        year_months = by_year[year]
        per_month = _apportion(year_cases, [m.weight for m in year_months])
        enticement = _apportion(round(year_cases * _enticement_share(year)), per_month)
        period = _period(year)
        channel, enticement_channel = model.channel[period], model.enticement_channel[period]
        seq = 0
        for month, n, k in zip(year_months, per_month, enticement, strict=True):
            days = (month.end - month.start) / _MINUTES_PER_DAY
            t = 0.0
            for i in range(n):
                # next uniform order statistic of the n - i still to come
                t = 1.0 - (1.0 - t) * rng.random() ** (1.0 / (n - i))
                day, frac = divmod(t * days, 1.0)
                # place the fraction of the day on the hourly profile (monotone: order kept)
                x = frac * model.hour.total
                h = bisect_right(hour_cum, x) - 1
                hour = h + (x - hour_cum[h]) / (hour_cum[h + 1] - hour_cum[h])
                received = min(month.start + int(day) * _MINUTES_PER_DAY + int(hour * 60),
                               month.end - 1)
                is_enticement = rng.random() * (n - i) < k
                if is_enticement:
                    k -= 1
                seq += 1
                yield _case(rng, model, year, seq, received, is_enticement,
                            enticement_channel if is_enticement else channel, cut, clock,
                            summary)


def _case(rng: Random, model: _CaseModel, year: int, seq: int, received: int,
          enticement: bool, channel: _Picker, cut: int, clock: _Clock,
          summary: Summary) -> tuple[str, ...]:
    kind = "enticement" if enticement else "other"
    types = model.types(rng, enticement)
    country = model.country(rng)
    reporter = model.reporter(rng)
    row_channel = channel(rng)
    stage = model.stage[kind](rng)
    age = model.age[kind](rng)

    triaged = referred = closed = None
    assessment = referred_to = ""
    t_triage = received + _delay(rng, model.triage)
    if t_triage <= cut:
        triaged = t_triage
        verdict = model.assessment(rng)
        if reporter in ("industry", "law_enforcement") and verdict == "not_actionable" \
                and rng.random() < 0.5:
            verdict = "actionable"  # professional reporters' reports are more often actionable
        assessment = ASSESSMENTS[verdict]
        if verdict == "actionable":
            t_refer = t_triage + _delay(rng, model.referral_delay)
            if t_refer <= cut:
                abroad = country not in (HOME_COUNTRY, UNKNOWN_COUNTRY)
                target = (model.referral_abroad if abroad else model.referral)(rng)
                referred_to, referred = REFERRALS[target], t_refer
                t_close = t_refer + _delay(rng, model.close_referred)
                closed = t_close if t_close <= cut else None
        else:
            referred_to = REFERRALS["none"]
            t_close = t_triage + _delay(rng, model.close_other)
            closed = t_close if t_close <= cut else None

    summary.cases_per_year[year] += 1
    if enticement:
        summary.enticement_per_year[year] += 1
    if closed is None:
        summary.open_cases += 1
    return (
        f"HL-{year}-{seq:07d}",
        clock(received),
        REPORTERS[reporter],
        CHANNELS[row_channel],
        ";".join(EXPLOITATION_TYPES[t] for t in types),
        STAGES[stage],
        AGE_BANDS[age],
        "Unknown" if country == UNKNOWN_COUNTRY else country,
        "" if triaged is None else clock(triaged),
        assessment,
        referred_to,
        "" if referred is None else clock(referred),
        "" if closed is None else clock(closed),
    )


# --- the partner aggregates --------------------------------------------------------------
def _partner_rows(rng: Random, model: _CaseModel, months: list[_Month],
                  cases: int) -> Iterator[tuple[str, ...]]:
    """Monthly partner counts: Poisson with the model's expected mean per (month, country),
    split over the category cells by the year's mixes (which makes every cell Poisson too).
    Memory: one (month, country) block of cells at a time."""
    total_weight = sum(m.weight for m in months)
    countries = sorted(PARTNER_COUNTRIES)
    share = {c: PARTNER_COUNTRIES[c] / sum(PARTNER_COUNTRIES.values()) for c in countries}
    reporter = _Picker(PARTNER_REPORTER_MIX)
    for month in months:
        expected = PARTNER_VOLUME * cases * month.weight / total_weight
        p_enticement = _enticement_share(month.year)
        period = _period(month.year)
        for country in countries:
            cells: Counter[tuple[str, str, str, str]] = Counter()
            for _ in range(_poisson(rng, expected * share[country])):
                enticement = rng.random() < p_enticement
                kind = "enticement" if enticement else "other"
                channel = (model.enticement_channel if enticement else model.channel)[period]
                cells[(channel(rng),
                       "online_enticement" if enticement else model.other_primary(rng),
                       model.stage[kind](rng), reporter(rng))] += 1
            for key in sorted(cells):
                yield (month.label, country, *key, str(cells[key]))


# --- entry points -------------------------------------------------------------------------
def _default_as_of(years: tuple[int, int]) -> datetime:
    end = datetime(years[1] + 1, 1, 1, tzinfo=UTC)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return min(end, today)


def generate_files(out_dir: Path, cases: int, seed: int, years: tuple[int, int] = (2018, 2024),
                   as_of: datetime | None = None, root: Path | None = None,
                   progress: Callable[[int], None] | None = None) -> Summary:
    """Write the hotline extract and the partner aggregates into the drop folder layout.

    ``as_of`` is the moment of the extract (default: the end of the range, or today if the
    range reaches it): nothing happens after it, and cases close to it are still open. The
    same seed, cases, years and as_of give byte-identical files."""
    if cases < 0:
        raise ValueError(f"cases must be >= 0, not {cases}")
    if years[0] > years[1]:
        raise ValueError(f"years {years}: the first year is after the last")
    as_of = as_of or _default_as_of(years)
    if as_of <= datetime(years[0], 1, 1, tzinfo=UTC):
        raise ValueError(f"as_of {as_of:%Y-%m-%d} is before the range {years} starts")
    cut = _minutes(as_of) - 1  # the last minute of the extract
    root_rng = Random(seed)
    months = _months(root_rng, years, as_of)
    case_rng, partner_rng = Random(root_rng.getrandbits(64)), Random(root_rng.getrandbits(64))
    model = _CaseModel(root)
    clock = _Clock(months[0].start, cut)
    span = f"{years[0]}_{years[1]}"
    summary = Summary()

    hotline = out_dir / HOTLINE_CONTRACT / f"hotline_cases_{span}.csv"

    def write_cases(w: _RowWriter) -> None:
        w.writerow(CASE_HEADER)
        rows = 0
        for row in _case_rows(case_rng, model, months, cases, cut, clock, summary):
            w.writerow(row)
            rows += 1
            if progress and rows % 10_000 == 0:
                progress(10_000)
        if progress:
            progress(rows % 10_000)
        summary.files[hotline] = rows

    _write_atomically(hotline, write_cases, tmp_dir=out_dir)

    partner = out_dir / PARTNER_CONTRACT / f"partner_aggregates_{span}.csv"

    def write_partner(w: _RowWriter) -> None:
        w.writerow(PARTNER_HEADER)
        rows = 0
        for row in _partner_rows(partner_rng, model, months, cases):
            w.writerow(row)
            rows += 1
        summary.files[partner] = rows

    _write_atomically(partner, write_partner, tmp_dir=out_dir)
    return summary


def generate(out_dir: Path, cases: int, seed: int,
             years: tuple[int, int] = (2018, 2024)) -> list[Path]:
    """Write a synthetic hotline extract and partner aggregates; return the files written."""
    return generate_files(out_dir, cases, seed, years).paths


def legislation_rows(root: Path | None = None) -> list[tuple[str, int, str]]:
    """The illustrative legislation sample: ICMEC's published totals (63 countries with
    dedicated grooming legislation in the 1st edition, 77 in the 2nd, none repealed), spread
    over countries by a seeded draw weighted by subregion. WHICH countries is made up."""
    review = _review_countries(root)
    rng = Random(LEGISLATION_SEED)

    def draw(candidates: list[dict[str, str]], k: int) -> set[str]:
        # weighted sampling without replacement (Efraimidis-Spirakis keys)
        keyed = sorted(((rng.random() ** (1.0 / LEGISLATION_WEIGHT[r["subregion"]]),
                         r["country_code"]) for r in candidates), reverse=True)
        return {code for _, code in keyed[:k]}

    first = draw(review, LEGISLATION_YES[1])
    second = first | draw([r for r in review if r["country_code"] not in first],
                          LEGISLATION_YES[2] - LEGISLATION_YES[1])
    rows = []
    for edition, yes in ((1, first), (2, second)):
        for r in review:
            code = r["country_code"]
            rows.append((code, edition, "Yes" if code in yes else "No"))
    return rows


def write_legislation_sample(path: Path, root: Path | None = None) -> Path:
    """Write the illustrative legislation CSV (sorted by edition, then country code)."""
    rows = legislation_rows(root)

    def write(w: _RowWriter) -> None:
        w.writerow(LEGISLATION_HEADER)
        w.writerows(rows)

    _write_atomically(path, write)
    return path


@click.command("generate")
@click.option("--cases", type=click.IntRange(min=0), default=20_000, show_default=True,
              help="Hotline cases to generate.")
@click.option("--seed", type=int, default=42, show_default=True,
              help="Random seed: the same seed gives the same files, byte for byte.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None,
              help="Drop folder  [default: $SAFEGUARD_DROP_DIR or $SAFEGUARD_HOME/drop]")
@click.option("--years", type=(int, int), default=(2018, 2024), show_default=True,
              help="First and last year of the range.")
def generate_command(cases: int, seed: int, out_dir: Path | None,
                     years: tuple[int, int]) -> None:
    """Write SYNTHETIC hotline cases and partner aggregates into the drop folder.

    Made-up data with the published trends (no real case data): one file per source, in the
    folder its contract's DAG reads (sample_hotline_cases/, sample_partner_aggregates/).
    """
    out_dir = out_dir or settings().drop_root  # where the DAGs look (SAFEGUARD_DROP_DIR)
    with click.progressbar(length=cases, label="hotline cases", file=sys.stderr) as bar:
        summary = generate_files(out_dir, cases, seed, years, progress=bar.update)
    for path, rows in summary.files.items():
        click.echo(f"wrote {path} ({rows:,} rows)")
    line = f"{summary.open_cases:,} cases still open at the end of the range"
    change = summary.change(2019, 2020)
    if change is not None:
        e = summary.enticement_per_year
        line = (f"online enticement 2019 -> 2020: {e[2019]:,} -> {e[2020]:,} cases "
                f"({change:+.1%}; NCMEC published {ENTICEMENT_2019_TO_2020 - 1:+.1%}); {line}")
    click.echo(line)
