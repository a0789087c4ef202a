"""recif-openai against a local fake completions server (127.0.0.1, random port, stops with the test)."""

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from lm_eval.api.instance import Instance

from recif_bench.models.openai_backend import OpenAIRecLM, ServerError


TOKEN_IDS = {"是": 11, "否": 12}


class Handler(BaseHTTPRequestHandler):
    """A vLLM-like completions server: beam search, /tokenize and logprob_token_ids (switches turn them off)."""

    requests: list = []
    fail_with: int | None = None
    tokenizes = True          # serves /tokenize
    ignores_beams = False     # answers use_beam_search with n copies of one completion

    def log_message(self, *args):
        pass

    def reply(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Handler.requests.append({**body, "path": self.path, "port": self.server.server_address[1]})
        if self.path == "/tokenize":
            if not Handler.tokenizes:
                return self.reply(404, {"detail": "Not Found"})
            return self.reply(200, {"tokens": [TOKEN_IDS[body["prompt"]]], "count": 1})
        if Handler.fail_with:
            return self.reply(Handler.fail_with, {"error": {"message": "n must be 1 when using greedy sampling",
                                                            "type": "BadRequestError"}})
        if body.get("logprob_token_ids"):
            step = {f"token_id:{t}": math.log(0.6 if t == 11 else 0.3) for t in body["logprob_token_ids"]}
            choices = [{"index": 0, "text": "是", "finish_reason": "length",
                        "logprobs": {"tokens": ["token_id:11"], "token_logprobs": [math.log(0.6)], "text_offset": [0],
                                     "top_logprobs": [step]}}]
        elif body.get("logprobs"):
            choices = [{"index": 0, "text": "是", "finish_reason": "length",
                        "logprobs": {"tokens": ["是"], "token_logprobs": [math.log(0.7)], "text_offset": [0],
                                     "top_logprobs": [{"是": math.log(0.7), "否": math.log(0.2)}]}}]
        else:
            distinct = body.get("use_beam_search") and not Handler.ignores_beams
            choices = [{"index": i, "text": f"<s_a_{i if distinct else 0}><s_b_0><s_c_0><|sid_end|>",
                        "finish_reason": "stop", "logprobs": None} for i in reversed(range(body.get("n", 1)))]
        self.reply(200, {"id": "x", "object": "text_completion", "created": 0, "model": body["model"],
                         "choices": choices, "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})


def start_server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


@pytest.fixture
def server():
    Handler.requests, Handler.fail_with, Handler.tokenizes, Handler.ignores_beams = [], None, True, False
    servers = [start_server(), start_server()]
    yield ";".join(f"http://127.0.0.1:{h.server_address[1]}/v1" for h in servers)
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def first(urls):
    return urls.split(";")[0]


def gen(prompt="prompt", **kw):
    request = Instance("generate_until", doc={}, arguments=(prompt, {"until": ["<|sid_end|>"], **kw}), idx=0)
    request.task_name = "recif_video"
    return request


def label_requests(contexts=("ctx",), answers=("是", "否")):
    return [Instance("loglikelihood", doc={}, arguments=(c, a), idx=0) for c in contexts for a in answers]


def test_rec_tasks_use_the_servers_beam_search_by_default(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-test")
    lm = OpenAIRecLM(model="served", base_url=first(server), max_retries=0)
    (candidates,) = lm.generate_until([gen(num_beams=32, num_return_sequences=32, max_gen_toks=3,
                                           answer_prefix="<|sid_begin|>")])
    assert candidates == [f"<s_a_{i}><s_b_0><s_c_0>" for i in range(32)]   # ordered by index, stop applied
    sent = Handler.requests[0]
    assert sent["use_beam_search"] is True and sent["n"] == 32 and sent["temperature"] == 0
    assert sent["max_tokens"] == 3 and sent["prompt"] == "prompt<|sid_begin|>"


def test_a_server_without_beam_search_stops_the_run_with_its_own_message(server):
    Handler.fail_with = 400
    lm = OpenAIRecLM(model="served", base_url=first(server), max_retries=0)
    with pytest.raises(ServerError) as info:
        lm.generate_until([gen(num_beams=32, num_return_sequences=32, max_gen_toks=3)])
    message = str(info.value)
    assert "HTTP 400: n must be 1 when using greedy sampling" in message and "beam search" in message
    assert "\n" not in message


def test_a_server_that_ignores_beam_search_is_refused(server):
    Handler.ignores_beams = True
    lm = OpenAIRecLM(model="served", base_url=first(server), max_retries=0)
    with pytest.raises(ServerError, match="ignored use_beam_search"):
        lm.generate_until([gen(num_beams=4, num_return_sequences=4, max_gen_toks=3)])


def test_beam_search_false_refuses_beam_tasks_instead_of_greedy_copies(server):
    lm = OpenAIRecLM(model="served", base_url=first(server), beam_search=False, max_retries=0)
    with pytest.raises(ServerError, match="beam search 4 -> 4"):
        lm.generate_until([gen(num_beams=4, num_return_sequences=4, max_gen_toks=3)])
    assert Handler.requests == []


def test_replicas_share_the_prompts_round_robin(server):
    lm = OpenAIRecLM(model="served", base_url=server, max_retries=0, max_concurrency=4)
    results = lm.generate_until([gen(f"p{i}", num_beams=2, num_return_sequences=2, max_gen_toks=3)
                                 for i in range(6)])
    assert len(results) == 6 and all(len(r) == 2 for r in results)
    ports = [r["port"] for r in Handler.requests]
    assert len(set(ports)) == 2 and ports.count(ports[0]) == 3
    assert sorted(r["prompt"] for r in Handler.requests) == [f"p{i}" for i in range(6)]


def test_label_pred_exact_through_tokenize_and_logprob_token_ids(server):
    lm = OpenAIRecLM(model="served", base_url=first(server), max_retries=0)
    (yes, yes_greedy), (no, no_greedy) = lm.loglikelihood(label_requests())
    assert yes == pytest.approx(math.log(0.6)) and yes_greedy and no == pytest.approx(math.log(0.3)) and not no_greedy
    completion = [r for r in Handler.requests if r["path"] != "/tokenize"]
    assert len(completion) == 1 and completion[0]["logprob_token_ids"] == [11, 12]
    assert completion[0]["return_tokens_as_token_ids"] is True


def test_label_pred_from_top_logprobs_when_the_server_cannot_tokenize(server):
    Handler.tokenizes = False
    lm = OpenAIRecLM(model="served", base_url=first(server), max_retries=0)
    (yes, greedy), (no, _), (other, _) = lm.loglikelihood(label_requests(answers=("是", "否", "吗")))
    assert yes == pytest.approx(math.log(0.7)) and greedy and no == pytest.approx(math.log(0.2))
    assert other == pytest.approx(math.log(1e-10))
    assert sum(r["path"] == "/tokenize" for r in Handler.requests) == 1   # asked once, then never again


def test_server_errors_name_the_server_not_the_key(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-test")
    Handler.fail_with = 500
    lm = OpenAIRecLM(model="served", base_url=first(server), max_retries=1, timeout=5)
    with pytest.raises(ServerError) as info:
        lm.generate_until([gen(max_gen_toks=3)])
    assert first(server) in str(info.value) and "HTTP 500" in str(info.value)
    assert "sk-secret-test" not in str(info.value)
    assert len(Handler.requests) == 2   # one retry, then the error
