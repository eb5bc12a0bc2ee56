"""ProfileEncoder ([CLS]_enc of eq. 24) on the bundled all-MiniLM-L6-v2: the bf16 path stays
within 0.99 cosine of fp32, identical texts are embedded once, the label names the precision, and
the kernel caches are capped so that memory stays flat across new batch shapes."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from uscope.profile.encoder import (
    KERNEL_CACHE_CAPACITY,
    PRECISIONS,
    ProfileEncoder,
    bound_kernel_caches,
    default_precision,
    encoder_label,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")

TEXTS = [
    ("This user mainly uses Social (40%), Video (30%) and Tools (12%) apps, most often WeChat, "
     "Douyin and Chrome. Activity peaks in the evening, busiest around 21:00. They average 6.5 "
     "sessions per active day."),
    ("This user mainly uses Games (55%), Music (20%) and Shopping (9%) apps, most often Honor of "
     "Kings, NetEase Music and Taobao. Activity peaks late at night, busiest around 01:00."),
    ("Mostly Maps and Travel apps (Baidu Maps, Didi) on weekday mornings around metro stations; "
     "short sessions of about 3 minutes, 2.1 sessions per active day over 12 active days."),
    "A cold-start user: no event history yet.",
    ("Finance (35%) and News (25%) apps, most often Alipay and Toutiao, at the office between "
     "09:00 and 18:00, rarely on weekends."),
]


@pytest.fixture(scope="module")
def fp32(minilm):
    return ProfileEncoder(loaded=minilm, precision="fp32")


@pytest.fixture(scope="module")
def bf16(minilm):
    return ProfileEncoder(loaded=minilm, precision="bf16")


def test_bf16_embeddings_stay_within_099_cosine_of_fp32(fp32, bf16, minilm):
    ref, fast = fp32.encode(TEXTS), bf16.encode(TEXTS)
    for v in (ref, fast):
        assert v.shape == (len(TEXTS), 384) and v.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    cosine = (ref * fast).sum(axis=1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(fast, axis=1)
    assert cosine.min() >= 0.99
    assert next(bf16.model[0].parameters()).dtype == torch.bfloat16
    assert next(minilm.parameters()).dtype == torch.float32  # the shared model is left as it was
    np.testing.assert_allclose(fp32.encode(TEXTS), minilm.encode(TEXTS), atol=1e-6)  # = before


def test_identical_texts_are_embedded_once(bf16, monkeypatch):
    calls: list[list[str]] = []
    real = bf16.model.encode

    def counting(sentences, *args, **kwargs):
        calls.append(list(sentences))
        return real(sentences, *args, **kwargs)

    monkeypatch.setattr(bf16.model, "encode", counting)
    a, b, c = TEXTS[:3]
    out = bf16.encode([a, b, a, c, b, a])
    assert calls == [[a, b, c]]  # unique texts only, in first-seen order
    assert out.shape == (6, 384) and out.dtype == np.float32
    np.testing.assert_array_equal(out[[0, 2, 5]], np.repeat(out[:1], 3, axis=0))
    np.testing.assert_array_equal(out[4], out[1])
    np.testing.assert_array_equal(out[[0, 1, 3]], bf16.encode([a, b, c]))
    assert bf16.encode([]).shape == (0, 384)


def test_label_names_a_precision_other_than_fp32(fp32, bf16, minilm):
    assert fp32.label == "all-MiniLM-L6-v2" and fp32.precision == "fp32"
    assert bf16.label == "all-MiniLM-L6-v2@bf16" and bf16.precision == "bf16"
    assert encoder_label(None, "bf16") == bf16.label  # the same label without loading the model
    assert ProfileEncoder(loaded=minilm, label="mine", precision="bf16").label == "mine@bf16"
    default = ProfileEncoder(loaded=minilm)
    assert default.precision == default_precision("cpu") in PRECISIONS
    assert default.label == encoder_label(None)
    assert default_precision("cuda") == "fp32"
    import torch  # bf16 only where AMX makes it faster (without AMX it measured 0.69x fp32)

    assert default_precision("cpu") == ("bf16" if torch.cpu._is_amx_tile_supported() else "fp32")


def test_unknown_precision_is_refused_before_loading_anything():
    with pytest.raises(ValueError, match=r"'fp32', 'bf16'.*got 'fp16'"):
        ProfileEncoder("/no/such/model", precision="fp16")
    with pytest.raises(ValueError, match=r"'fp32', 'bf16'"):
        encoder_label(None, "int8")


def test_cache_caps_yield_to_the_operator_and_leave_the_environment(minilm, monkeypatch):
    for name in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "DNNL_PRIMITIVE_CACHE_CAPACITY",
                 "LRU_CACHE_CAPACITY"):
        monkeypatch.setenv(name, "0")  # recorded, so whatever happens is undone after
        monkeypatch.delenv(name)
    monkeypatch.setenv("LRU_CACHE_CAPACITY", "8")
    assert bound_kernel_caches() == ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"]
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == str(KERNEL_CACHE_CAPACITY)
    assert os.environ["LRU_CACHE_CAPACITY"] == "8"
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY")
    monkeypatch.setenv("DNNL_PRIMITIVE_CACHE_CAPACITY", "16")  # oneDNN's older name
    assert bound_kernel_caches() == []
    monkeypatch.delenv("DNNL_PRIMITIVE_CACHE_CAPACITY")
    monkeypatch.delenv("LRU_CACHE_CAPACITY")
    ProfileEncoder(loaded=minilm, precision="bf16")  # sets them for its first call only
    assert not {"ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY"} & set(os.environ)


GROWTH = """
import random, sys, psutil, torch
torch.set_num_threads(1)
from uscope.profile.encoder import ProfileEncoder
from uscope.profile.stream import release_freed_memory
encoder = ProfileEncoder(precision="bf16")
rng = random.Random(0)
encoder.encode(["warm up"] * 8)
start = psutil.Process().memory_info().rss
for length in rng.sample(range(8, 120), 48):  # 48 shapes (8, length) never seen before
    encoder.encode([" ".join(["evening"] * length) + f" {i}" for i in range(8)])
    release_freed_memory()
print((psutil.Process().memory_info().rss - start) / 2**20)
"""


@pytest.mark.slow
@pytest.mark.skipif(default_precision() != "bf16", reason="bf16 kernels need a CPU with AMX")
def test_bounded_kernel_caches_keep_memory_flat_across_new_shapes():
    """A fresh process per setting: the caches are sized at the first oneDNN primitive."""
    def growth(capacity: str | None) -> float:
        env = {k: v for k, v in os.environ.items()
               if k not in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")}
        if capacity is not None:
            env |= {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": capacity, "LRU_CACHE_CAPACITY": capacity}
        done = subprocess.run([sys.executable, "-c", GROWTH], env=env, check=False,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
        return float(done.stdout.strip().splitlines()[-1])

    unbounded, bounded = growth("1024"), growth(None)  # torch's default, then ours
    assert bounded < 0.5 * unbounded, (bounded, unbounded)
