"""recif-bench: the RecIF-Bench harness (lm-eval tasks, K-candidate backends, metrics) and friends.

Importing the package stays light (no torch): heavy modules are imported where they are used.
"""

__version__ = "0.1.0"


def tasks_dir() -> str:
    """Folder of the lm-eval task YAMLs (pass it to ``lm_eval --include_path``)."""
    from importlib import resources

    return str(resources.files("recif_bench_tasks"))
