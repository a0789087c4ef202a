"""lm-eval task configs of RecIF-Bench (installed as recif_bench_tasks; see recif_bench.tasks_dir)."""
