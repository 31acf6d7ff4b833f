"""Tables, figures and the paper comparison, from hand-made metric and benchmark files."""

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import REPO
from ragtune.report import build, paper, summary, tables
from ragtune.report.records import benchmark_seconds, job_cost

PIPES = {"p1": ("mini", "gen-a"), "p2": ("mini", "gen-b")}


class Files:
    """Writes metrics.json, train.json and Snakemake benchmark files under a temporary root."""

    def __init__(self, root):
        self.root = root

    def job(self, name, seconds, gpus=0, threads=2, extra=None):
        record = self.root / f"{name}.json"
        bench = self.root / f"{name}.bench.jsonl"
        record.write_text(json.dumps({"gpu_count": gpus, "cpu_threads": threads, **(extra or {})}))
        # a re-run appends a record: only the last one counts
        bench.write_text(json.dumps({"s": 999.0}) + "\n" + json.dumps({"s": seconds}) + "\n")
        return {"record": str(record), "benchmark": str(bench)}

    def metrics(self, name, em, f1, recall):
        """A run's metrics.json in its own folder, beside its predictions.jsonl: 10 questions
        whose scores average to the metrics."""
        m = {"em": em, "f1": f1, "recall_at_k": recall, "k": 5, "n": 10}
        (self.root / name).mkdir()
        record = self.job(f"{name}/metrics", 60, extra=m)["record"]
        per_question = {"em": em / 100, "f1": f1 / 100, "recall": recall / 100}
        rows = [json.dumps({"id": f"q{i}", **per_question}) for i in range(10)]
        (self.root / name / "predictions.jsonl").write_text("\n".join(rows) + "\n")
        return record


@pytest.fixture
def entries(tmp_path):
    """One dataset, two pipelines sharing an embedder, every strategy; Ft. grids of 2."""
    f = Files(tmp_path)
    hour = 3600.0
    rows = []
    for i, (p, (emb, gen)) in enumerate(PIPES.items()):
        # the embedder grid is shared by both pipelines: the same job files
        embed = {lr: f.job(f"emb-{lr}", 0.5 * hour) for lr in ("1e-05", "1e-04")}
        gen_jobs = {lr: f.job(f"{p}-gen-{lr}", (2 + i) * hour, gpus=2) for lr in ("1e-05", "1e-04")}
        phase1 = f.job(f"{p}-ph1", 3 * hour, gpus=1)
        phase2 = f.job(f"{p}-ph2", 1 * hour, gpus=1)
        rag = f.job(f"{p}-rag", 5 * hour, gpus=1)

        def ev(name, p=p):
            return f.job(f"{p}-eval-{name}", 0.25 * hour, gpus=1)

        e_grid = [{"lrs": f"e{lr}", "train": embed[lr], "eval": ev(f"e{lr}")} for lr in embed]
        g_grid = [{"lrs": f"g{lr}", "train": gen_jobs[lr], "eval": ev(f"g{lr}")} for lr in gen_jobs]
        tp_grid = [
            {"lrs": "g1e-05", "train": phase1, "eval": ev("ph1")},
            {"lrs": "e3e-08_g1e-05", "train": phase2, "eval": ev("ph2")},
        ]
        spec = {
            "no_ft": ("base", [], []),
            "ft_embed": ("e1e-04", [embed["1e-04"]], e_grid),
            "ft_gen": ("g1e-05", [gen_jobs["1e-05"]], g_grid),
            "indp": ("e1e-04_g1e-05", [embed["1e-04"], gen_jobs["1e-05"]], e_grid + g_grid),
            "two_phase": ("e3e-08_g1e-05", [phase2, phase1], tp_grid),
            "rag_tok": (
                "e3e-08_g1e-05",
                [rag],
                tp_grid + [{"lrs": "e3e-08_g1e-05", "train": rag, "eval": ev("rag")}],
            ),
        }
        for j, (st, (lrs, chosen, grid)) in enumerate(spec.items()):
            for split, bump in (("validation", 0), ("test", 1)):
                rows.append(
                    {
                        "dataset": "hotpotqa", "split": split, "pipeline": p, "embedder": emb,
                        "generator": gen, "strategy": st, "lrs": lrs,
                        "metrics": f.metrics(f"{p}-{st}-{split}", 10 * j + i + bump,
                                             20 * j + 2 * i, 30 + j),
                        "chosen": chosen, "grid": grid,
                    }
                )  # fmt: skip
    return rows


