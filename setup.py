"""The task YAMLs live in the top-level tasks/ folder; they are installed as package recif_bench_tasks.

Likewise configs/published/ (the paper's numbers for the leaderboard) as recif_bench_published.
"""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["recif_bench", "recif_bench.*", "leaderboard", "leaderboard.*",
                                    "trainers", "trainers.*"]) + ["recif_bench_tasks", "recif_bench_published"],
    package_dir={"recif_bench_tasks": "tasks", "recif_bench_published": "configs/published"},
)
