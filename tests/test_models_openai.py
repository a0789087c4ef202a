"""recif-openai against a local fake completions server (127.0.0.1, random port, stops with the test)."""

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from lm_eval.api.instance import Instance

from recif_bench.models.openai_backend import OpenAIRecLM, ServerError


class Handler(BaseHTTPRequestHandler):
    requests: list = []
    fail_with: int | None = None

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Handler.requests.append(body)
        if Handler.fail_with:
            self.send_response(Handler.fail_with)
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "boom"}}')
            return
        if body.get("logprobs"):
            choices = [{"index": 0, "text": "是", "finish_reason": "length",
                        "logprobs": {"tokens": ["是"], "token_logprobs": [math.log(0.7)], "text_offset": [0],
                                     "top_logprobs": [{"是": math.log(0.7), "否": math.log(0.2)}]}}]
        else:
            choices = [{"index": i, "text": f"<s_a_{i}><s_b_0><s_c_0><|sid_end|>", "finish_reason": "stop",
                        "logprobs": None} for i in reversed(range(body.get("n", 1)))]
        payload = {"id": "x", "object": "text_completion", "created": 0, "model": body["model"], "choices": choices,
                   "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server():
    Handler.requests, Handler.fail_with = [], None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def gen(**kw):
    request = Instance("generate_until", doc={}, arguments=("prompt", {"until": ["<|sid_end|>"], **kw}), idx=0)
    request.task_name = "recif_video"
    return request


def test_k_candidates_through_n_in_order(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-test")
    lm = OpenAIRecLM(model="served", base_url=server, max_retries=0)
    (candidates,) = lm.generate_until([gen(num_beams=4, num_return_sequences=4, max_gen_toks=3,
                                           answer_prefix="<|sid_begin|>")])
    assert candidates == [f"<s_a_{i}><s_b_0><s_c_0>" for i in range(4)]   # ordered by index, stop applied
    sent = Handler.requests[0]
    assert sent["n"] == 4 and sent["max_tokens"] == 3 and sent["prompt"] == "prompt<|sid_begin|>"


def test_beam_search_option_asks_the_server_for_beams(server):
    lm = OpenAIRecLM(model="served", base_url=server, beam_search=True, max_retries=0)
    lm.generate_until([gen(num_beams=8, num_return_sequences=4, max_gen_toks=3)])
    assert Handler.requests[0]["use_beam_search"] is True and Handler.requests[0]["best_of"] == 8


def test_label_pred_from_top_logprobs(server):
    lm = OpenAIRecLM(model="served", base_url=server, max_retries=0)
    requests = [Instance("loglikelihood", doc={}, arguments=("ctx", c), idx=i) for i, c in enumerate(["是", "否", "吗"])]
    (yes, greedy), (no, _), (other, _) = lm.loglikelihood(requests)
    assert yes == pytest.approx(math.log(0.7)) and greedy and no == pytest.approx(math.log(0.2))
    assert other == pytest.approx(math.log(1e-10))
    assert len(Handler.requests) == 1


def test_server_errors_name_the_server_not_the_key(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-test")
    Handler.fail_with = 500
    lm = OpenAIRecLM(model="served", base_url=server, max_retries=1, timeout=5)
    with pytest.raises(ServerError) as info:
        lm.generate_until([gen(max_gen_toks=3)])
    assert server in str(info.value) and "HTTP 500" in str(info.value)
    assert "sk-secret-test" not in str(info.value)
    assert len(Handler.requests) == 2   # one retry, then the error
