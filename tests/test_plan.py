"""The experiment plan on its own, in milliseconds: every strategy's runs and dependencies."""

import pytest

from ragtune import plan as P

STRATEGIES = {
    "ft_embed": {"lrs": [3e-5, 1e-4]},
    "ft_gen": {"lrs": [3e-4, 1e-3]},
    # phase 1 as its own RAG-Token grid; the default (Ft. Gen.'s winner) is tested below
    "two_phase": {"phase1": "rag_token", "gen_lrs": [3e-4, 1e-3], "embed_lrs": [3e-5, 1e-4]},
    "rag_seq": {"lrs_from": "two_phase"},
    "rag_tok": {"lrs_from": "two_phase"},
}
WINNERS = {
    "ft_embed": "e1e-04",
    "ft_gen": "g3e-04",
    "two_phase_1": "g1e-03",
    "two_phase": "e3e-05_g1e-03",
}


def make(strategies=STRATEGIES, winners=WINNERS):
    asked = []

    def winner(dataset, pipeline, strategy):
        asked.append(strategy)
        return winners[strategy]

    config = {
        "results": "res",
        "corpus": {"name": "wiki"},
        "pipelines": {"p": {"embedder": "mini", "generator": "smol"}},
        "strategies": strategies,
        "generators": {"smol": "org/smol"},
    }
    return P.Plan(config, winner), asked


def test_the_lrs_grammar_round_trips():
    assert P.format_lrs(embed=1e-5, gen="1e-04") == "e1e-05_g1e-04"
    assert P.format_lrs() == "base" and P.parse_lrs("base") == {}
    assert P.parse_lrs("e1e-05_g1e-04") == {"e": "1e-05", "g": "1e-04"}
    assert P.parse_lrs(P.format_lrs(gen=3e-4)) == {"g": "3e-04"}


def test_rows_and_selected_grids_follow_the_paper():
    plan, _ = make()
    assert [P.LABELS[r] for r in plan.rows] == [
        "No Ft.",
        "Ft. Embed.",
        "Ft. Gen.",
        "Indp.",
        "2-Phase",
        "RAG-Seq.",
        "RAG-Tok.",
    ]
    assert plan.selected == ["ft_embed", "ft_gen", "two_phase_1", "two_phase"]


def test_each_strategy_s_grid_and_winner():
    plan, asked = make()
    assert plan.grid_lrs("d", "p", "ft_embed") == ["e3e-05", "e1e-04"]
    assert plan.grid_lrs("d", "p", "ft_gen") == ["g3e-04", "g1e-03"]
    assert plan.grid_lrs("d", "p", "two_phase_1") == ["g3e-04", "g1e-03"]
    assert asked == []  # no grid above waits for a selection
    # phase 2 runs at phase 1's winning generator LR: it waits for phase 1's selection
    assert plan.grid_lrs("d", "p", "two_phase") == ["e3e-05_g1e-03", "e1e-04_g1e-03"]
    assert asked == ["two_phase_1"]
    assert plan.chosen_lrs("d", "p", "no_ft") == "base"
    assert plan.chosen_lrs("d", "p", "indp") == "e1e-04_g3e-04"
    assert plan.chosen_lrs("d", "p", "rag_seq") == "e3e-05_g1e-03"  # 2-Phase's winners


