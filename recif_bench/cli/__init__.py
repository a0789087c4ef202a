"""cli of recif-bench."""
