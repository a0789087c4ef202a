"""Pieces every recipe shares, written once: configs, samples and label masks, collators, the trainer."""