def test_two_phase_s_phase_1_is_ft_gen_s_winner_by_default():
    """phase1: ft_gen (the default): no phase-1 job, no phase-1 grid; phase 2 trains on Ft.
    Gen.'s winning adapter, at its LR, and the row's time and grid add Ft. Gen.'s."""
    default = {**STRATEGIES, "two_phase": {"embed_lrs": [3e-5, 1e-4]}}
    plan, asked = make(default, {**WINNERS, "two_phase": "e3e-05_g3e-04"})
    assert plan.phase1 == "ft_gen" and "two_phase_1" not in plan.active
    assert plan.selected == ["ft_embed", "ft_gen", "two_phase"]
    assert plan.grid_lrs("d", "p", "two_phase") == ["e3e-05_g3e-04", "e1e-04_g3e-04"]
    assert asked == ["ft_gen"]  # Ft. Gen.'s winner is phase 1
    assert plan.grid_points("d", "p", "two_phase") == [
        ("ft_gen", "g3e-04"),
        ("ft_gen", "g1e-03"),
        ("two_phase", "e3e-05_g3e-04"),
        ("two_phase", "e1e-04_g3e-04"),
    ]
    assert plan.training_runs("two_phase", "e3e-05_g3e-04") == [
        ("two_phase", "e3e-05_g3e-04"),
        ("ft_gen", "g3e-04"),
    ]
    adapter = "res/d/p/ft_gen/lr3e-04/adapter"
    assert plan.tuned_generator("d", "p", "two_phase", "e3e-05_g3e-04") == (adapter, adapter)
    assert plan.joint_lrs("two_phase", "e3e-05_g3e-04") == {"embed": 3e-5, "gen": None}
    assert plan.chosen_lrs("d", "p", "rag_tok") == "e3e-05_g3e-04"
    # Without Ft. Gen. there is no phase 1 to take (config.check says so first).
    no_gen = {k: v for k, v in default.items() if k != "ft_gen"}
    assert "two_phase" not in make(no_gen)[0].active


def test_the_search_behind_each_row():
    plan, _ = make()
    assert plan.grid_points("d", "p", "no_ft") == []
    assert plan.grid_points("d", "p", "indp") == [
        ("ft_embed", "e3e-05"),
        ("ft_embed", "e1e-04"),
        ("ft_gen", "g3e-04"),
        ("ft_gen", "g1e-03"),
    ]
    two_phase = plan.grid_points("d", "p", "two_phase")
    assert two_phase == [
        ("two_phase_1", "g3e-04"),
        ("two_phase_1", "g1e-03"),
        ("two_phase", "e3e-05_g1e-03"),
        ("two_phase", "e1e-04_g1e-03"),
    ]
    assert plan.grid_points("d", "p", "rag_tok") == two_phase + [("rag_tok", "e3e-05_g1e-03")]


def test_the_training_jobs_behind_a_run():
    plan, _ = make()
    assert plan.training_runs("no_ft", "base") == []
    assert plan.training_runs("indp", "e1e-04_g3e-04") == [
        ("ft_embed", "e1e-04"),
        ("ft_gen", "g3e-04"),
    ]
    assert plan.training_runs("two_phase", "e3e-05_g1e-03") == [
        ("two_phase", "e3e-05_g1e-03"),
        ("two_phase_1", "g1e-03"),
    ]
    assert plan.train_job("d", "p", "ft_embed", "e1e-04") == {
        "record": "res/d/models/mini/ft_embed/lr1e-04/train.json",
        "benchmark": "res/benchmarks/train_embedder/d/mini/lr1e-04.jsonl",
    }
    assert plan.train_job("d", "p", "rag_seq", "e1e-04_g3e-04")["benchmark"] == (
        "res/benchmarks/train_joint/d/p/rag_seq/e1e-04_g3e-04.jsonl"
    )


def test_which_models_a_run_reads():
    plan, _ = make()
    adapter = "res/d/p/ft_gen/lr3e-04/adapter"
    assert plan.tuned_generator("d", "p", "indp", "e1e-04_g3e-04") == (adapter, adapter)
    assert plan.tuned_generator("d", "p", "ft_embed", "e1e-04") is None
    phase1 = "res/d/p/two_phase_1/g1e-03/model"
    assert plan.tuned_generator("d", "p", "two_phase", "e3e-05_g1e-03") == (
        phase1,
        f"{phase1}/adapter",
    )
    assert plan.tuned_generator("d", "p", "two_phase_1", "g1e-03") == (phase1, f"{phase1}/adapter")
    rag = "res/d/p/rag_tok/e3e-05_g1e-03/model"
    assert plan.tuned_generator("d", "p", "rag_tok", "e3e-05_g1e-03") == (rag, f"{rag}/adapter")
    assert plan.retrieval_variant("p", "indp", "e1e-04_g3e-04") == "ft_embed/e1e-04"
    assert plan.retrieval_variant("p", "ft_gen", "g3e-04") == "base"
    assert plan.retrieval_variant("p", "two_phase", "e3e-05_g1e-03") == "p/two_phase/e3e-05_g1e-03"
    assert (
        plan.tuned_query_encoder("d", "mini", "ft_embed/e1e-04")
        == ("res/d/models/mini/ft_embed/lr1e-04/model",) * 2
    )
    assert plan.joint_lrs("two_phase", "e3e-05_g1e-03") == {"embed": 3e-5, "gen": None}
    assert plan.joint_lrs("two_phase_1", "g1e-03") == {"embed": None, "gen": 1e-3}
    assert plan.joint_lrs("rag_seq", "e3e-05_g1e-03") == {"embed": 3e-5, "gen": 1e-3}


