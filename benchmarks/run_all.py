"""Run every benchmark in turn (``make bench``); each writes benchmarks/out/<name>.json."""

from benchmarks import bench_embedding, bench_generation, bench_joint, bench_training

if __name__ == "__main__":
    for bench in (bench_embedding, bench_generation, bench_training, bench_joint):
        bench.main()
