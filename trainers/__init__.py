"""Training recipes (one readable file per method, torchtune style). Filled by the trainer issues."""