def test_a_joint_strategy_can_search_its_own_grid():
    own = {
        **STRATEGIES,
        "rag_tok": {"lrs_from": "own", "embed_lrs": [1e-5], "gen_lrs": [1e-4, 3e-4]},
    }
    plan, _ = make(own, {**WINNERS, "rag_tok": "e1e-05_g1e-04"})
    assert plan.selected[-1] == "rag_tok"
    assert plan.grid_lrs("d", "p", "rag_tok") == ["e1e-05_g1e-04", "e1e-05_g3e-04"]
    assert plan.chosen_lrs("d", "p", "rag_tok") == "e1e-05_g1e-04"
    assert plan.grid_points("d", "p", "rag_tok") == [
        ("rag_tok", "e1e-05_g1e-04"),
        ("rag_tok", "e1e-05_g3e-04"),
    ]


@pytest.mark.parametrize(
    "strategies, rows",
    [
        ({"ft_gen": {"lrs": [1e-4]}}, ["no_ft", "ft_gen"]),
        (
            {"ft_embed": {"lrs": [1e-5]}, "ft_gen": {"lrs": [1e-4]}},
            ["no_ft", "ft_embed", "ft_gen", "indp"],
        ),
        # RAG-Seq. borrowing 2-Phase's LRs runs only where 2-Phase does
        ({"rag_seq": {"lrs_from": "two_phase"}}, ["no_ft"]),
        (
            {"rag_seq": {"lrs_from": "own", "embed_lrs": [1e-5], "gen_lrs": [1e-4]}},
            ["no_ft", "rag_seq"],
        ),
    ],
)
def test_strategies_run_only_where_their_grids_are(strategies, rows):
    plan, _ = make(strategies)
    assert plan.rows == rows


def seeded(seeds=(13, 14)):
    plan, _ = make()
    return P.Plan({**plan.config, "seeds": list(seeds), "seed": 13}, plan.winner)


def test_without_seeds_no_path_carries_one():
    plan, _ = make()
    plan.config["seed"] = 13
    assert plan.runs("g3e-04") == ["g3e-04"] and plan.runs("base") == ["base"]
    assert plan.training_seed("g3e-04") == 13 and plan.training_seed("3e-04") == 13


def test_seeds_repeat_every_training_run_and_keep_grid_points_seedless():
    plan = seeded()
    assert plan.runs("e3e-05_g1e-03") == ["e3e-05_g1e-03_s13", "e3e-05_g1e-03_s14"]
    assert plan.runs("base") == ["base"]  # nothing trains: one run
    assert P.without_seed("e3e-05_g1e-03_s14") == "e3e-05_g1e-03"
    assert P.parse_lrs("g1e-03_s14") == {"g": "1e-03", "s": "14"}
    assert P.format_lrs(gen=1e-3, seed=14) == "g1e-03_s14"
    # The grid, the winner and the chosen LRs are points: selected on the mean over seeds.
    assert plan.grid_lrs("d", "p", "ft_gen") == ["g3e-04", "g1e-03"]
    assert plan.chosen_lrs("d", "p", "indp") == "e1e-04_g3e-04"
    # A run, and the folder part of a Ft. Embed. / Ft. Gen. job, say which seed trains it.
    assert plan.training_seed("e3e-05_g1e-03_s14") == 14
    assert plan.training_seed("3e-04_s14") == 14


