"""Data of the tiny general-ability tasks: a handful of arithmetic and text rows, no network."""
import datasets

QUESTIONS = [("2 + 3", 5), ("7 - 4", 3), ("1 + 1", 2), ("9 - 9", 0), ("4 + 4", 8), ("6 - 1", 5)]
TEXTS = ["The quick brown fox jumps over the lazy dog.", "0123456789 0123456789 0123456789",
         "The lazy dog sleeps; the quick brown fox jumps over it again and again."]


def load_arithmetic(**_metadata):
    rows = [{"question": q, "answer": str(a), "choices": [str(a), str(a + 1), str(a + 2)], "label": 0}
            for q, a in QUESTIONS]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def load_texts(**_metadata):
    return datasets.DatasetDict({"test": datasets.Dataset.from_list([{"text": t} for t in TEXTS])})