def test_benchmark_seconds_reads_the_last_record_and_names_bad_files(tmp_path):
    good = tmp_path / "b.jsonl"
    good.write_text('{"s": 1.5}\n{"s": 2.5}\n')
    assert benchmark_seconds(good) == 2.5
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"cpu_time": 3}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl.*'s' field"):
        benchmark_seconds(bad)


def test_a_resumed_job_costs_all_its_attempts(tmp_path):
    """The benchmark's last record is the attempt that finished; the job record adds the
    killed attempts before it (kill -9 leaves no benchmark record of its own)."""
    f = Files(tmp_path)
    job = f.job("gen", 100.0, gpus=2, extra={"attempts": 3, "earlier_attempts_seconds": 260.0})
    cost = job_cost(**job)
    assert cost.seconds == 360.0 and cost.device_hours == pytest.approx(720 / 3600)
    assert job_cost(**f.job("plain", 100.0)).seconds == 100.0


def test_every_cell_of_the_run_and_averaged_tables(entries):
    res = tables.collect(entries)
    val = res.runs[res.runs.split == "validation"].set_index(["pipeline", "strategy"])
    # the paper's order, and its labels
    assert list(dict.fromkeys(val.index.get_level_values(1))) == [
        "No Ft.", "Ft. Embed.", "Ft. Gen.", "Indp.", "2-Phase", "RAG-Tok.",
    ]  # fmt: skip
    # times are the chosen runs' benchmark seconds: Indp. = embed + gen, 2-Phase = both phases
    expect_time = {
        "No Ft.": (0, 0), "Ft. Embed.": (0.5, 0.5), "Ft. Gen.": (2, 3), "Indp.": (2.5, 3.5),
        "2-Phase": (4, 4), "RAG-Tok.": (5, 5),
    }  # fmt: skip
    # grid cost: device-h of every grid point's training (x GPUs) and evaluation (1 GPU, 0.25 h)
    expect_grid = {
        "No Ft.": (0, 0),
        "Ft. Embed.": (2 * 0.5 * 2 + 2 * 0.25,) * 2,  # CPU: 2 threads
        "Ft. Gen.": (2 * 2 * 2 + 0.5, 2 * 3 * 2 + 0.5),
        "Indp.": (2.5 + 8.5, 2.5 + 12.5),
        "2-Phase": (3 + 1 + 0.5,) * 2,
        "RAG-Tok.": (4.5 + 5 + 0.25,) * 2,
    }
    for i, p in enumerate(PIPES):
        for j, st in enumerate(expect_time):
            row = val.loc[(p, st)]
            assert (row.EM, row.F1, row["Recall@k"]) == (10 * j + i, 20 * j + 2 * i, 30 + j)
            assert row["Time (h)"] == pytest.approx(expect_time[st][i])
            assert row["Grid cost (device-h)"] == pytest.approx(expect_grid[st][i])
    assert (val.loc[("p1", "Indp."), ["Embed LR", "Gen LR"]] == ["1e-04", "1e-05"]).all()
    assert (val.loc[("p1", "Ft. Gen."), ["Embed LR", "Gen LR"]] == ["N/A", "1e-05"]).all()
    # the embedder trained on CPU threads, its grid was evaluated on a GPU
    assert val.loc[("p1", "Ft. Embed."), "Unit"] == "CPU/GPU"
    assert val.loc[("p1", "Ft. Gen."), "Unit"] == "GPU"
    assert val.loc[("p1", "No Ft."), "Unit"] == "N/A"

    avg = tables.averaged(res.runs).set_index("strategy")
    for j, st in enumerate(expect_time):
        assert avg.loc[st, "EM"] == pytest.approx(10 * j + 0.5)  # mean of pipelines 0 and 1
        assert avg.loc[st, "Recall@5"] == 30 + j
        assert avg.loc[st, "Time (h)"] == pytest.approx(sum(expect_time[st]) / 2)
        assert avg.loc[st, "pipelines"] == 2
    test = tables.averaged(res.runs, "test").set_index("strategy")
    assert test.loc["Ft. Gen.", "EM"] == pytest.approx(20 + 1.5)

    per = tables.per_pipeline(res.runs)
    assert list(per.columns[:5]) == ["dataset", "pipeline", "embedder", "generator", "strategy"]
    assert len(per) == 12 and "Recall@5" in per.columns