def test_a_seeded_run_reads_the_same_seed_s_parts():
    plan = seeded()
    # Indp.: seed 14's embedder and seed 14's generator.
    assert plan.training_runs("indp", "e1e-04_g3e-04_s14") == [
        ("ft_embed", "e1e-04_s14"),
        ("ft_gen", "g3e-04_s14"),
    ]
    assert plan.retrieval_variant("p", "indp", "e1e-04_g3e-04_s14") == "ft_embed/e1e-04_s14"
    assert (
        plan.tuned_generator("d", "p", "indp", "e1e-04_g3e-04_s14")
        == ("res/d/p/ft_gen/lr3e-04_s14/adapter",) * 2
    )
    assert (
        plan.tuned_query_encoder("d", "mini", "ft_embed/e1e-04_s14")
        == ("res/d/models/mini/ft_embed/lr1e-04_s14/model",) * 2
    )
    # 2-Phase's second phase trains on its first phase's generator of the same seed.
    assert plan.training_runs("two_phase", "e3e-05_g1e-03_s14") == [
        ("two_phase", "e3e-05_g1e-03_s14"),
        ("two_phase_1", "g1e-03_s14"),
    ]
    assert plan.tuned_generator("d", "p", "two_phase", "e3e-05_g1e-03_s14") == (
        "res/d/p/two_phase_1/g1e-03_s14/model",
        "res/d/p/two_phase_1/g1e-03_s14/model/adapter",
    )
    job = plan.train_job("d", "p", "ft_gen", "g3e-04_s14")
    assert job["record"] == "res/d/p/ft_gen/lr3e-04_s14/train.json"
    assert job["benchmark"].endswith("train_generator/d/p/lr3e-04_s14.jsonl")


def _written_metrics(folder, paths, f1_of) -> list[str]:
    """Each planned metrics path written under ``folder`` with F1 ``f1_of(path's parts)``."""
    from ragtune.io import write_json

    for path in paths:
        write_json(folder / path, {"f1": f1_of(path.split("/"))})
    return [str(folder / path) for path in paths]


def test_a_seeded_grid_is_chosen_on_its_mean_over_seeds(tmp_path):
    """select_lr reads the metrics the plan lists, point by point with each point's seeds
    together, and picks the best mean: here seed 13 alone would pick 3e-4, the mean 1e-3."""
    from ragtune.io import read_json
    from ragtune.selection import select_lr

    plan = seeded()
    paths = plan.validation_metrics("d", "p", "ft_gen")
    assert paths == [
        f"res/d/p/ft_gen/{run}/validation/metrics.json"
        for run in ("g3e-04_s13", "g3e-04_s14", "g1e-03_s13", "g1e-03_s14")
    ]
    f1 = {"g3e-04_s13": 50.0, "g3e-04_s14": 10.0, "g1e-03_s13": 40.0, "g1e-03_s14": 30.0}
    files = _written_metrics(tmp_path, paths, lambda parts: f1[parts[4]])
    out = tmp_path / "selected.json"
    grid = plan.grid_lrs("d", "p", "ft_gen")
    assert select_lr(files, grid, "f1", str(out), seeds=[13, 14]) == "g1e-03"
    record = read_json(out)
    assert record["scores"] == {"g3e-04": 30.0, "g1e-03": 35.0}
    assert record["seed_scores"] == {"g3e-04": [50.0, 10.0], "g1e-03": [40.0, 30.0]}
    assert record["seed_sd"]["g1e-03"] == pytest.approx(7.0710678)
    with pytest.raises(ValueError, match="x 2 seed\\(s\\)"):
        select_lr(files[:3], grid, "f1", str(out), seeds=[13, 14])


