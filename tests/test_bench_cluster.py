"""The pure parts of ``make bench``'s cluster step (``safeguard.bench_cluster``); the step
itself runs only in the bench, never in the suite (it starts two clusters)."""

from __future__ import annotations

from conftest import ROOT
from safeguard.bench_cluster import bench_contract, rates, ratio, worker_queues
from safeguard.cluster import worker_queues as queues_of_workers
from safeguard.contracts import load_contract


def test_a_bench_source_is_the_sample_hotline_under_its_own_name(tmp_path):
    """Its own DAG (name), triggered only (no schedule), no generated sample; otherwise the
    sample hotline's contract, so that its loads are the real path."""
    original = load_contract(ROOT / "contracts" / "sample_hotline_cases.yml", ROOT)
    path = tmp_path / "bench_hotline_03.yml"
    path.write_text(bench_contract(original.path.read_text(), "bench_hotline_03"))
    copy = load_contract(path, ROOT)
    assert copy.name == "bench_hotline_03"
    assert copy.schedule is None and copy.generated_by is None
    assert original.schedule and original.generated_by
    assert (copy.kind, copy.columns, copy.grain, copy.on_row_failure) == (
        original.kind, original.columns, original.grain, original.on_row_failure)


def test_every_worker_of_the_bench_serves_ingest(monkeypatch):
    for workers in (1, 2):
        monkeypatch.setenv("SAFEGUARD_CELERY_QUEUES", worker_queues(workers))
        assert queues_of_workers(workers) == [["ingest", "default"]] * workers


def test_throughput_and_ratio():
    one = rates(300_000, 6, 120.0)
    two = rates(300_000, 6, 80.0)
    assert one == {"seconds": 120.0, "rows_per_s": 2500.0, "files_per_s": 0.05}
    assert two["rows_per_s"] == 3750.0
    assert ratio({"1": one, "2": two}) == 1.5
    assert ratio({"1": one}) is None
