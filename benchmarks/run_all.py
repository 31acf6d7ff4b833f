"""Run every benchmark in turn (``make bench``); each writes benchmarks/out/<name>.json."""

from benchmarks import (
    bench_cpu_dtype,
    bench_embedding,
    bench_evaluate_profile,
    bench_generation,
    bench_index,
    bench_joint,
    bench_memory,
    bench_overhead,
    bench_scaleout,
    bench_training,
    bench_workflow,
)

if __name__ == "__main__":
    for bench in (
        bench_embedding,
        bench_generation,
        bench_evaluate_profile,
        bench_training,
        bench_joint,
        bench_memory,
        bench_overhead,
        bench_cpu_dtype,
        bench_index,
        bench_scaleout,
        bench_workflow,
    ):
        bench.main()
