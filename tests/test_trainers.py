"""Trainers part 1: builders' golden rows, SFT label mask, packing isolation, stage-1 freezing,
resume after a kill, a 2-process accelerate run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from recif_bench import sid
from recif_bench.data import builders, training
from recif_bench.data.mini import FORMAT as MINI_FORMAT
from trainers.common import collate, samples
from trainers.common.config import load

REPO = Path(__file__).resolve().parents[1]
FMT = sid.SidFormat(3, 8192)
MAPS = builders.ItemMaps({1: (1, 2, 3), 2: (4, 5, 6), 4: (7, 8, 9)}, {}, FMT)


def test_video_rec_pretrain_golden_row():
    user = {"uid": 7, "hist_video_pid": [2, 3, 1], "target_video_pid": [4, 5]}   # 3 and 5 have no SID
    (row,) = training.video_rec_pretrain(user, MAPS)
    text = ("<|sid_begin|><s_a_4><s_b_5><s_c_6><|sid_end|><|sid_begin|><s_a_1><s_b_2><s_c_3><|sid_end|>"
            "<|sid_begin|><s_a_7><s_b_8><s_c_9><|sid_end|>")
    assert json.loads(row["segments"]) == [{"type": "text", "text": text}]
    assert row["source"] == "RecIF_VideoRec_Pretrain" and json.loads(row["metadata"]) == {"uid": 7}
    long_user = {"uid": 1, "hist_video_pid": [2] * 600 + [1], "target_video_pid": [4] * 12}
    body = json.loads(training.video_rec_pretrain(long_user, MAPS)[0]["segments"])[0]["text"]
    codes = sid.extract_codes(body, FMT)
    assert len(codes) == 512 + 10 and codes[510] == (4, 5, 6) and codes[511] == (1, 2, 3)   # last 512, first 10


def test_item_understand_pretrain_uses_the_three_official_templates():
    texts = {json.loads(training.item_understand_pretrain(1, '说"好"', MAPS, seed)[0]["segments"])[0]["text"]
             for seed in range(40)}
    s = "<|sid_begin|><s_a_1><s_b_2><s_c_3><|sid_end|>"
    assert texts == {'{"视频ID": "' + s + '", "视频内容": "说\\"好\\""}',
                     f'视频{s} 展示了以下内容：说"好"', f'视频{s} 的内容完整描述如下：说"好"'}
    assert training.item_understand_pretrain(3, "x", MAPS, 0) == []   # unmapped pid


def test_build_all_keeps_train_users_only(mini_dir):
    import pandas as pd

    files = training.build_all(mini_dir / "raw", fmt=MINI_FORMAT)
    users = pd.read_parquet(mini_dir / "raw" / "onerec_bench_release.parquet")
    train_uids = set(users.loc[users["split"] == 0, "uid"])
    for name in ("pretrain_video_rec", "sft_video", "sft_label_pred"):
        uids = {json.loads(r["metadata"])["uid"] for r in files[name]}
        assert uids and uids <= train_uids
    assert len({r["uuid"] for r in files["sft_label_pred"]}) == len(files["sft_label_pred"])


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_sft_labels_cover_exactly_the_assistant_tokens(tokenizer):
    answer = sid.render((1, 2, 3), sid.SidFormat(3, 256))
    messages = [{"role": "system", "content": "你是一个推荐助手"}, {"role": "user", "content": "推荐"},
                {"role": "assistant", "content": answer}]
    sample = samples.tokenize_chat(tokenizer, messages)
    supervised = [i for i, label in enumerate(sample.labels) if label != samples.IGNORE]
    assert supervised == list(range(supervised[0], supervised[-1] + 1))     # one contiguous span
    assert all(sample.labels[i] == sample.input_ids[i] for i in supervised)
    assert tokenizer.decode([sample.input_ids[i] for i in supervised]) == \
        "<think>\n\n</think>\n\n" + answer + "<|im_end|>"                      # first token included
    prompt = tokenizer.decode(sample.input_ids[:supervised[0]])
    assert prompt.endswith("推荐/no_think<|im_end|>\n<|im_start|>assistant\n")   # nothing of the prompt
    assert tokenizer.decode(sample.input_ids[supervised[-1] + 1:]) == "\n"


def test_segments_are_fully_supervised_and_end_with_the_pad_token(tokenizer):
    sample = samples.tokenize_segments(tokenizer, [{"type": "text", "text": "视频"}, {"type": "text", "text": "内容"}])
    assert sample.labels == sample.input_ids and sample.input_ids[-1] == tokenizer.pad_token_id


def test_packing_never_attends_across_samples(tiny_model_dir):
    """Through the trainers' own model loading and the Trainer's call ``model(**batch)``, with the cache
    switched on in the config as a default model has it: the packed batch alone keeps samples apart."""
    from trainers.common import trainer

    model, _ = trainer.load_model(tiny_model_dir)
    model.eval().config.use_cache = True
    torch.manual_seed(1)
    parts = [samples.Sample(ids, ids) for ids in (torch.randint(0, 2000, (n,)).tolist() for n in (7, 5, 9))]
    packs = collate.pack(parts, max_length=16)
    assert [len(p) for p in packs] == [2, 1]                                # 7+5 fit, 9 opens a new pack
    batch = collate.PackedCollator()(packs[:1])
    assert batch["position_ids"].tolist() == [list(range(7)) + list(range(5))]
    assert batch["labels"][0, 0] == -100 and batch["labels"][0, 7] == -100  # no target across a boundary
    with torch.no_grad():
        packed = model(**batch)
        alone = [model(input_ids=torch.tensor([p.input_ids]), labels=torch.tensor([p.labels])) for p in parts[:2]]
    assert torch.allclose(packed.logits[:, :7], alone[0].logits, atol=1e-5)
    assert torch.allclose(packed.logits[:, 7:], alone[1].logits, atol=1e-5)
    tokens = [6, 4]                                                         # predicted tokens per sample
    mean = sum(n * out.loss for n, out in zip(tokens, alone)) / sum(tokens)
    assert packed.loss.item() == pytest.approx(mean.item(), abs=1e-5)


@pytest.fixture(scope="module")
def train_data(mini_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("train_data")
    training.write(training.build_all(mini_dir / "raw", fmt=MINI_FORMAT), out)
    return out


def tiny_config(name, model, data, out, *overrides):
    return load(REPO / "configs" / "train" / f"tiny_{name}.yaml",
                [f"model={model}", f"output_dir={out}", f"data.dir={data}", *overrides])


def test_stage1_moves_only_itemic_rows(tiny_model_dir, train_data, tmp_path):
    from safetensors.torch import load_file

    from recif_bench.itemic.vocab import find_itemic_ids
    from trainers import pretrain

    out = pretrain.main(tiny_config("stage1", tiny_model_dir, train_data, tmp_path / "s1"))
    before, after = load_file(tiny_model_dir / "model.safetensors"), load_file(out / "model.safetensors")
    key = "model.embed_tokens.weight"
    assert set(before) == set(after)
    for name in before:
        if name != key:
            assert torch.equal(before[name], after[name]), name
    from transformers import AutoTokenizer

    itemic = torch.zeros(before[key].shape[0], dtype=torch.bool)
    itemic[find_itemic_ids(AutoTokenizer.from_pretrained(out))] = True
    assert torch.equal(before[key][~itemic], after[key][~itemic])          # text + padding rows bit-identical
    moved = (before[key][itemic] != after[key][itemic]).any(1)
    assert moved.sum() > 50                                               # the itemic rows seen in the data moved


def test_stage2_then_sft_give_a_checkpoint_recif_eval_loads(tiny_model_dir, train_data, tmp_path, mini_dir):
    from recif_bench.models.hf import HFRecLM
    from trainers import pretrain, sft

    s2 = pretrain.main(tiny_config("stage2", tiny_model_dir, train_data, tmp_path / "s2"))
    out = sft.main(tiny_config("sft", s2, train_data, tmp_path / "sft", "data.packing=false"))
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and state["log_history"][0]["loss"] > 0
    lm = HFRecLM(pretrained=str(out), sid_codebook=256)       # the folder is a plain HF checkpoint
    assert lm.model.config.use_cache


def run_cli(*args, env=None):
    return subprocess.Popen([sys.executable, "-m", "trainers.cli", *args], cwd=REPO,
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def test_resume_after_a_kill_continues_from_the_checkpoint(tiny_model_dir, train_data, tmp_path):
    out = tmp_path / "sft"
    common = ["sft", "--config", str(REPO / "configs/train/tiny_sft.yaml"), "--set", f"model={tiny_model_dir}",
              "--set", f"data.dir={train_data}", "--set", f"output_dir={out}", "--set", "train.save_steps=2"]
    proc = run_cli(*common, "--set", "train.max_steps=10000")
    deadline = time.time() + 240
    # any finished checkpoint: on a fast machine checkpoint-2 may already be rotated away (save_total_limit)
    while not list(out.glob("checkpoint-*/trainer_state.json")):
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read() if proc.poll() is not None else "timeout"
        time.sleep(0.5)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "model.safetensors").exists()
    # a fast machine may have written later checkpoints before the kill: resume from the newest one
    last = max(int(c.name.split("-")[1]) for c in out.glob("checkpoint-*") if (c / "trainer_state.json").exists())
    target = last + 4
    resumed = run_cli(*common, "--set", f"train.max_steps={target}", "--set", "train.save_total_limit=10")
    log, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, log
    assert "resuming from" in log and f"checkpoint-{last}" in log
    state = json.loads((out / f"checkpoint-{target}" / "trainer_state.json").read_text())
    assert state["global_step"] == target
    assert [e["step"] for e in state["log_history"] if "loss" in e][:2] == [1, 2]   # steps 1-2 kept from the killed run
    assert (out / "model.safetensors").exists()


def test_resume_skips_a_checkpoint_whose_save_was_cut_off(tmp_path):
    from trainers.common.trainer import last_complete_checkpoint

    for step, complete in ((2, True), (4, True), (6, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-final").mkdir()
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-4")
    assert last_complete_checkpoint(tmp_path / "checkpoint-6") is None


def accelerate_sft(model, data, out, *launch_args):
    """``recif-train sft`` (tiny config, 2 steps) under ``accelerate launch``, 2 processes on this CPU.

    No ``--cpu``: with it accelerate starts a single process.  Without a GPU the recipe's
    ``use_cpu=True`` makes accelerate join the 2 processes over gloo (MULTI_CPU).
    """
    cmd = [sys.executable, "-m", "accelerate.commands.launch", *launch_args, "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "trainers.cli",
           "sft", "--config", str(REPO / "configs/train/tiny_sft.yaml"), "--set", f"model={model}",
           "--set", f"data.dir={data}", "--set", f"output_dir={out}", "--set", "train.max_steps=2"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "TRANSFORMERS_VERBOSITY": "info"})
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-6000:]
    assert "Total train batch size (w. parallel, distributed & accumulation) = 2" in log   # 2 processes x 1
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and (out / "model.safetensors").exists()
    return done


def test_two_process_accelerate_run(tiny_model_dir, train_data, tmp_path):
    accelerate_sft(tiny_model_dir, train_data, tmp_path / "ddp", "--multi_gpu")


def test_shipped_accelerate_configs_load_as_bf16_launches_of_8_processes():
    from accelerate.commands.config.config_args import load_config_from_file

    kinds = {"ddp": "MULTI_GPU", "fsdp": "FSDP", "deepspeed_zero2": "DEEPSPEED", "deepspeed_zero3": "DEEPSPEED"}
    for name, kind in kinds.items():
        config = load_config_from_file(str(REPO / "configs/accelerate" / f"{name}.yaml"))
        assert (config.distributed_type.value, config.num_processes, config.mixed_precision) == (kind, 8, "bf16")
        if kind == "DEEPSPEED":   # accumulation and clipping come from the recipe ("auto"), never a mismatch
            assert {"gradient_accumulation_steps", "gradient_clipping"}.isdisjoint(config.deepspeed_config)


@pytest.mark.slow
@pytest.mark.parametrize("config", ["ddp", "fsdp"])
def test_shipped_accelerate_configs_run_with_two_cpu_processes(config, tiny_model_dir, train_data, tmp_path):
    """configs/accelerate/*.yaml as shipped (8 GPUs there), here 2 CPU processes (on CPU accelerate joins
    them as MULTI_CPU; the FSDP sharding itself needs GPUs)."""
    out = tmp_path / config
    accelerate_sft(tiny_model_dir, train_data, out, "--config_file", str(REPO / "configs/accelerate" / f"{config}.yaml"))
    from safetensors.torch import load_file

    before, after = load_file(tiny_model_dir / "model.safetensors"), load_file(out / "model.safetensors")
    assert before.keys() == after.keys()   # a full (unsharded) state dict was saved
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_general_mixer_reads_local_files_offline(tmp_path):
    from trainers.common import mixer

    path = tmp_path / "faq.jsonl"
    path.write_text("\n".join(json.dumps({"text": f"问题{i}"}, ensure_ascii=False) for i in range(10)), encoding="utf-8")
    rows = mixer.general_rows([{"name": "faq", "path": str(path), "rows": 4}], seed=3)
    assert len(rows) == 4 and rows == mixer.general_rows([{"name": "faq", "path": str(path), "rows": 4}], seed=3)
    texts = [json.loads(r["segments"])[0]["text"] for r in rows]
    assert len(set(texts)) == 4 and all(t.startswith("问题") for t in texts)
    assert {r["source"] for r in rows} == {"general:faq"}


def test_mixture_weights_repeat_and_subsample(tmp_path):
    import pandas as pd

    pd.DataFrame([{"source": "a", "segments": json.dumps([{"type": "text", "text": str(i)}])} for i in range(10)]
                 ).to_parquet(tmp_path / "a.parquet")
    rows = samples.mix({"a": 2.5}, tmp_path, seed=0)
    texts = [json.loads(r["segments"])[0]["text"] for r in rows]
    assert len(texts) == 25 and all(texts.count(str(i)) in (2, 3) for i in range(10))


def test_recif_train_bad_config_is_one_error_line(tmp_path, capsys):
    from trainers.cli import main

    assert main(["sft", "--config", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"recif-train: error: {tmp_path / 'missing.yaml'}: config file not found"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {mixture: {}}\n", encoding="utf-8")
    assert main(["sft", "--config", str(bad)]) == 2
    assert capsys.readouterr().err.strip() == "recif-train: error: config lacks model"
