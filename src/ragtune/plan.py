"""The experiment plan: the strategies, what each trains and where its learning rates come
from, the runs a config trains, evaluates and selects, and where each lives on disk.

A run is a (dataset, pipeline, strategy, lrs) point. ``lrs`` names its learning rates in one
path part: ``base`` (nothing trained), ``e1e-05`` (the embedder's), ``g1e-04`` (the
generator's) or ``e1e-05_g1e-04`` (both); :func:`parse_lrs` and :func:`format_lrs` are the
only code that reads or writes it. Where the config lists ``seeds``, every training run is
repeated per seed and its ``lrs`` ends in the seed (``g1e-04_s14``): a grid point is then
the seedless ``lrs``, selected on its mean over seeds. With one seed (the default) no path
carries one, as before. A grid's winner comes from ``select_lr``, which Snakemake
runs as a checkpoint: the plan asks the ``winner`` callable it was given, so its dependencies
are planned only once the grid is evaluated.

Adding a strategy is a row of :data:`STRATEGIES` (plus its loss in ``ragtune.training``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

EMBEDDER, GENERATOR = "embedder", "generator"
LR_KEYS = {EMBEDDER: "e", GENERATOR: "g"}


@dataclass(frozen=True)
class Strategy:
    name: str  # its folder name under results/<dataset>/<pipeline>/
    label: str  # its row label in the paper's tables
    trains: tuple[str, ...] = ()  # the sides its own training job updates
    job: str | None = None  # the rule of its own training job
    loss: str | None = None  # the marginal likelihood of a joint job
    combines: tuple[str, ...] = ()  # runs no job: the winners of these strategies together
    after: str | None = None  # trains on top of this strategy's winner (its generator, frozen)
    borrows: str | None = None  # by default takes this strategy's winning LRs, not a grid
    row: bool = True  # a row of the tables (2-Phase's first phase is not)
    # Its embedder learns a frozen generator's judgement of its top-k (ragtune.training.distill):
    # that generator is the base or Ft. Gen.'s winner, config `generator: base | ft_gen`.
    judged: bool = False
    in_paper: bool = True  # the paper reports it (the comparison with the paper shows it)


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy("no_ft", "No Ft."),
        Strategy("ft_embed", "Ft. Embed.", (EMBEDDER,), "train_embedder"),
        Strategy("ft_gen", "Ft. Gen.", (GENERATOR,), "train_generator"),
        Strategy("indp", "Indp.", combines=("ft_embed", "ft_gen")),
        # 2-Phase: a generator trained with the embedder frozen, selected on validation, then
        # RAG-Token on the embedder with that generator frozen. Phase 1 is Ft. Gen.'s winner by
        # default (`two_phase.phase1: ft_gen`, what the paper's tables show: Plan.after), or
        # its own RAG-Token grid (`phase1: rag_token`), this row.
        Strategy(
            "two_phase_1", "2-Phase, phase 1", (GENERATOR,), "train_joint", "rag_token", row=False
        ),
        Strategy(
            "two_phase", "2-Phase", (EMBEDDER,), "train_joint", "rag_token", after="two_phase_1"
        ),
        Strategy(
            "rag_seq",
            "RAG-Seq.",
            (EMBEDDER, GENERATOR),
            "train_joint",
            "rag_sequence",
            borrows="two_phase",
        ),
        Strategy(
            "rag_tok",
            "RAG-Tok.",
            (EMBEDDER, GENERATOR),
            "train_joint",
            "rag_token",
            borrows="two_phase",
        ),
        # Beyond the paper (config/beyond.yaml): the embedder alone trains, on the loss of
        # ragtune.training.distill, with the generator frozen.
        Strategy(
            "pdist", "PDist", (EMBEDDER,), "train_joint", "pdist", judged=True, in_paper=False
        ),
        Strategy("lsr", "LSR", (EMBEDDER,), "train_joint", "lsr", judged=True, in_paper=False),
        Strategy("loop", "LOOP", (EMBEDDER,), "train_joint", "loop", judged=True, in_paper=False),
    )
}
LABELS = {name: s.label for name, s in STRATEGIES.items()}
JOINT = [name for name, s in STRATEGIES.items() if s.job == "train_joint"]


def format_lr(lr: float | str) -> str:
    """1e-05 style: short, sortable by eye, and the same string in every path."""
    return f"{float(lr):.0e}"


def format_lrs(
    embed: str | float | None = None, gen: str | float | None = None, seed: int | str | None = None
) -> str:
    parts = [f"e{format_lr(embed)}"] if embed is not None else []
    parts += [f"g{format_lr(gen)}"] if gen is not None else []
    return with_seed("_".join(parts) or "base", seed)


def parse_lrs(lrs: str) -> dict[str, str]:
    """'e1e-05_g1e-04' -> {'e': '1e-05', 'g': '1e-04'}; 'base' -> {}; a seeded run's
    'g1e-04_s14' -> {'g': '1e-04', 's': '14'}."""
    if lrs == "base":
        return {}
    return {part[0]: part[1:] for part in lrs.split("_")}


def with_seed(lrs: str, seed: int | str | None) -> str:
    """A seeded run of grid point ``lrs`` (nothing trains in ``base``, so it has no seed)."""
    return lrs if seed is None or lrs == "base" else f"{lrs}_s{seed}"


def without_seed(lrs: str) -> str:
    """The grid point of a (possibly seeded) run."""
    parts = parse_lrs(lrs)
    return format_lrs(parts.get("e"), parts.get("g"))


def lr_part(lrs: str, key: str) -> str:
    """One side's LR of a run, with the run's seed: the ``lr`` part of a Ft. Embed. or Ft. Gen.
    folder (``lr1e-04``, or ``lr1e-04_s14``)."""
    parts = parse_lrs(lrs)
    return with_seed(parts[key], parts.get("s"))


def lr_value(lr: str) -> float:
    """The learning rate of a Ft. Embed. / Ft. Gen. folder's ``lr`` part (``1e-04_s14``)."""
    return float(lr.partition("_s")[0])