def test_cost_counts_a_shared_job_once(entries):
    cost = tables.cost(tables.collect(entries)).set_index(["strategy", "dataset"])
    # both pipelines' Ft. Embed. rows share one embedder grid: 2 jobs of 0.5 h x 2 threads
    emb = cost.loc[("Ft. Embed.", "hotpotqa")]
    assert emb["Grid training jobs"] == 2
    assert emb["Grid training (device-h)"] == pytest.approx(2.0)
    assert emb["Chosen run(s) (device-h)"] == pytest.approx(1.0)
    # each pipeline evaluates the grid itself: 2 pipelines x 2 points x 0.25 GPU-h
    assert emb["Grid evaluation (device-h)"] == pytest.approx(1.0)
    gen = cost.loc[("Ft. Gen.", "hotpotqa")]
    assert gen["Grid training (device-h)"] == pytest.approx(2 * 2 * 2 + 2 * 3 * 2)
    assert gen["Chosen run(s) (device-h)"] == pytest.approx(2 * 2 + 3 * 2)
    indp = cost.loc[("Indp.", "hotpotqa")]
    assert indp["Grid total (device-h)"] == pytest.approx(
        emb["Grid total (device-h)"] + gen["Grid total (device-h)"]
    )
    tp = cost.loc[("2-Phase", "all")]
    assert tp["Grid total (device-h)"] == pytest.approx(2 * (3 + 1 + 0.5))
    assert cost.loc[("No Ft.", "all"), "Grid total (device-h)"] == 0


def test_re_embedding_is_a_cost_line_of_its_own_only_where_documents_trained(entries, tmp_path):
    """train_documents: each embedder grid point re-embedded the corpus (2 shard jobs of 0.1 h
    on 1 GPU, an index build of 0.05 h on 2 CPU threads); the cost tables count it in the grid
    total and show it on its own, once however many rows share the point."""
    plain = tables.collect(entries)
    assert "Re-embedding (device-h)" not in plain.runs.columns
    assert "Grid re-embedding (device-h)" not in tables.cost(plain).columns
    f = Files(tmp_path / "refresh")
    (tmp_path / "refresh").mkdir()
    refresh = {}
    for e in entries:
        for point in e["grid"]:
            if point["lrs"].startswith("e") and point["lrs"] not in refresh:
                name = point["lrs"]
                refresh[name] = [f.job(f"{name}-s{i}", 360, gpus=1) for i in range(2)]
                refresh[name].append(f.job(f"{name}-index", 180, threads=2))
            if point["lrs"].startswith("e"):
                point["refresh"] = refresh[point["lrs"]]
    res = tables.collect(entries)
    cost = tables.cost(res).set_index(["strategy", "dataset"])
    emb = cost.loc[("Ft. Embed.", "hotpotqa")]
    assert emb["Grid re-embedding (device-h)"] == pytest.approx(2 * (2 * 0.1 + 0.1))
    assert emb["Grid total (device-h)"] == pytest.approx(
        emb["Grid training (device-h)"] + emb["Grid evaluation (device-h)"] + 0.6
    )
    assert cost.loc[("Ft. Gen.", "hotpotqa"), "Grid re-embedding (device-h)"] == 0
    runs = res.runs[res.runs["split"] == "validation"].set_index(["pipeline", "strategy"])
    assert runs.loc[(PIPES_FIRST, "Ft. Embed."), "Re-embedding (device-h)"] == pytest.approx(0.6)
    assert set(res.jobs["role"]) >= {"grid_refresh"}


