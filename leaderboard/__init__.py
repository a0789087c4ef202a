"""Leaderboard: collects results/*/summary.json runs into tables, plots and a static HTML board."""
