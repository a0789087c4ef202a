"""Items as tokens: RQ-KMeans item tokenizer, collision handling, vocabulary expansion."""