PIPES_FIRST = next(iter(PIPES))


def test_predictions_that_disagree_with_their_metrics_fail_the_tables(entries, tmp_path):
    """A predictions.jsonl from another run (stale, replaced) would give intervals around the
    wrong value: the tables refuse it, naming both files."""
    metrics = Path(entries[0]["metrics"])
    preds = metrics.with_name("predictions.jsonl")
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    preds.write_text("".join(json.dumps({**r, "em": 1.0}) + "\n" for r in rows))
    with pytest.raises(ValueError, match=r"predictions\.jsonl .*disagrees with .*metrics\.json"):
        tables.collect(entries)


def test_build_writes_every_table_in_three_formats(entries, tmp_path):
    out = tmp_path / "tables"
    build.build_tables(entries, out, "config: tiny.yaml", "mini + gen; top-5", {})
    names = ("all_runs", "per_pipeline", "averaged", "test", "cost", "paper_comparison")
    for name in (*names, "significance"):
        csv, md, tex = (out / f"{name}.{ext}" for ext in ("csv", "md", "tex"))
        assert len(pd.read_csv(csv)) > 0
        assert "config: tiny.yaml" in md.read_text()
        assert tex.read_text().startswith("\\begin{table}") and "\\bottomrule" in tex.read_text()
    assert "| 2-Phase" in (out / "averaged.md").read_text()
    # every score with its interval: columns in the CSV, "x [lo, hi]" in Markdown
    averaged = pd.read_csv(out / "averaged.csv")
    assert {"hotpotqa EM lo", "hotpotqa EM hi", "hotpotqa Recall@5 lo"} <= set(averaged)
    assert (averaged["hotpotqa EM lo"] <= averaged["hotpotqa EM"]).all()
    assert "bootstrap interval over questions" in (out / "averaged.md").read_text()
    assert re.search(r"\| \d+\.\d \[\d+\.\d, \d+\.\d\]", (out / "averaged.md").read_text())
    # the chosen LR at the edge of its grid is flagged: Ft. Embed. chose 1e-04 of {1e-05, 1e-04}
    per_pipeline = pd.read_csv(out / "per_pipeline.csv", keep_default_na=False)
    flags = per_pipeline.set_index(["pipeline", "strategy"])["LR at grid edge"]
    assert flags[(PIPES_FIRST, "Ft. Embed.")] == "embed" and flags[(PIPES_FIRST, "No Ft.")] == ""
    sig = pd.read_csv(out / "significance.csv")
    assert {"No Ft.", "Indp."} <= set(sig["versus"]) and "EM p" in sig
    # nothing is left half-written
    assert not list(out.glob(".*.tmp"))
    text = summary.summary(out, tmp_path / "figures", tmp_path / "report.html")
    assert "ragtune results" in text and "| RAG-Tok." in text and "make report" in text
    assert "rows chose an LR at the edge of its grid: hotpotqa / " in text
    assert f"hotpotqa / {PIPES_FIRST} / Ft. Embed. (embed)" in text
    assert summary.summary(tmp_path / "missing", tmp_path, tmp_path / "r.html") is None


