from ragtune.report import tables
from ragtune.runner import run


def main(s):
    entries = [
        {"dataset": d, "pipeline": p, "strategy": st, "lrs": lrs, "split": sp, "metrics": m}
        for (d, p, st, lrs, sp), m in zip(s.params.runs, s.input.metrics, strict=True)
    ]
    tables.write(tables.collect(entries), s.output.csv, s.output.md)


run(snakemake, main)
