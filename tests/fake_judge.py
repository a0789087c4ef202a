"""A local fake judge server (127.0.0.1, random port) speaking OpenAI chat completions, Gemini
``generateContent`` and, for end-to-end runs, OpenAI completions (the model under test).

By default it is an *oracle judge*: it splits a text into points at ，/。 (importance 3), matches
points that are equal, and scores a recommendation reason 5 when it equals the reference, else 2.
``FakeJudge.behaviour`` can replace any answer with (HTTP status, text, delay) per call.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

Answer = tuple[int, str, float]   # HTTP status, answer text, seconds to wait before answering


def between(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]


def oracle(prompt: str) -> str:
    if "信息抽取专家" in prompt:
        text = between(prompt, "现在，请开始分析我提供的描述性文字:\n", "\n\n你的输出结果")
        points = [p.strip() for p in re.split(r"[，。]", text) if p.strip()]
        return json.dumps({"wips": [{"info_point": p, "importance_score": 3} for p in points]}, ensure_ascii=False)
    if "语义匹配专家" in prompt:
        gt = json.loads(between(prompt, "[Ground Truth WIPs (GT列表)]\n\n", "\n\n[Model-Generated"))
        model = json.loads(between(prompt, "[Model-Generated WIPs (模型列表)]\n\n", "\n\n你的匹配结果"))
        gt_points = {w["info_point"]: w for w in gt}
        matches = [{"model_wip": w, "gt_wip": gt_points[w["info_point"]]} for w in model if w["info_point"] in gt_points]
        matched = {m["model_wip"]["info_point"] for m in matches}
        return json.dumps({"matches": matches,
                           "unmatched_model_wips": [w for w in model if w["info_point"] not in matched],
                           "unmatched_gt_wips": [w for w in gt if w["info_point"] not in matched]}, ensure_ascii=False)
    gt = between(prompt, "**[标准答案]**\n", "\n\n**[模型生成]**")
    model = between(prompt, "**[模型生成]**\n", "\n\n### 输出格式")
    return "```json\n" + json.dumps({"llm_score": 5 if gt == model else 2, "llm_reason": "ok"}) + "\n```"


class FakeJudge:
    """Context manager: ``with FakeJudge() as judge: judge.url`` (``/v1`` for OpenAI, root for Gemini)."""

    def __init__(self, completion: str = "一只猫在睡觉。"):
        self.prompts: list[tuple[str, str]] = []        # (protocol, prompt) of every judge request
        self.seen: Counter = Counter()                  # prompt -> requests so far
        self.behaviour: Callable[[str, int], Answer] = lambda prompt, n: (200, oracle(prompt), 0.0)
        self.completion = completion                    # what the fake *model* writes
        self._lock = threading.Lock()

    @property
    def calls(self) -> int:
        return len(self.prompts)

    def __enter__(self) -> "FakeJudge":
        judge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path.endswith("/completions") and "messages" not in body:
                    return self._send(200, judge._completion(body))
                gemini = ":generateContent" in self.path
                prompt = body["contents"][0]["parts"][0]["text"] if gemini else body["messages"][0]["content"]
                with judge._lock:
                    judge.prompts.append(("gemini" if gemini else "openai", prompt))
                    judge.seen[prompt] += 1
                    n = judge.seen[prompt]
                status, text, delay = judge.behaviour(prompt, n)
                time.sleep(delay)
                if status != 200:
                    return self._send(status, {"error": {"code": status, "message": f"fake error {status}",
                                                         "status": "UNAVAILABLE"}})
                self._send(200, _gemini_reply(text) if gemini else _openai_reply(body["model"], text))

            def _send(self, status, payload):
                data = json.dumps(payload, ensure_ascii=False).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass   # the client timed out and left

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _completion(self, body: dict) -> dict:
        choices = [{"index": i, "text": self.completion, "finish_reason": "stop", "logprobs": None}
                   for i in range(body.get("n", 1))]
        return {"id": "c", "object": "text_completion", "created": 0, "model": body["model"], "choices": choices,
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def _openai_reply(model: str, text: str) -> dict:
    return {"id": "x", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}


def _gemini_reply(text: str) -> dict:
    return {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP",
                            "index": 0}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15}}
