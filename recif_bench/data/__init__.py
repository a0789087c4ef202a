"""data of recif-bench."""