def test_the_wildcard_patterns_take_seeded_runs():
    import re

    for lrs in ("base", "g1e-03", "e3e-05_g1e-03", "e3e-05_g1e-03_s14", "g1e-03_s7"):
        assert re.fullmatch(P.LRS_RE, lrs), lrs
    for bad in ("s14", "g1e-03_s", "g1e-03_x14"):
        assert not re.fullmatch(P.LRS_RE, bad), bad
    assert re.fullmatch(P.LR_RE, "3e-04_s14") and re.fullmatch(P.LR_RE, "3e-04")
    assert re.fullmatch(P.TUNED_VARIANT_RE, "ft_embed/e1e-04_s14")
    assert P.lr_value("3e-04_s14") == P.lr_value("3e-04") == 3e-4


def test_what_the_tables_and_figures_read():
    """table_rows, loss_curves and selections: the report's view of the plan (the workflow
    tests check the tables made from them)."""
    default = {**STRATEGIES, "two_phase": {"embed_lrs": [3e-5, 1e-4]}}
    plan, _ = make(default, {**WINNERS, "two_phase": "e3e-05_g3e-04"})
    plan.config["datasets"] = {"d": {}}
    plan.config["evaluation"] = {"splits": ["validation", "test"]}
    rows = plan.table_rows()
    assert len(rows) == 7 * 2  # seven strategies x two splits, one dataset and pipeline
    two_phase = next(r for r in rows if r["strategy"] == "two_phase")
    assert [j["record"] for j in two_phase["chosen"]] == [
        "res/d/p/two_phase/e3e-05_g3e-04/train.json",
        "res/d/p/ft_gen/lr3e-04/train.json",
    ]
    # Ft. Gen.'s run is drawn once, though it is 2-Phase's phase 1 too.
    folders = [c["folder"] for c in plan.loss_curves()]
    assert len(folders) == len(set(folders)) and "res/d/p/ft_gen/lr3e-04/adapter" in folders
    assert [s["strategy"] for s in plan.selections()] == [
        "Ft. Embed.",
        "Ft. Gen.",
        "2-Phase, phase 2",
    ]
    assert "res/d/p/no_ft/base/test/metrics.json" in plan.table_inputs()
    assert plan.layout.report_targets(["averaged"], ["strategies"]) == [
        "res/report/config.yaml",
        "res/tables/averaged.csv",
        "res/tables/averaged.md",
        "res/tables/averaged.tex",
        "res/figures/strategies.png",
    ]


def test_ft_embed_s_lr_can_be_chosen_per_embedder(tmp_path):
    """selection.ft_embed_per: embedder scores Ft. Embed.'s grid on every pipeline of the
    embedder (the paper gives both generators one Ft. Embed. LR); other grids stay per
    pipeline."""
    from ragtune.io import read_json
    from ragtune.selection import select_lr

    plan, _ = make()
    plan.pipelines.update({"q": {"embedder": "mini", "generator": "big"},
                           "r": {"embedder": "other", "generator": "smol"}})  # fmt: skip
    assert plan.selection_pipelines("p", "ft_embed") == ["p"]
    plan.config["selection"] = {"ft_embed_per": "embedder"}
    assert plan.selection_pipelines("q", "ft_embed") == ["p", "q"]
    assert plan.selection_pipelines("p", "ft_gen") == ["p"]
    paths = plan.validation_metrics("d", "p", "ft_embed")
    assert paths == [
        "res/d/p/ft_embed/e3e-05/validation/metrics.json",
        "res/d/q/ft_embed/e3e-05/validation/metrics.json",
        "res/d/p/ft_embed/e1e-04/validation/metrics.json",
        "res/d/q/ft_embed/e1e-04/validation/metrics.json",
    ]
    # p prefers 1e-4 by a little, q prefers 3e-5 by a lot: the embedder's mean picks 3e-5.
    scores = {"p": {"e3e-05": 40.0, "e1e-04": 41.0}, "q": {"e3e-05": 50.0, "e1e-04": 30.0}}
    files = _written_metrics(tmp_path, paths, lambda parts: scores[parts[2]][parts[4]])
    grid = ["e3e-05", "e1e-04"]
    out = tmp_path / "selected.json"
    assert select_lr(files, grid, "f1", str(out), pipelines=["p", "q"]) == "e3e-05"
    assert read_json(out)["scores"] == {"e3e-05": 45.0, "e1e-04": 35.5}
    assert read_json(out)["pipelines"] == ["p", "q"]
    with pytest.raises(ValueError, match="x 1 seed\\(s\\) x 2 pipeline\\(s\\)"):
        select_lr(files[:3], grid, "f1", str(out), pipelines=["p", "q"])