def test_a_validation_only_run_writes_every_table_but_test(entries, tmp_path):
    # evaluation.splits: [validation] (config/gain.yaml) leaves no test runs to tabulate
    validation = [e for e in entries if e["split"] == "validation"]
    out = tmp_path / "tables"
    build.build_tables(validation, out, "config: gain.yaml", "demo", {})
    assert not list(out.glob("test.*"))
    for name in ("all_runs", "per_pipeline", "averaged", "cost", "paper_comparison"):
        assert len(pd.read_csv(out / f"{name}.csv")) > 0
    assert set(pd.read_csv(out / "all_runs.csv")["split"]) == {"validation"}


def test_paper_csv_round_trips_to_the_printed_figure_3():
    data = paper.load()
    fig3 = data[data.figure == 3].set_index(["dataset", "strategy"])
    # spot checks against the printed Figure 3
    assert fig3.loc[("hotpotqa", "no_ft"), "EM"] == 10.3
    assert fig3.loc[("hotpotqa", "two_phase"), "time_h"] == 61.0
    assert fig3.loc[("popqa", "rag_tok"), "F1"] == 44.4
    assert fig3.loc[("popqa", "ft_embed"), "recall_at_5"] == 30.8
    assert len(data[data.figure == 6]) == len(data[data.figure == 7]) == 28
    row = data[(data.figure == 7) & (data.embedder == "MPNet") & (data.generator == "LLaMA3-8b")]
    assert row.set_index("strategy").loc["ft_embed", "embed_lr"] == "3e-05"
    # Figure 3 is the mean of Figures 6/7 to print precision, except 2-Phase time, which the
    # paper prints with Ft. Gen. time added (see the CSV's header)
    per = data[data.figure != 3].groupby(["dataset", "strategy"])
    mean = per[["EM", "F1", "recall_at_5", "time_h"]].mean()
    diff = (mean - fig3[["EM", "F1", "recall_at_5", "time_h"]]).abs()
    assert (diff[["EM", "F1", "recall_at_5"]] <= 0.08).all().all()
    two_phase = [(d, "two_phase") for d in ("hotpotqa", "popqa")]
    assert (diff["time_h"].drop(two_phase) <= 0.051).all()  # a mean of x.x25 prints x.x
    for d in ("hotpotqa", "popqa"):
        assert fig3.loc[(d, "two_phase"), "time_h"] == pytest.approx(
            mean.loc[(d, "two_phase"), "time_h"] + mean.loc[(d, "ft_gen"), "time_h"], abs=0.051
        )


def test_paper_csv_matches_the_paper_text(mirror):
    """Every Figure 3 cell of the shipped CSV, against the paper's own text in ../shared."""
    text = (mirror.parents[1] / "paper/lawton2025-rag-finetuning.md").read_text()
    block = text.split("MethodHotPotQA PopQA")[1].split("Figure 3:")[0]
    fig3 = paper.load().query("figure == 3").set_index(["dataset", "strategy"])
    labels = dict(zip(tables.STRATEGY_LABELS.values(), tables.STRATEGY_LABELS, strict=True))
    labels["Ft. Embed."] = "ft_embed"
    seen = 0
    for label, key in labels.items():
        m = re.search(re.escape(label) + r"((?: [\d.]+){8})", block)
        if not m:
            continue
        values = [float(v) for v in m.group(1).split()]
        for d, part in (("hotpotqa", values[:4]), ("popqa", values[4:])):
            assert fig3.loc[(d, key), ["EM", "F1", "recall_at_5", "time_h"]].tolist() == part
        seen += 1
    assert seen == 7


