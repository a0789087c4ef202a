"""Command-line entry points of the library (recif-eval, recif-items, recif-data; recif-train is trainers.cli)."""

import logging


def configure_logging(verbose: bool) -> None:
    """One log format for every command; INFO only when asked, so progress bars stay readable."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
