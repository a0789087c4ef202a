"""recif-bench: the RecIF-Bench harness (lm-eval tasks, K-candidate backends, metrics) and friends.

Importing the package stays light (no torch): heavy modules are imported where they are used.
"""

__version__ = "0.1.0"
