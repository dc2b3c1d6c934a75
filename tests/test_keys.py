"""The pseudonym key the warehouse was built with, or nothing is loaded: a case extract hashed
with another key would never merge with the cases already loaded. Real PostgreSQL, the CLI."""

from __future__ import annotations

from pathlib import Path

from conftest import ROOT, safeguard_cli


def _extract(tmp_path: Path) -> Path:
    from safeguard.generate import generate_files

    generate_files(tmp_path, 300, seed=23, years=(2021, 2021))
    (path,) = sorted((tmp_path / "sample_hotline_cases").glob("*.csv"))
    return path


def test_a_load_with_another_pseudonym_key_is_refused(sg_settings, warehouse, tmp_path,
                                                      monkeypatch, scratch):
    from safeguard.ingest.keys import fingerprint

    path = _extract(tmp_path)
    out = safeguard_cli("ingest", "--source", "sample_hotline_cases", str(path)).stdout
    assert out.startswith(("loaded:", "duplicate:")), out
    recorded = warehouse.execute(
        "select fingerprint from ops.pseudonym_keys where retired_at is null").fetchall()
    assert recorded == [(fingerprint(sg_settings.secret("SAFEGUARD_PSEUDONYM_KEY")),)]
    batches = warehouse.execute("select count(*) from ops.batches").fetchone()[0]

    other = "a-key-from-a-regenerated-secrets-file"
    monkeypatch.setenv("SAFEGUARD_PSEUDONYM_KEY", other)
    again = path.with_name(path.stem + "_again.csv")
    again.write_text(path.read_text().replace("\n", "\r\n"))  # not byte-identical
    proc = safeguard_cli("ingest", "--source", "sample_hotline_cases", str(again), check=False)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "(rule: pseudonym_key_matches)" in proc.stderr
    assert f"(fingerprint {fingerprint(other)}) is not the one" in proc.stderr
    assert "Restore SAFEGUARD_PSEUDONYM_KEY" in proc.stderr and other not in proc.stderr
    assert warehouse.execute("select count(*) from ops.batches").fetchone()[0] == batches

    # sources without case ids do not depend on the key
    proc = safeguard_cli("sources", "check", "ncmec_cybertipline",
                         str(ROOT / "data/sample/ncmec_cybertipline_2019_2022.csv"))
    assert "would load" in proc.stdout