# -- beyond the paper: PDist / LSR / LOOP, and document-side training ------------------------
JUDGED = {
    "ft_gen": {"lrs": [3e-4, 1e-3]},
    "pdist": {"embed_lrs": [3e-5, 1e-4]},  # the base generator judges (the default)
    "lsr": {"embed_lrs": [1e-5], "temperature": 0.5},
    "loop": {"embed_lrs": [3e-5], "generator": "ft_gen"},  # Ft. Gen.'s winner judges
}


def test_a_strategy_beyond_the_paper_is_one_row_and_its_loss():
    """PDist, LSR and LOOP are rows of STRATEGIES: they plan, select and train like any
    embedder-only joint strategy, with a frozen judge that is the base or Ft. Gen.'s winner."""
    plan, _ = make(JUDGED, {**WINNERS, "pdist": "e1e-04", "lsr": "e1e-05", "loop": "e3e-05_g3e-04"})
    assert plan.rows == ["no_ft", "ft_gen", "pdist", "lsr", "loop"]
    assert plan.selected == ["ft_gen", "pdist", "lsr", "loop"]
    assert not any(P.STRATEGIES[s].in_paper for s in ("pdist", "lsr", "loop"))
    # On the base generator: an embedder-only grid, no generator input, nothing else's time.
    assert plan.grid_lrs("d", "p", "pdist") == ["e3e-05", "e1e-04"]
    assert plan.joint_lrs("pdist", "e1e-04") == {"embed": 1e-4, "gen": None}
    assert plan.joint_generator("d", "p", "pdist", "e1e-04") == ([], "org/smol")
    assert plan.run_generator("d", "p", "pdist", "e1e-04") == ([], "org/smol")
    assert plan.training_runs("pdist", "e1e-04") == [("pdist", "e1e-04")]
    assert plan.retrieval_variant("p", "pdist", "e1e-04") == "p/pdist/e1e-04"
    # On Ft. Gen.'s winner: its grid is at that LR, its adapter is the frozen judge and the
    # generator evaluated, and its time and grid cost add Ft. Gen.'s, as 2-Phase's do.
    assert plan.grid_lrs("d", "p", "loop") == ["e3e-05_g3e-04"]
    adapter = "res/d/p/ft_gen/lr3e-04/adapter"
    assert plan.joint_generator("d", "p", "loop", "e3e-05_g3e-04") == ([adapter], adapter)
    assert plan.run_generator("d", "p", "loop", "e3e-05_g3e-04") == ([adapter], adapter)
    assert plan.training_runs("loop", "e3e-05_g3e-04") == [
        ("loop", "e3e-05_g3e-04"),
        ("ft_gen", "g3e-04"),
    ]
    assert [s for s, _ in plan.grid_points("d", "p", "loop")] == ["ft_gen", "ft_gen", "loop"]
    # The loss and the settings that shape it: a changed temperature re-trains that row only.
    assert plan.loss_params("pdist") == {"name": "pdist", "temperature": 1.0}
    assert plan.loss_params("lsr") == {"name": "lsr", "temperature": 0.5}
    plan.config["generation"] = {"max_prompt_tokens": 1536}
    assert plan.loss_params("loop") == {
        "name": "loop",
        "temperature": 1.0,
        "max_prompt_tokens": 1536,  # LOOP scores the concatenated prompt evaluation uses
    }
    assert (
        P.Plan({**plan.config, "strategies": STRATEGIES}, plan.winner).loss_params("rag_tok")
        == "rag_token"
    )


