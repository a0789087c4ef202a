"""The task YAMLs live in the top-level tasks/ folder; they are installed as package recif_bench_tasks.

Likewise configs/ (recipe configs, the paper's published numbers, accelerate launch configs) as recif_bench_configs.
"""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["recif_bench", "recif_bench.*", "leaderboard", "leaderboard.*",
                                    "trainers", "trainers.*"]) + ["recif_bench_tasks", "recif_bench_configs"],
    package_dir={"recif_bench_tasks": "tasks", "recif_bench_configs": "configs"},
)