# A `lrs` path part, as a wildcard constraint (a seeded run's ends in _s<seed>).
LRS_RE = r"base|(e[^_/]+|g[^_/]+|e[^_/]+_g[^_/]+)(_s\d+)?"
# The `lr` part of a Ft. Embed. or Ft. Gen. folder.
LR_RE = r"[0-9.e+-]+(_s\d+)?"


class Layout:
    """Where every output lives under the results folder."""

    # Folders of the layout itself, which a dataset (results/<dataset>/) or a pipeline
    # (results/<dataset>/<pipeline>/) of the same name would write into.
    RESULTS_FOLDERS = ("benchmarks", "corpus", "figures", "logs", "models", "report", "tables")
    DATASET_FOLDERS = ("models", "qa", "refreshed", "retrieval")

    def __init__(self, results: str, corpus: str):
        self.results, self.corpus = results, corpus

    def log(self, rule: str, *parts: str) -> str:
        return os.path.join(self.results, "logs", rule, *parts) + ".log"

    def benchmark(self, rule: str, *parts: str) -> str:
        # Snakemake writes one JSON record per run for a .jsonl benchmark file.
        return os.path.join(self.results, "benchmarks", rule, *parts) + ".jsonl"

    def qa_split(self, dataset: str, split: str) -> str:
        return f"{self.results}/{dataset}/qa/{split}.jsonl"

    def qa_sizes(self, dataset: str) -> str:
        return f"{self.results}/{dataset}/qa/sizes.json"

    def doc_shard(self, shard: str) -> str:
        return f"{self.results}/corpus/{self.corpus}/docs/shard-{shard}.jsonl"

    def chunk_offsets(self, shard: str) -> str:
        return f"{self.results}/corpus/{self.corpus}/chunks/shard-{shard}.offsets.npy"

    def chunk_shard(self, shard: str) -> str:
        return f"{self.results}/corpus/{self.corpus}/chunks/shard-{shard}.jsonl"

    def embedding_shard(self, embedder: str, shard: str) -> str:
        return f"{self.results}/corpus/{self.corpus}/embeddings/{embedder}/shard-{shard}.npy"

    def index_dir(self, embedder: str) -> str:
        return f"{self.results}/corpus/{self.corpus}/index/{embedder}"

    def table(self, name: str, ext: str = "csv") -> str:
        return f"{self.results}/tables/{name}.{ext}"

    def figure(self, name: str, ext: str = "png") -> str:
        return f"{self.results}/figures/{name}.{ext}"

    def report_config(self) -> str:
        return f"{self.results}/report/config.yaml"

    def report_targets(self, tables: list[str], figures: list[str]) -> list[str]:
        """What a full run ends in: the report's config, every table in its three formats and
        every figure."""
        return (
            [self.report_config()]
            + [self.table(t, ext) for t in tables for ext in ("csv", "md", "tex")]
            + [self.figure(f) for f in figures]
        )

    def index_info(self, embedder: str) -> str:
        return f"{self.index_dir(embedder)}/info.json"

    def index_file(self, embedder: str) -> str:
        return f"{self.index_dir(embedder)}/index.faiss"

    def store_manifest(self, embedder: str) -> str:
        """The chunk and embedding shards as one input: jobs read their paths from it (see
        ragtune.retrieval.store.write_manifest for why)."""
        return f"{self.index_dir(embedder)}/store.json"

    def converted_generator(self, generator: str) -> str:
        return f"{self.results}/models/{generator}"

    def tuned_embedder_dir(self, dataset: str, embedder: str, lr: str) -> str:
        return f"{self.results}/{dataset}/models/{embedder}/ft_embed/lr{lr}/model"

    def adapter_dir(self, dataset: str, pipeline: str, lr: str) -> str:
        return f"{self.results}/{dataset}/{pipeline}/ft_gen/lr{lr}/adapter"

    def run_dir(self, dataset: str, pipeline: str, strategy: str, lrs: str) -> str:
        return f"{self.results}/{dataset}/{pipeline}/{strategy}/{lrs}"

    def joint_model_dir(self, dataset: str, pipeline: str, strategy: str, lrs: str) -> str:
        """A joint run's output: query_encoder/ and/or adapter/, whichever side it trained."""
        return f"{self.run_dir(dataset, pipeline, strategy, lrs)}/model"

    def metrics(self, dataset: str, pipeline: str, strategy: str, lrs: str, split: str) -> str:
        return f"{self.run_dir(dataset, pipeline, strategy, lrs)}/{split}/metrics.json"

    def predictions(self, dataset: str, pipeline: str, strategy: str, lrs: str, split: str):
        return f"{self.run_dir(dataset, pipeline, strategy, lrs)}/{split}/predictions.jsonl"

    def train_record(self, model_dir: str) -> str:
        """A training job's train.json, beside its model folder."""
        return f"{os.path.dirname(model_dir)}/train.json"

    def report_html(self) -> str:
        return f"{self.results}/report.html"

    def selected(self, dataset: str, pipeline: str, strategy: str) -> str:
        return f"{self.results}/{dataset}/{pipeline}/{strategy}/selected.json"

    def retrieval(self, dataset: str, embedder: str, variant: str, split: str) -> str:
        return f"{self.results}/{dataset}/retrieval/{embedder}/{variant}/{split}.jsonl"

    # A run that trained its document encoder (training.embedder.train_documents): the corpus
    # re-embedded by it and its own index, beside its dataset's other outputs.
    def refreshed_dir(self, dataset: str, embedder: str, variant: str) -> str:
        return f"{self.results}/{dataset}/refreshed/{embedder}/{variant}"

    def refreshed_shard(self, dataset: str, embedder: str, variant: str, shard: str) -> str:
        return f"{self.refreshed_dir(dataset, embedder, variant)}/embeddings/shard-{shard}.npy"

    def refreshed_shard_record(self, dataset: str, embedder: str, variant: str, shard: str):
        return self.refreshed_shard(dataset, embedder, variant, shard)[: -len(".npy")] + ".json"

    def refreshed_index_file(self, dataset: str, embedder: str, variant: str) -> str:
        return f"{self.refreshed_dir(dataset, embedder, variant)}/index/index.faiss"

    def refreshed_index_info(self, dataset: str, embedder: str, variant: str) -> str:
        return f"{self.refreshed_dir(dataset, embedder, variant)}/index/info.json"

    def refreshed_store(self, dataset: str, embedder: str, variant: str) -> str:
        return f"{self.refreshed_dir(dataset, embedder, variant)}/index/store.json"


