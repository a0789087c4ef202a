"""lm-eval model classes that return K candidates per request: recif-hf, recif-vllm, recif-openai, recif-rec.

Importing :func:`register_all` registers them with lm-eval; each backend imports its heavy
dependencies (torch, vllm, openai) only when it is instantiated.
"""