def test_a_judged_strategy_needs_its_judge_and_more_than_one_chunk():
    from ragtune.config import _check_judged

    assert _check_judged({"loop": {"embed_lrs": [1e-5], "generator": "ft_gen"}}) == [
        "strategies.loop.generator is ft_gen, but strategies.ft_gen.lrs is not set: give Ft. "
        "Gen. its grid, or set strategies.loop.generator: base"
    ]
    assert _check_judged(JUDGED) == []
    # With one chunk the target and the retriever are both [1]: nothing would train.
    assert _check_judged({"pdist": {"embed_lrs": [1e-5]}}, k=1) == [
        "strategies.pdist: retrieval.k is 1, but PDist learns a distribution over the top k, "
        "which with one chunk is always [1] (the loss would be 0 at every step): set "
        "retrieval.k to at least 2, or drop strategies.pdist"
    ]


def _documents(plan, on=True, most=20):
    plan.config.update(
        training={"embedder": {"train_documents": on, "max_refreshes": most}},
        corpus={"name": "wiki", "shards": 2},
        datasets={"d": {}},
        evaluation={"splits": ["validation", "test"]},
    )
    return plan


def test_only_runs_that_train_documents_search_their_own_index():
    plan, _ = make({**STRATEGIES, "pdist": {"embed_lrs": [3e-5]}}, {**WINNERS, "pdist": "e3e-05"})
    _documents(plan, on=False)
    assert plan.refreshes() == []
    base = {"index": "res/corpus/wiki/index/mini/index.faiss",
            "store": "res/corpus/wiki/index/mini/store.json"}  # fmt: skip
    assert plan.search_index("d", "mini", "p/pdist/e3e-05") == base
    assert all(not point["refresh"] for r in plan.table_rows() for point in r["grid"])

    _documents(plan)
    own = "res/d/refreshed/mini/p/pdist/e3e-05/index"
    assert plan.search_index("d", "mini", "p/pdist/e3e-05") == {
        "index": f"{own}/index.faiss",
        "store": f"{own}/store.json",
    }
    assert plan.search_index("d", "mini", "base") == base
    rows = {r["strategy"]: r for r in plan.table_rows() if r["split"] == "validation"}
    # No Ft. and Ft. Gen. trained no embedder: nothing to re-embed.
    assert not rows["no_ft"]["grid"] and not any(p["refresh"] for p in rows["ft_gen"]["grid"])
    refresh = next(p["refresh"] for p in rows["pdist"]["grid"])
    assert [j["record"] for j in refresh] == [
        "res/d/refreshed/mini/p/pdist/e3e-05/embeddings/shard-000.json",
        "res/d/refreshed/mini/p/pdist/e3e-05/embeddings/shard-001.json",
        f"{own}/info.json",
    ]
    assert {j["record"] for j in refresh} <= set(plan.table_inputs())
    # Every embedder-training run, once: Ft. Embed. 2, 2-Phase's phase 2 2, RAG-Seq. and
    # RAG-Tok. 1 each, PDist 1 (Indp. reuses Ft. Embed.'s; phase 1 trains no embedder).
    assert len(plan.refreshes()) == 7


def test_planning_warns_when_the_corpus_would_be_re_embedded_too_often(capsys):
    from ragtune.preflight import warn_refreshes

    plan, _ = make()
    assert warn_refreshes(_documents(plan, most=6).config) is None  # 6 is not more than 6
    line = warn_refreshes(_documents(plan, most=5).config)
    assert "re-embeds the corpus 6 times" in line and "max_refreshes (5)" in line
    assert line in capsys.readouterr().err


def test_the_captions_say_who_judged_and_that_documents_trained():
    plan, _ = make(JUDGED, {**WINNERS, "pdist": "e1e-04", "lsr": "e1e-05", "loop": "e3e-05_g3e-04"})
    notes = plan.caption_notes()
    assert "LOOP (beyond the paper) train the embedder with Ft. Gen.'s winning adapter" in notes
    assert "PDist, LSR (beyond the paper) train the embedder with the base generator" in notes
    assert "train_documents" not in notes
    assert "own re-embedded index" in _documents(plan).caption_notes()
    # the paper's strategies alone: only 2-Phase's accounting
    assert make()[0].caption_notes() == make()[0].two_phase_note()