# Which query encoder a retrieval used: base, Ft. Embed.'s or a joint run's (wildcard).
TUNED_VARIANT_RE = r"ft_embed/e[^/]+|[^/]+/(" + "|".join(JOINT) + r")/e[^/]+"


class Plan:
    """The runs of one config. ``winner(dataset, pipeline, strategy)`` returns a selected
    grid's winning ``lrs`` (in the workflow, by reading select_lr's checkpoint output)."""

    def __init__(
        self,
        config: dict[str, Any],
        winner: Callable[[str, str, str], str],
        layout: Layout | None = None,
    ):
        self.config = config
        self.spec = config["strategies"]
        self.winner = winner
        self.layout = layout or Layout(config["results"], config["corpus"]["name"])
        self.pipelines = config["pipelines"]
        self.active = [name for name in STRATEGIES if self._runs(name)]
        # None: the one seed of the config's `seed`, and no seed in any path.
        self.seeds: list[int | None] = list(config.get("seeds") or [None])

    # -- seeds --------------------------------------------------------------------------------
    def runs(self, lrs: str) -> list[str]:
        """The runs of grid point ``lrs``: one per seed (``base`` trains nothing: one)."""
        return list(dict.fromkeys(with_seed(lrs, seed) for seed in self.seeds))

    def training_seed(self, lrs: str) -> int:
        """The seed a run (or a Ft. Embed. / Ft. Gen. ``lr`` part) trains with."""
        _, seeded, seed = lrs.rpartition("_s")
        return int(seed) if seeded else int(self.config["seed"])

    # -- which strategies run --------------------------------------------------------------
    def _configured(self, name: str) -> dict | None:
        """The config block that switches ``name`` on (2-Phase's phases share one)."""
        return self.spec.get("two_phase" if name == "two_phase_1" else name)

    def _own_grid(self, name: str) -> bool:
        """Whether a strategy that can borrow another's winning LRs searches its own grid."""
        s = STRATEGIES[name]
        return bool(s.borrows) and (self.spec.get(name) or {}).get("lrs_from", s.borrows) == "own"

    @property
    def phase1(self) -> str:
        """2-Phase's first phase: ``ft_gen`` (Ft. Gen.'s winner) or ``rag_token`` (its own)."""
        return (self.spec.get("two_phase") or {}).get("phase1", "ft_gen")

    def after(self, name: str) -> str | None:
        """The strategy whose winning generator ``name`` trains on top of (frozen)."""
        s = STRATEGIES[name]
        if s.after == "two_phase_1" and self.phase1 == "ft_gen":
            return "ft_gen"
        if s.judged:
            chosen = (self._configured(name) or {}).get("generator", "base")
            return "ft_gen" if chosen == "ft_gen" else None
        return s.after

    def two_phase_note(self) -> str:
        """How the tables count 2-Phase's time and grid cost, for their captions."""
        if "two_phase" not in self.active:
            return ""
        if self.phase1 == "ft_gen":
            return (
                "2-Phase's phase 1 is Ft. Gen.'s winning run: its Time adds that run to phase "
                "2 and its grid cost adds Ft. Gen.'s grid (the paper's Figure 3 counts it so; "
                "its Figures 6/7 show phase 2 alone)"
            )
        return (
            "2-Phase's phase 1 is its own RAG-Token grid: its Time adds the chosen phase-1 run "
            "to phase 2 and its grid cost both grids"
        )

    def caption_notes(self) -> str:
        """What the tables' captions must say about how this config's rows were made: 2-Phase's
        accounting, the judge of the strategies beyond the paper, document-side training."""
        notes = [self.two_phase_note()]
        judged = [n for n in self.rows if STRATEGIES[n].judged]
        for judge, words in (
            (
                "ft_gen",
                "Ft. Gen.'s winning adapter frozen (their Time and grid cost add Ft. Gen.'s)",
            ),
            (None, "the base generator frozen"),
        ):
            names = [STRATEGIES[n].label for n in judged if self.after(n) == judge]
            if names:
                notes.append(
                    f"{', '.join(names)} (beyond the paper) train the embedder with {words}"
                )
        if self.train_documents:
            notes.append(
                "training.embedder.train_documents: every run that trained the embedder trained "
                "its chunk side too and retrieves from its own re-embedded index (grid cost "
                "includes the re-embedding)"
            )
        return "; ".join(n for n in notes if n)

    def _runs(self, name: str) -> bool:
        s = STRATEGIES[name]
        if name == "no_ft":
            return True
        if name == "two_phase_1":
            return self._configured(name) is not None and self.phase1 == "rag_token"
        if self.after(name) == "ft_gen":
            return self._configured(name) is not None and self._runs("ft_gen")
        if s.combines:
            return all(self._runs(part) for part in s.combines)
        if s.job in ("train_embedder", "train_generator"):
            return bool((self._configured(name) or {}).get("lrs"))
        if s.borrows and not self._own_grid(name):
            return name in self.spec and self._runs(s.borrows)
        return self._configured(name) is not None

    @property
    def rows(self) -> list[str]:
        """The strategies of the tables, in the paper's order."""
        return [n for n in self.active if STRATEGIES[n].row]

    @property
    def selected(self) -> list[str]:
        """The strategies whose grid select_lr picks a winner from."""
        return [
            n
            for n in self.active
            if STRATEGIES[n].job and (not STRATEGIES[n].borrows or self._own_grid(n))
        ]

    # -- learning rates ---------------------------------------------------------------------
    def grid_lrs(self, dataset: str, pipeline: str, strategy: str) -> list[str]:
        """Every ``lrs`` of a strategy's grid. 2-Phase's second phase runs at its first phase's
        winning generator LR, so its grid is only known once that phase is selected."""
        s = STRATEGIES[strategy]
        block = self._configured(strategy)
        if s.job in ("train_embedder", "train_generator"):
            side = s.trains[0]
            return [format_lrs(**{_arg(side): lr}) for lr in block["lrs"]]
        gen = [format_lr(lr) for lr in block.get("gen_lrs", [])]
        embed = [format_lr(lr) for lr in block.get("embed_lrs", [])]
        if s.trains == (GENERATOR,):
            return [format_lrs(gen=g) for g in gen]
        if s.judged and not self.after(strategy):  # the base generator, frozen
            return [format_lrs(embed=e) for e in embed]
        if self.after(strategy):
            prior = parse_lrs(self.winner(dataset, pipeline, self.after(strategy)))
            return [format_lrs(embed=e, gen=prior["g"]) for e in embed]
        return [format_lrs(embed=e, gen=g) for e in embed for g in gen]

    def chosen_lrs(self, dataset: str, pipeline: str, strategy: str) -> str:
        s = STRATEGIES[strategy]
        if strategy == "no_ft":
            return "base"
        if s.combines:
            parts = {}
            for part in s.combines:
                parts.update(parse_lrs(self.winner(dataset, pipeline, part)))
            return format_lrs(parts.get("e"), parts.get("g"))
        if s.borrows and not self._own_grid(strategy):
            return self.winner(dataset, pipeline, s.borrows)  # the paper's way (§2.5)
        return self.winner(dataset, pipeline, strategy)

    def grid_points(self, dataset: str, pipeline: str, strategy: str) -> list[tuple[str, str]]:
        """Every (strategy, lrs) run of the search behind a row, each one training job plus
        its validation evaluation: Indp. = both grids, 2-Phase = both phases' grids, and a
        joint strategy that borrows 2-Phase's LRs = that search plus its own run."""
        s = STRATEGIES[strategy]
        if strategy == "no_ft":
            return []
        if s.combines:
            return [p for part in s.combines for p in self.grid_points(dataset, pipeline, part)]
        if self.after(strategy):
            phases = (self.after(strategy), strategy)
            return [(ph, lrs) for ph in phases for lrs in self.grid_lrs(dataset, pipeline, ph)]
        if s.borrows and not self._own_grid(strategy):
            lrs = self.chosen_lrs(dataset, pipeline, strategy)
            return self.grid_points(dataset, pipeline, s.borrows) + [(strategy, lrs)]
        return [(strategy, lrs) for lrs in self.grid_lrs(dataset, pipeline, strategy)]

    # -- what a run trains and reads --------------------------------------------------------
    def training_runs(self, strategy: str, lrs: str) -> list[tuple[str, str]]:
        """The (strategy, lrs) training jobs behind one run: Indp. has both halves', 2-Phase
        both phases' (Ft. Gen.'s run as phase 1 by default), so their time is the sum, as in
        the paper's Figure 3 (its 2-Phase times, 61.0 h and 9.4 h, are the mean 2-Phase time
        of Figures 6/7 plus the mean Ft. Gen. time); No Ft. has none."""
        s = STRATEGIES[strategy]
        parts = parse_lrs(lrs)
        if s.combines or strategy == "no_ft":
            out = []
            for part in s.combines:
                key = LR_KEYS[STRATEGIES[part].trains[0]]
                if key in parts:
                    out.append((part, f"{key}{lr_part(lrs, key)}"))
            return out
        runs = [(strategy, lrs)]
        if self.after(strategy):
            runs.append((self.after(strategy), format_lrs(gen=parts["g"], seed=parts.get("s"))))
        return runs

    def train_job(self, dataset: str, pipeline: str, strategy: str, lrs: str) -> dict[str, str]:
        """A training job's record (train.json) and Snakemake benchmark. Ft. Embed's job is
        the embedder's, shared by its pipelines."""
        lay = self.layout
        job = STRATEGIES[strategy].job
        if job == "train_embedder":
            embedder, lr = self.pipelines[pipeline]["embedder"], lr_part(lrs, "e")
            folder = os.path.dirname(lay.tuned_embedder_dir(dataset, embedder, lr))
            return {
                "record": f"{folder}/train.json",
                "benchmark": lay.benchmark(job, dataset, embedder, f"lr{lr}"),
            }
        if job == "train_generator":
            lr = lr_part(lrs, "g")
            folder = os.path.dirname(lay.adapter_dir(dataset, pipeline, lr))
            return {
                "record": f"{folder}/train.json",
                "benchmark": lay.benchmark(job, dataset, pipeline, f"lr{lr}"),
            }
        return {
            "record": f"{lay.run_dir(dataset, pipeline, strategy, lrs)}/train.json",
            "benchmark": lay.benchmark(job, dataset, pipeline, strategy, lrs),
        }

    def model_dir(self, dataset: str, pipeline: str, strategy: str, lrs: str) -> str:
        """The output folder of a training job (its loss.csv is inside)."""
        lay = self.layout
        job = STRATEGIES[strategy].job
        if job == "train_embedder":
            embedder = self.pipelines[pipeline]["embedder"]
            return lay.tuned_embedder_dir(dataset, embedder, lr_part(lrs, "e"))
        if job == "train_generator":
            return lay.adapter_dir(dataset, pipeline, lr_part(lrs, "g"))
        return lay.joint_model_dir(dataset, pipeline, strategy, lrs)

    def tuned_generator(self, dataset: str, pipeline: str, strategy: str, lrs: str):
        """(the rule output that holds a run's adapter, the adapter folder), or None for the
        base generator. A run on top of an earlier phase uses that phase's adapter, trained at
        the run's `g` LR."""
        parts = parse_lrs(lrs)
        g = parts.get("g")
        if g is None:
            return None
        s = STRATEGIES[strategy]
        after = self.after(strategy)
        if s.job == "train_generator" or "ft_gen" in s.combines or after == "ft_gen":
            path = self.layout.adapter_dir(dataset, pipeline, lr_part(lrs, "g"))
            return path, path
        if after:
            prior = format_lrs(gen=g, seed=parts.get("s"))
            model = self.layout.joint_model_dir(dataset, pipeline, after, prior)
        else:
            model = self.layout.joint_model_dir(dataset, pipeline, strategy, lrs)
        return model, f"{model}/adapter"

    def joint_lrs(self, strategy: str, lrs: str) -> dict[str, float | None]:
        """A joint run's learning rates: None for the side that stays frozen."""
        parts = parse_lrs(lrs)
        trains = STRATEGIES[strategy].trains
        return {
            "embed": float(parts["e"]) if EMBEDDER in trains else None,
            "gen": float(parts["g"]) if GENERATOR in trains else None,
        }

    def loss_params(self, strategy: str) -> str | dict:
        """A joint job's ``params.loss``: the marginal's name (RAG-Seq., RAG-Tok., 2-Phase), or
        a distillation loss with the settings that shape it, so that changing a temperature
        re-trains that strategy alone. LOOP scores the concatenated prompt evaluation uses, at
        evaluation's ``generation.max_prompt_tokens``."""
        s = STRATEGIES[strategy]
        if not s.judged:
            return s.loss
        block = self._configured(strategy) or {}
        out = {"name": s.loss, "temperature": float(block.get("temperature", 1.0))}
        if s.loss == "loop":
            out["max_prompt_tokens"] = int(self.config["generation"]["max_prompt_tokens"])
        return out

    @property
    def shards(self) -> list[str]:
        """The corpus shards' names in paths: 000, 001, ..."""
        return [f"{i:03d}" for i in range(self.config["corpus"]["shards"])]

    # -- document-side training: a run's own index -------------------------------------------
    @property
    def train_documents(self) -> bool:
        """``training.embedder.train_documents``: every strategy that trains the embedder
        trains its document side too, and its runs retrieve from their own index."""
        embedder = (self.config.get("training") or {}).get("embedder") or {}
        return bool(embedder.get("train_documents"))

    def refreshed(self, variant: str) -> bool:
        """Whether a retrieval variant searches its own re-embedded corpus."""
        return self.train_documents and variant != "base"

    def search_index(self, dataset: str, embedder: str, variant: str) -> dict[str, str]:
        """The index and store manifest a retrieval searches: the base embedder's, or, for a
        run that trained its document encoder, the corpus re-embedded by it."""
        lay = self.layout
        if self.refreshed(variant):
            return {
                "index": lay.refreshed_index_file(dataset, embedder, variant),
                "store": lay.refreshed_store(dataset, embedder, variant),
            }
        return {"index": lay.index_file(embedder), "store": lay.store_manifest(embedder)}

    def refresh_jobs(self, dataset: str, pipeline: str, strategy: str, lrs: str) -> list:
        """The jobs that re-embed a run's corpus and index it (none unless it trained its
        document encoder): their records and benchmarks, for the cost tables."""
        variant = self.retrieval_variant(pipeline, strategy, lrs)
        if not self.refreshed(variant):
            return []
        lay, embedder = self.layout, self.pipelines[pipeline]["embedder"]
        where = (dataset, embedder, variant)
        return [
            {
                "record": lay.refreshed_shard_record(*where, shard),
                "benchmark": lay.benchmark("embed_corpus_refreshed", *where, shard),
            }
            for shard in self.shards
        ] + [
            {
                "record": lay.refreshed_index_info(*where),
                "benchmark": lay.benchmark("build_index_refreshed", *where),
            }
        ]

    def refreshes(self) -> list[str]:
        """The index record of every re-embedding of the corpus the plan makes: every seed of
        every grid point of every row that trains its document encoder. A grid's size does
        not depend on which LR wins, so a stand-in winner serves, and the count is known
        before any job runs."""
        if not self.train_documents:
            return []
        counting = Plan(self.config, lambda *_: format_lrs(embed=1e-5, gen=1e-4), self.layout)
        return sorted(
            {
                point["refresh"][-1]["record"]
                for row in counting.table_rows()
                for point in row["grid"]
                if point["refresh"]
            }
        )

    def retrieval_variant(self, pipeline: str, strategy: str, lrs: str) -> str:
        """Which query encoder a run retrieves with: base, Ft. Embed.'s (shared by every
        pipeline of the embedder) or a joint run's own (tied to its pipeline)."""
        if parse_lrs(lrs).get("e") is None:
            return "base"
        s = STRATEGIES[strategy]
        if STRATEGIES[strategy].job == "train_embedder" or "ft_embed" in s.combines:
            return f"ft_embed/e{lr_part(lrs, 'e')}"
        return f"{pipeline}/{strategy}/{lrs}"

    def tuned_query_encoder(self, dataset: str, embedder: str, variant: str):
        """(the rule output that holds a tuned query encoder, the encoder folder), or None."""
        if variant == "base":
            return None
        parts = variant.split("/")
        if parts[0] == "ft_embed":
            path = self.layout.tuned_embedder_dir(dataset, embedder, parts[1][1:])
            return path, path
        model = self.layout.joint_model_dir(dataset, *parts)
        return model, f"{model}/query_encoder"

    # -- which models a job loads: (the rule outputs it waits for, the spec it loads) ----------
    def base_generator(self, pipeline: str) -> tuple[list[str], str]:
        """A GGUF generator is loaded from its converted HF folder (convert_generator's
        output); any other spec as it is."""
        from ragtune import models

        generator = self.pipelines[pipeline]["generator"]
        spec = self.config["generators"][generator]
        if models.resolve(spec).is_gguf:
            folder = self.layout.converted_generator(generator)
            return [folder], folder
        return [], spec

    def run_generator(self, dataset: str, pipeline: str, strategy: str, lrs: str):
        """A run's generator: the base, plus its adapter for a tuned run."""
        inputs, spec = self.base_generator(pipeline)
        tuned = self.tuned_generator(dataset, pipeline, strategy, lrs)
        return (inputs + [tuned[0]], tuned[1]) if tuned else (inputs, spec)

    def joint_generator(self, dataset: str, pipeline: str, strategy: str, lrs: str):
        """A joint run's starting generator: the base, or (2-Phase) its first phase's adapter."""
        inputs, spec = self.base_generator(pipeline)
        if self.after(strategy):
            folder, adapter = self.tuned_generator(dataset, pipeline, strategy, lrs)
            return inputs + [folder], adapter
        return inputs, spec

    def query_encoder(self, dataset: str, embedder: str, variant: str):
        tuned = self.tuned_query_encoder(dataset, embedder, variant)
        return ([tuned[0]], tuned[1]) if tuned else ([], self.config["embedders"][embedder])

    def run_retrieval(self, dataset: str, pipeline: str, strategy: str, lrs: str, split: str):
        """The retrieval a run is evaluated on: its tuned query encoder's, if it has one."""
        variant = self.retrieval_variant(pipeline, strategy, lrs)
        embedder = self.pipelines[pipeline]["embedder"]
        return self.layout.retrieval(dataset, embedder, variant, split)

    def selection_pipelines(self, pipeline: str, strategy: str) -> list[str]:
        """The pipelines whose validation scores choose ``pipeline``'s LR: its own, or (Ft.
        Embed. with ``selection.ft_embed_per: embedder``) every pipeline of its embedder."""
        per = (self.config.get("selection") or {}).get("ft_embed_per", "pipeline")
        if strategy != "ft_embed" or per != "embedder":
            return [pipeline]
        embedder = self.pipelines[pipeline]["embedder"]
        return [p for p in self.pipeline_names if self.pipelines[p]["embedder"] == embedder]

    def validation_metrics(self, dataset: str, pipeline: str, strategy: str) -> list[str]:
        """Every run of a grid on validation, point by point, each point's seeds together and,
        within a seed, each of :meth:`selection_pipelines`."""
        return [
            self.layout.metrics(dataset, p, strategy, run, "validation")
            for lrs in self.grid_lrs(dataset, pipeline, strategy)
            for run in self.runs(lrs)
            for p in self.selection_pipelines(pipeline, strategy)
        ]

    # -- what the tables and figures read ----------------------------------------------------
    @property
    def datasets(self) -> list[str]:
        """Sorted: tables, captions and labels list them in one order whatever the config's
        key order, so a reordered config re-makes nothing."""
        return sorted(self.config["datasets"])

    @property
    def pipeline_names(self) -> list[str]:
        return sorted(self.pipelines)

    def eval_job(self, dataset: str, pipeline: str, strategy: str, lrs: str, split: str):
        """An evaluation's record (metrics.json) and Snakemake benchmark."""
        return {
            "record": self.layout.metrics(dataset, pipeline, strategy, lrs, split),
            "benchmark": self.layout.benchmark("evaluate", dataset, pipeline, strategy, lrs, split),
        }

    def table_rows(self) -> list[dict]:
        """One entry per (dataset, pipeline, strategy, split) row of the tables, with its chosen
        LRs resolved and every job behind it (see ragtune.report.tables.collect)."""
        rows = []
        for d in self.datasets:
            for p in self.pipeline_names:
                for st in self.rows:
                    lrs = self.chosen_lrs(d, p, st)
                    # Every seed's jobs: the cost counts them all.
                    grid = [
                        {
                            "strategy": g_st,
                            "lrs": run,
                            "train": self.train_job(d, p, g_st, run),
                            "eval": self.eval_job(d, p, g_st, run, "validation"),
                            "refresh": self.refresh_jobs(d, p, g_st, run),
                        }
                        for g_st, g_lrs in self.grid_points(d, p, st)
                        for run in self.runs(g_lrs)
                    ]
                    chosen = [
                        self.train_job(d, p, *job)
                        for run in self.runs(lrs)
                        for job in self.training_runs(st, run)
                    ]
                    for split in self.config["evaluation"]["splits"]:
                        rows.append({
                            "dataset": d,
                            "split": split,
                            "pipeline": p,
                            "embedder": self.pipelines[p]["embedder"],
                            "generator": self.pipelines[p]["generator"],
                            "strategy": st,
                            "lrs": lrs,
                            "metrics": [self.layout.metrics(d, p, st, run, split)
                                        for run in self.runs(lrs)],
                            "chosen": chosen,
                            "grid": grid,
                        })  # fmt: skip
        return rows

    def table_inputs(self) -> list[str]:
        """Every file the tables read: each row's metrics and each job's records."""
        rows = self.table_rows()
        files = {path for r in rows for path in r["metrics"]}
        for r in rows:
            jobs = r["chosen"] + [point[role] for point in r["grid"] for role in ("train", "eval")]
            jobs += [job for point in r["grid"] for job in point["refresh"]]
            files |= {path for job in jobs for path in job.values()}
        return sorted(files)

    def loss_curves(self) -> list[dict]:
        """Every chosen run's own training job: {dataset, pipeline, label, folder, path}. Indp.
        trains nothing of its own (its halves have their rows); 2-Phase shows both phases, a
        phase that is another row's run (Ft. Gen.'s) once."""
        curves: list[dict] = []
        for d in self.datasets:
            for p in self.pipeline_names:
                for st in self.rows:
                    if STRATEGIES[st].combines:
                        continue
                    for run in self.runs(self.chosen_lrs(d, p, st)):
                        for job_st, job_lrs in reversed(self.training_runs(st, run)):
                            folder = self.model_dir(d, p, job_st, job_lrs)
                            if any(c["folder"] == folder for c in curves):
                                continue
                            curves.append({
                                "dataset": d,
                                "pipeline": p,
                                "label": f"{phase_label(job_st)} ({job_lrs})",
                                "folder": folder,
                                "path": f"{folder}/loss.csv",
                            })  # fmt: skip
        return curves

    def selections(self) -> list[dict]:
        """Every grid's select_lr output, for the LR-sensitivity figure."""
        return [
            {"dataset": d, "pipeline": p, "strategy": phase_label(st),
             "path": self.layout.selected(d, p, st)}
            for d in self.datasets
            for p in self.pipeline_names
            for st in self.selected
        ]  # fmt: skip


def phase_label(strategy: str) -> str:
    """A training job's label in the figures: a strategy's, or its phase's."""
    s = STRATEGIES[strategy]
    return f"{s.label}, phase 2" if s.after else s.label


def _arg(side: str) -> str:
    return "embed" if side == EMBEDDER else "gen"
