from lm_eval.api.instance import Instance
from lm_eval.api.model import LM

from recif_bench.resume import ResumableLM


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
    crashing = ResumableLM(CountingLM(fail_after=3), db)
    try:
        crashing.generate_until(requests)
    except RuntimeError:
        pass
    crashing.close()

    model = CountingLM()
    resumed = ResumableLM(model, db)
    answers = resumed.generate_until(requests)
    resumed.close()
    assert model.seen == ["p3", "p4"]                      # sampled requests are resumed too
    assert answers == [[f"P{i}", f"p{i}"] for i in range(5)]
    assert (resumed.reused, resumed.computed) == (3, 2)


def test_loglikelihood_results_are_stored_per_request(tmp_path):
    db = tmp_path / "requests.db"
    requests = [Instance("loglikelihood", doc={}, arguments=("ctx", c), idx=i) for i, c in enumerate(["是", "否否"])]
    first = ResumableLM(CountingLM(), db)
    assert first.loglikelihood(requests) == [(-1.0, False), (-2.0, False)]
    first.close()
    model = CountingLM()
    again = ResumableLM(model, db)
    assert again.loglikelihood(requests) == [(-1.0, False), (-2.0, False)] and model.seen == []
    again.close()
