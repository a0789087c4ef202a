"""mini-RecIF: a small synthetic world in the official RecIF formats, the embedded default.

It exists so every command and test runs without data or network, on inputs with the real shape:
the raw tables (user table, pid2sid, pid2caption) and the 8 benchmark files built from them by the
official builders.  The world has learnable structure, so scores mean something:

* 20 topics, each with its own vocabulary; captions, keywords and explanations use it;
* videos, ads and products with a topic and Zipf popularity inside the topic;
* SIDs whose first code is the topic's block (codes < 256, so tiny models can use a 3 x 256
  vocabulary), plus a few deliberate collisions (two items sharing one SID);
* users with 1-3 favourite topics: most history and targets come from them, and long-views,
  likes and follows are much more likely on favourite topics.

A model that learns the structure beats popularity; a random model scores near zero.
Everything is drawn from seeded generators, so one seed always gives the same bytes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import tempfile
from collections import Counter
from functools import lru_cache
from itertools import accumulate
from pathlib import Path

from recif_bench import sid
from recif_bench.data import builders
from recif_bench.data.training import RAW_FILES
from recif_bench.paths import cache_root

log = logging.getLogger(__name__)

VERSION = "v1"
MARKER = "mini-recif.json"   # names a generated world, so results say "mini-recif", not "custom"
FORMAT = sid.SidFormat(3, 8192)
CODES = 256            # every code is below this, whatever the format's codebook size
SUBCLUSTERS = 12       # first-level codes per topic: topic t owns codes [12 t, 12 t + 12)

TOPICS = {
    "美食": ["红烧肉", "火锅", "烘焙", "家常菜", "甜点", "小吃"],
    "旅行": ["雪山", "古镇", "海边", "自驾", "露营", "民宿"],
    "游戏": ["手游", "电竞", "通关", "攻略", "角色", "副本"],
    "健身": ["跑步", "瑜伽", "增肌", "减脂", "拉伸", "跳绳"],
    "萌宠": ["猫咪", "狗狗", "仓鼠", "喂食", "洗澡", "撒娇"],
    "音乐": ["吉他", "钢琴", "翻唱", "演唱会", "民谣", "说唱"],
    "舞蹈": ["街舞", "民族舞", "芭蕾", "编舞", "广场舞", "爵士"],
    "汽车": ["试驾", "改装", "新能源", "保养", "越野", "赛车"],
    "数码": ["手机", "耳机", "相机", "电脑", "开箱", "测评"],
    "美妆": ["口红", "眼影", "护肤", "底妆", "卸妆", "香水"],
    "穿搭": ["外套", "连衣裙", "球鞋", "配饰", "通勤", "复古"],
    "育儿": ["宝宝", "辅食", "绘本", "早教", "亲子", "睡眠"],
    "搞笑": ["段子", "恶搞", "整蛊", "配音", "模仿", "情景剧"],
    "影视": ["电影", "剧集", "解说", "预告", "幕后", "影评"],
    "体育": ["足球", "篮球", "羽毛球", "网球", "游泳", "比赛"],
    "科普": ["宇宙", "物理", "动物", "化学", "实验", "历史"],
    "财经": ["理财", "基金", "股票", "消费", "创业", "经济"],
    "教育": ["数学", "英语", "考试", "作文", "编程", "学习方法"],
    "手工": ["木工", "折纸", "编织", "陶艺", "刺绣", "模型"],
    "农村": ["种菜", "养鸡", "赶集", "农活", "果园", "田园"],
}
TOPIC_NAMES = list(TOPICS)
SCENES = ["画面中展示了{a}和{b}", "视频记录了{a}的过程，并介绍了{b}", "博主分享了关于{a}的经验，还提到{b}",
          "镜头聚焦{a}，背景是{b}", "内容围绕{a}展开，结尾出现了{b}"]
FEEDBACK = {  # P(flag) on a favourite topic / elsewhere
    "longview": (0.7, 0.15), "like": (0.35, 0.04), "follow": (0.12, 0.01),
    "forward": (0.10, 0.01), "not_interested": (0.02, 0.25),
}


class World:
    """Items, users and their interactions, drawn from one seed."""

    def __init__(self, seed: int, scale: float) -> None:
        self.rng = random.Random(f"mini-recif:{seed}")
        self.seed = seed
        n = lambda base: max(20, int(base * scale))   # noqa: E731  (a local size helper)
        self.videos = self._items(1, n(2400), "video")
        self.ads = self._items(len(self.videos) + 1, n(500), "ad")
        self.products = self._items(1, n(700), "product")
        self.video_sid = self._sids(self.videos, set())
        self.ad_sid = self._sids(self.ads, set(self.video_sid.values()))
        self.product_sid = self._sids(self.products, set())
        # topic groups are drawn from for every pick: built once, so the world grows linearly with its scale
        self.groups = {kind: self._by_topic(items)
                       for kind, items in (("video", self.videos), ("ad", self.ads), ("product", self.products))}
        self.users = [self._user(uid) for uid in range(1, n(1300) + 1)]

    def _items(self, first_id: int, count: int, kind: str) -> dict[int, int]:
        """item id -> topic."""
        return {first_id + i: self.rng.randrange(len(TOPICS)) for i in range(count)}

    def _sids(self, items: dict[int, int], taken: set) -> dict[int, tuple[int, int, int]]:
        out: dict[int, tuple[int, int, int]] = {}
        used = set(taken)
        for pid, topic in items.items():
            while True:
                codes = (topic * SUBCLUSTERS + self.rng.randrange(SUBCLUSTERS), self.rng.randrange(CODES),
                         self.rng.randrange(CODES))
                if codes not in used:
                    break
            used.add(codes)
            out[pid] = codes
        # a few deliberate collisions inside the domain: the SID -> item path must handle them
        pids = sorted(items)
        for a, b in zip(pids[3::97], pids[5::97]):
            if items[a] == items[b]:
                out[b] = out[a]
        return out

    def _by_topic(self, items: dict[int, int]) -> list[list[int]]:
        groups: list[list[int]] = [[] for _ in TOPICS]
        for pid, topic in items.items():
            groups[topic].append(pid)
        return groups

    def _pick(self, rng: random.Random, groups: list[list[int]], favourites: list[int], k: int,
              loyalty: float = 0.85) -> list[int]:
        """k items, mostly from favourite topics, Zipf-popular inside a topic (index = popularity rank)."""
        out = []
        for _ in range(k):
            topic = rng.choice(favourites) if rng.random() < loyalty else rng.randrange(len(TOPICS))
            group = groups[topic] or groups[favourites[0]]
            out.append(rng.choices(group, cum_weights=_zipf_cumulative(len(group)))[0])
        return out

    def _user(self, uid: int) -> dict:
        rng = random.Random(f"mini-recif:{self.seed}:user:{uid}")
        favourites = rng.sample(range(len(TOPICS)), rng.choice([1, 2, 2, 3]))
        videos, ads, products = (self.groups[kind] for kind in ("video", "ad", "product"))
        history = self._pick(rng, videos, favourites, rng.randint(20, 70))
        targets = self._pick(rng, videos, favourites, 10)
        user: dict = {"uid": uid, "split": 1 if rng.random() < 0.3 else 0, "favourites": favourites,
                      "hist_video_pid": history, "target_video_pid": targets}
        for kind, (p_fav, p_other) in FEEDBACK.items():
            for prefix, pids in (("hist", history), ("target", targets)):
                user[f"{prefix}_video_{kind}"] = [
                    int(rng.random() < (p_fav if self.videos[p] in favourites else p_other)) for p in pids]
        user["hist_longview_video_list"] = (self._pick(rng, videos, favourites, 30)
                                            + [p for p, f in zip(history, user["hist_video_longview"]) if f])
        user["hist_ad_pid"] = self._pick(rng, ads, favourites, rng.randint(3, 15))
        user["target_ad_pid"] = self._pick(rng, ads, favourites, rng.randint(1, 4))
        user["hist_goods_pid"] = self._pick(rng, products, favourites, rng.randint(3, 15))
        user["target_goods_pid"] = self._pick(rng, products, favourites, rng.randint(1, 4))
        return user

    def caption(self, pid: int) -> str:
        rng = random.Random(f"mini-recif:{self.seed}:caption:{pid}")
        topic = TOPIC_NAMES[self.videos.get(pid, self.ads.get(pid, 0))]
        a, b, c = rng.sample(TOPICS[topic], 3)
        return f"这是一个{topic}类视频。" + rng.choice(SCENES).format(a=a, b=b) + f"，整体氛围轻松，适合喜欢{c}的观众。"

    def text_fields(self, user: dict) -> dict:
        """Profile, search keywords and the rec-reason fields of one user."""
        rng = random.Random(f"mini-recif:{self.seed}:text:{user['uid']}")
        names = [TOPIC_NAMES[t] for t in user["favourites"]]
        recent = sid.render_many([self.video_sid[p] for p in user["hist_video_pid"][-3:]], FORMAT)
        profile = f"该用户主要关注{'、'.join(names)}相关内容，最近观看了{recent}。"
        keywords = {}
        for topic in user["favourites"][:2]:
            word = rng.choice(TOPICS[TOPIC_NAMES[topic]])
            matching = [p for p in user["target_video_pid"] if self.videos[p] == topic]
            keywords[word] = matching or self._pick(rng, self.groups["video"], [topic], 3, 1.0)
        target = user["target_video_pid"][0]
        topic = TOPIC_NAMES[self.videos[target]]
        cot = (f"预测分析：用户的历史观看集中在{'、'.join(names)}，近期多次完整观看相关视频。"
               f"下一个视频属于{topic}，与用户兴趣{'一致' if self.videos[target] in user['favourites'] else '有所不同'}。\n"
               f"精炼推理：用户长期喜欢{'、'.join(names)}内容，因此点击了这个关于{topic}的视频。")
        return {"inter_user_profile_with_sid": profile,
                "inter_keyword_to_items": json.dumps(keywords, ensure_ascii=False),
                "reco_gsu_caption": "；".join(self.caption(p) for p in user["hist_video_pid"][-2:]),
                "reco_target_caption": self.caption(target), "reco_cot": cot, "target_pid": target}


@lru_cache(maxsize=None)
def _zipf_cumulative(size: int) -> list[float]:
    """Cumulative Zipf weights 1/(rank+1): the very floats ``random.choices`` would accumulate itself."""
    return list(accumulate(1.0 / (rank + 1) for rank in range(size)))


def _raw_tables(world: World):
    import pandas as pd

    rows = []
    for user in world.users:
        row = {k: v for k, v in user.items() if k != "favourites"}
        text = world.text_fields(user)
        if user["uid"] % 3:                      # a third of the users have no rec-reason record
            row.update(text)
        else:
            row.update({k: (None if k.startswith("reco") or k == "target_pid" else v) for k, v in text.items()})
        rows.append(row)
    users = pd.DataFrame(rows)
    video_ad = {**world.video_sid, **world.ad_sid}
    video_table = pd.DataFrame({"pid": list(video_ad), "sid": [list(c) for c in video_ad.values()]})
    product_table = pd.DataFrame({"pid": list(world.product_sid), "sid": [list(c) for c in world.product_sid.values()]})
    captions = pd.DataFrame({"pid": list(world.videos), "dense_caption": [world.caption(p) for p in world.videos]})
    return users, video_table, product_table, captions


def _item_map(counts_all: Counter, counts_test: Counter, mapping: dict) -> dict:
    """codes -> [(item, count, count_after_downsample)] for the sid2pid.json layout."""
    by_sid: dict = {}
    for pid, codes in mapping.items():
        by_sid.setdefault(codes, []).append((pid, counts_all[pid], counts_test[pid]))
    return by_sid


def _counts(users, columns: list[str], split: int | None = None) -> Counter:
    counter: Counter = Counter()
    for user in users:
        if split is None or user["split"] == split:
            for column in columns:
                counter.update(user[column])
    return counter


def generate(out_dir: str | Path, seed: int = 0, scale: float = 1.0) -> Path:
    """Write mini-RecIF to ``out_dir`` (atomically: a half-written world never appears)."""
    out_dir = Path(out_dir)
    world = World(seed, scale)
    users, video_table, product_table, captions = _raw_tables(world)
    maps = builders.ItemMaps.from_tables(video_table, product_table, FORMAT)
    examples = builders.build_user_tasks(users, maps, split=1, seed=seed)
    rng = random.Random(f"mini-recif:{seed}:item_understand")
    understand = builders.build_item_understand(captions, maps, seed)
    examples["item_understand"] = sorted(rng.sample(understand, min(len(understand), max(20, int(150 * scale)))),
                                         key=lambda e: e.metadata["pid"])
    examples["rec_reason"] = examples["rec_reason"][: max(20, int(150 * scale))]

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        raw = tmp / "raw"
        raw.mkdir()
        users.to_parquet(raw / RAW_FILES["users"], index=False)
        video_table.to_parquet(raw / RAW_FILES["video"], index=False)
        product_table.to_parquet(raw / RAW_FILES["product"], index=False)
        captions.to_parquet(raw / RAW_FILES["captions"], index=False)
        builders.write_benchmark(examples, tmp)
        video_cols = ["hist_video_pid", "target_video_pid", "hist_ad_pid", "target_ad_pid"]
        goods_cols = ["hist_goods_pid", "target_goods_pid"]
        sid.write_item_map(tmp / "sid2pid.json", _item_map(_counts(world.users, video_cols),
                                                          _counts(world.users, video_cols, 1),
                                                          {**world.video_sid, **world.ad_sid}), FORMAT)
        sid.write_item_map(tmp / "sid2iid.json", _item_map(_counts(world.users, goods_cols),
                                                          _counts(world.users, goods_cols, 1),
                                                          world.product_sid), FORMAT, id_key="iid")
        (tmp / MARKER).write_text(json.dumps({
            "name": "mini-recif", "version": VERSION, "seed": seed, "scale": scale,
            "sid2pid_counts": "count = interactions of all users; count_after_downsample = of test users"}),
            encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("mini-RecIF written to %s: %s", out_dir, {t: len(e) for t, e in examples.items()})
    return out_dir


def train_examples(data_dir: str | Path, seed: int = 0) -> dict[str, list[builders.Example]]:
    """The SFT examples of the training users (split 0) of a generated world."""
    import pandas as pd

    raw = Path(data_dir) / "raw"
    maps = builders.ItemMaps.from_tables(pd.read_parquet(raw / RAW_FILES["video"]),
                                         pd.read_parquet(raw / RAW_FILES["product"]), FORMAT)
    examples = builders.build_user_tasks(pd.read_parquet(raw / RAW_FILES["users"]), maps, 0, seed)
    captions = pd.read_parquet(raw / RAW_FILES["captions"])
    examples["item_understand"] = builders.build_item_understand(captions, maps, seed)
    return examples


def default_data_dir(seed: int = 0) -> Path:
    """The cached default dataset, generated on first use under ``$RECIF_BENCH_CACHE``."""
    cache = cache_root()
    path = cache / f"mini-recif-{VERSION}-seed{seed}"
    if not (path / "sid2pid.json").exists():
        log.warning("generating mini-RecIF into %s (first use, a few seconds)", path)
        generate(path, seed)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Generate the synthetic mini-RecIF dataset.")
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    print(generate(args.out, args.seed, args.scale))


if __name__ == "__main__":
    main()
