"""A config with no strategy but No Ft. (`strategies: {}`, which the schema accepts) runs to its
tables and figures; it once crashed grouping an empty significance table."""

import pandas as pd
import pytest

from helpers import snakemake, tiny_config, write_config


@pytest.mark.workflow
def test_a_baseline_only_config_runs_to_its_tables(mirror, tmp_path):
    results = tmp_path / "results"
    cfg = tiny_config(mirror, results)
    cfg["strategies"] = {}
    path = write_config(cfg, tmp_path / "baseline.yaml")
    out = snakemake("--cores", "2", "--configfile", str(path), "--directory", str(tmp_path))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    averaged = pd.read_csv(results / "tables/averaged.csv")
    assert list(averaged["strategy"]) == ["No Ft."]
    assert len(pd.read_csv(results / "tables/significance.csv")) == 0
    assert (results / "figures/strategies.png").stat().st_size > 0
    assert "ragtune results" in out.stdout + out.stderr
