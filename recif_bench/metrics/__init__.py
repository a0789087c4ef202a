"""metrics of recif-bench."""