def test_comparison_sets_ours_beside_the_paper(entries):
    res = tables.collect(entries)
    comp = paper.comparison(
        tables.averaged(res.runs), "demo", {"p1": "MiniLM/LLaMA3-8b"},
        tables.per_pipeline(res.runs),
    )  # fmt: skip
    mean = comp[comp.comparing == "mean over pipelines"].set_index(["source", "strategy"])
    assert mean.loc[("paper", "Indp."), "EM"] == 29.3  # Figure 3, HotpotQA (PopQA not run)
    assert mean.loc[("ragtune", "Indp."), "EM"] == pytest.approx(30.5)
    one = comp[comp.comparing == "MiniLM/LLaMA3-8b"].set_index(["source", "strategy"])
    assert one.loc[("paper", "2-Phase"), "Recall@5"] == 23.7  # Figure 6
    assert one.loc[("ragtune", "2-Phase"), "EM"] == 40
    wide = paper.side_by_side(comp)
    assert {"EM ragtune", "EM paper", "Time (h) paper"} <= set(wide.columns)
    with pytest.raises(ValueError, match="MiniLM/LLaMA3-8b"):
        paper.comparison(tables.averaged(res.runs), "demo", {"p1": "MiniLM/GPT"},
                         tables.per_pipeline(res.runs))  # fmt: skip


def test_a_strategy_beyond_the_paper_shows_ragtune_s_numbers_and_no_paper_ones(tmp_path):
    """PDist has a row of its own in the comparison, its paper cells left blank and the
    caption saying why, not 'nan'."""
    ours = pd.DataFrame(
        [
            {"dataset": "hotpotqa", "strategy": label, "pipelines": 1, "EM": em, "F1": em,
             "Recall@3": 50.0, "Time (h)": 0.01, "Grid cost (device-h)": 0.02}
            for label, em in (("No Ft.", 10.0), ("PDist", 12.5))
        ]
    )  # fmt: skip
    comp = paper.comparison(ours, "demo")
    wide = paper.side_by_side(comp).set_index("strategy")
    assert wide.loc["PDist", "EM ragtune"] == 12.5 and np.isnan(wide.loc["PDist", "EM paper"])
    assert wide.loc["No Ft.", "EM paper"] == 10.3  # Figure 3, HotpotQA
    assert paper.beyond_note(comp) == "PDist: beyond the paper, which has no numbers for them. "
    md = tables.write_table(comp, tmp_path / "c", title="t", caption="c",
                            shown=paper.side_by_side(comp))[1].read_text()  # fmt: skip
    pdist = next(line for line in md.splitlines() if "PDist" in line)
    assert "12.5" in pdist and "nan" not in pdist
    assert [c.strip() for c in pdist.split("|")][5] == ""  # EM paper


def _check_images(stem):
    png, svg = stem.with_suffix(".png"), stem.with_suffix(".svg")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert ET.parse(svg).getroot().tag.endswith("svg") and svg.stat().st_size > 10_000


def test_figures_are_valid_images(entries, tmp_path):
    tables_dir, fig_dir = tmp_path / "tables", tmp_path / "figures"
    build.build_tables(entries, tables_dir, "config: tiny.yaml", "demo", {})
    selections, curves = [], []
    f = Files(tmp_path)
    for p in PIPES:
        grid = tmp_path / p / "ft_gen"
        grid.mkdir(parents=True)
        for lrs, score in (("g1e-05", 40.0), ("g1e-04", 30.0)):  # each point's own questions
            (grid / lrs).mkdir()
            f.metrics(f"{p}/ft_gen/{lrs}/validation", score, score, 50)
        sel = grid / "selected.json"
        sel.write_text(json.dumps({"metric": "f1", "winner": "g1e-05",
                                   "scores": {"g1e-05": 40.0, "g1e-04": 30.0}}))  # fmt: skip
        selections.append({"dataset": "hotpotqa", "pipeline": p, "strategy": "Ft. Gen.",
                           "path": str(sel)})  # fmt: skip
        loss = tmp_path / f"{p}-loss.csv"
        loss.write_text("step,loss,lr0\n1,3.0,1e-5\n2,2.0,1e-5\n3,1.5,1e-5\n")
        curves.append({"dataset": "hotpotqa", "pipeline": p, "label": "Ft. Gen. (g1e-05)",
                       "path": str(loss)})  # fmt: skip
    build.build_figures(
        tables_dir / "all_runs.csv", tables_dir / "paper_comparison.csv", selections, curves,
        fig_dir, "config: tiny.yaml", entries, {"resamples": 200, "level": 0.95}, 13,
    )  # fmt: skip
    for name in ("strategies", "lr_sensitivity", "loss_curves", "paper_comparison"):
        _check_images(fig_dir / name)
    svg = (fig_dir / "strategies.svg").read_text()
    assert "config: tiny.yaml" in svg and "error bars: 95% bootstrap intervals" in svg


