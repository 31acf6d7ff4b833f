"""Run every benchmark in turn (``make bench``); each writes benchmarks/out/<name>.json."""

from benchmarks import bench_embedding, bench_generation

if __name__ == "__main__":
    for bench in (bench_embedding, bench_generation):
        bench.main()
