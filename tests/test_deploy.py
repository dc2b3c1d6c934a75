"""The deployment on paper (infra/deploy/: values for Airflow's and Superset's Helm charts)
stays in step with the code: no Kubernetes runs here, so these checks are what keeps a renamed
setting, queue or version from leaving the values files wrong without anyone noticing."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "infra" / "deploy"
#: variables the charts' own images read, not Safeguard
CHART_VARIABLES = {"SERVER_WORKER_AMOUNT"}


def _values(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def _read_by_safeguard() -> str:
    code = [*(ROOT / "src").rglob("*.py"), *(ROOT / "dags").glob("*.py"),
            ROOT / "infra" / "superset" / "superset_config.py"]
    return "\n".join(path.read_text() for path in code)


def _named(values: dict) -> set[str]:
    text = yaml.safe_dump(values)
    return set(re.findall(r"\b((?:SAFEGUARD|SUPERSET|DATABASE|REDIS)_[A-Z0-9_]+)\b", text))


def test_every_setting_the_values_set_is_one_safeguard_reads():
    code = _read_by_safeguard()
    for name in ("airflow-values.yaml", "superset-values.yaml"):
        unknown = sorted(v for v in _named(_values(name)) - CHART_VARIABLES
                         if f'"{v}"' not in code)
        assert not unknown, f"{name} sets what no code reads: {unknown}"


def test_the_workers_serve_every_queue_the_dags_use():
    from safeguard.dag_ids import DBT_QUEUE, DEFAULT_QUEUE, INGEST_QUEUE

    values = _values("airflow-values.yaml")
    assert values["executor"] == "CeleryExecutor"
    command = " ".join(values["workers"]["args"])
    queues = set(re.search(r"--queues (\S+)", command)[1].split(","))
    assert queues == {INGEST_QUEUE, DBT_QUEUE, DEFAULT_QUEUE}
    env = {e["name"]: e["value"] for e in values["env"]}
    assert env["SAFEGUARD_EXECUTOR"] == "celery"
    assert values["config"]["core"]["dags_folder"] == f"{env['SAFEGUARD_ROOT']}/dags"


def test_the_versions_are_the_ones_tested_here():
    airflow = _values("airflow-values.yaml")
    assert airflow["airflowVersion"] == airflow["defaultAirflowTag"] == \
        importlib.metadata.version("apache-airflow")
    superset = subprocess.run(
        [str(ROOT / "infra" / "superset" / ".venv" / "bin" / "python"), "-c",
         "import importlib.metadata as m; print(m.version('apache-superset'))"],
        capture_output=True, text=True, check=True).stdout.strip()
    assert _values("superset-values.yaml")["image"]["tag"] == superset


def test_every_pod_gets_the_same_secrets():
    """One Secret for all: a pod that generated its own pseudonym key could not load."""
    airflow = _values("airflow-values.yaml")
    assert "name: safeguard-secrets" in airflow["extraEnvFrom"]
    assert _values("superset-values.yaml")["envFromSecrets"] == ["safeguard-secrets"]