def test_report_captions_exist_for_every_output():
    from ragtune.report import labels

    report_dir = REPO / "workflow/report"
    for name in labels.TABLES:
        assert (report_dir / f"table_{name}.rst").read_text().strip()
    for name in labels.FIGURES:
        assert (report_dir / f"figure_{name}.rst").read_text().strip()


def test_a_table_made_by_another_config_says_so(entries, tmp_path):
    """The table's own caption says which config made it; a report config copy remade since
    (as after a partial run) does not make an old table pass for this run's."""
    out = tmp_path / "tables"
    label = "config md5 aaaa000000 (report/config.yaml); pipelines: p"
    build.build_tables(entries, out, label, "mini + gen; top-5", {})
    build.write_config({"seed": 1}, tmp_path / "config.yaml", "config md5 bbbb111111 (newer)")
    same = summary.summary(out, tmp_path, tmp_path / "r.html", "aaaa000000")
    assert "made by another config" not in same
    other = summary.summary(out, tmp_path, tmp_path / "r.html", "bbbb111111")
    assert "made by another config (md5 aaaa000000), not this run's (md5 bbbb111111)" in other
    build.build_tables(entries, out, "config: unlabelled", "mini + gen; top-5", {})
    missing = summary.summary(out, tmp_path, tmp_path / "r.html", "bbbb111111")
    assert "another config (md5 unknown)" in missing


def test_a_baseline_only_run_writes_every_table_and_figure(entries, tmp_path):
    """`strategies: {}` (No Ft. alone) once crashed grouping an empty significance table."""
    baseline = [e for e in entries if e["strategy"] == "no_ft"]
    out, figs = tmp_path / "tables", tmp_path / "figures"
    build.build_tables(baseline, out, "config: baseline.yaml", "demo", {})
    for name in ("all_runs", "per_pipeline", "averaged", "test", "cost", "paper_comparison"):
        assert len(pd.read_csv(out / f"{name}.csv")) > 0, name
    sig = pd.read_csv(out / "significance.csv")
    assert len(sig) == 0 and {"dataset", "strategy", "versus", "EM diff"} <= set(sig.columns)
    assert "nothing to compare" in (out / "significance.md").read_text()
    build.build_figures(
        out / "all_runs.csv", out / "paper_comparison.csv", [], [], figs, "config: baseline.yaml",
        baseline, {"resamples": 200, "level": 0.95}, 13,
    )  # fmt: skip
    assert (figs / "strategies.png").stat().st_size > 0


@pytest.mark.parametrize("words", [20, 160])
def test_a_long_caption_stays_below_the_axes_and_their_labels(words):
    """The beyond config's captions (2-Phase's accounting, the judges, document-side training)
    ran over the strategy names: the caption now pushes the axes up instead."""
    import matplotlib.pyplot as plt

    from ragtune.report import figures

    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.bar(range(10), range(10))
    ax.set_xticks(range(10), [f"strategy {i}" for i in range(10)])
    caption = figures.place_caption(fig, " ".join(["config-note"] * words))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    text_box = caption.get_window_extent(renderer)
    axes_box = ax.get_tightbbox(renderer)  # with its tick labels
    assert text_box.y1 < axes_box.y0
    assert text_box.x1 <= fig.bbox.x1  # wrapped to the figure's width
    plt.close(fig)
