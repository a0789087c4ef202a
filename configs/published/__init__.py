"""Published numbers of the paper and its peers (YAML), installed as package ``recif_bench_published``.

The folder is a package only so that ``pip install .`` ships the numbers with the leaderboard.
"""
