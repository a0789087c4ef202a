"""Command-line entry points of recif-bench (recif-eval, recif-train, recif-items, recif-data)."""

import logging


def configure_logging(verbose: bool) -> None:
    """One log format for every command; INFO only when asked, so progress bars stay readable."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
