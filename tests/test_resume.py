from lm_eval.api.instance import Instance
from lm_eval.api.model import LM

import pytest

from recif_bench.resume import ResumableLM, ResumeMismatch

MODEL_A = {"backend": "hf", "model": "sha256:aaaa", "settings": {}}


class CountingLM(LM):
    """Answers each request from its context; counts what it was asked and reports each finished one."""

    def __init__(self, fail_after=None):
        super().__init__()
        self.seen = []
        self.fail_after = fail_after

    def generate_until(self, requests, disable_tqdm=False):
        out = []
        for request in requests:
            if self.fail_after is not None and len(self.seen) == self.fail_after:
                raise RuntimeError("killed")
            self.seen.append(request.args[0])
            answer = [request.args[0].upper(), request.args[0]]
            self.cache_hook.add_partial("generate_until", request.args, answer)
            out.append(answer)
        return out

    def loglikelihood(self, requests, disable_tqdm=False):
        self.seen.extend(r.args for r in requests)
        return [(-float(len(r.args[1])), False) for r in requests]

    def loglikelihood_rolling(self, requests, disable_tqdm=False):
        raise NotImplementedError


def gen(text, sample=True):
    return Instance("generate_until", doc={}, arguments=(text, {"do_sample": sample, "temperature": 0.01}), idx=0)


def test_finished_requests_survive_a_crash_and_are_not_recomputed(tmp_path):
    db = tmp_path / "requests.db"
    requests = [gen(f"p{i}") for i in range(5)]
    crashing = ResumableLM(CountingLM(fail_after=3), db, MODEL_A)
    try:
        crashing.generate_until(requests)
    except RuntimeError:
        pass
    crashing.close()

    model = CountingLM()
    resumed = ResumableLM(model, db, MODEL_A)
    answers = resumed.generate_until(requests)
    resumed.close()
    assert model.seen == ["p3", "p4"]                      # sampled requests are resumed too
    assert answers == [[f"P{i}", f"p{i}"] for i in range(5)]
    assert (resumed.reused, resumed.computed) == (3, 2)


def test_loglikelihood_results_are_stored_per_request(tmp_path):
    db = tmp_path / "requests.db"
    requests = [Instance("loglikelihood", doc={}, arguments=("ctx", c), idx=i) for i, c in enumerate(["是", "否否"])]
    first = ResumableLM(CountingLM(), db, MODEL_A)
    assert first.loglikelihood(requests) == [(-1.0, False), (-2.0, False)]
    first.close()
    model = CountingLM()
    again = ResumableLM(model, db, MODEL_A)
    assert again.loglikelihood(requests) == [(-1.0, False), (-2.0, False)] and model.seen == []
    again.close()


def test_resuming_another_model_into_a_run_is_refused(tmp_path):
    db = tmp_path / "requests.db"
    first = ResumableLM(CountingLM(), db, MODEL_A)
    first.generate_until([gen("p0")])
    first.close()
    other = CountingLM()
    with pytest.raises(ResumeMismatch, match="model sha256:aaaa != sha256:bbbb"):
        ResumableLM(other, db, {**MODEL_A, "model": "sha256:bbbb"})
    with pytest.raises(ResumeMismatch, match="constrained=None != constrained=True"):
        ResumableLM(other, db, {**MODEL_A, "settings": {"constrained": "True"}})
    assert other.seen == []
    same = ResumableLM(other, db, dict(MODEL_A))   # the same model resumes
    assert same.generate_until([gen("p0")]) == [["P0", "p0"]] and other.seen == []
    same.close()


def test_a_store_without_identity_is_not_trusted(tmp_path):
    from sqlitedict import SqliteDict

    db = tmp_path / "requests.db"
    with SqliteDict(str(db), autocommit=True) as store:
        store["0" * 64] = ["old answer"]
    with pytest.raises(ResumeMismatch, match="without a model identity"):
        ResumableLM(CountingLM(), db, MODEL_A)
