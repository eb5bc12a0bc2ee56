"""Train U-MASK + DiT on behaviour tensors (U-MASK paper Alg. 1).

    accelerate launch --config_file recipes/accelerate_configs/<cfg>.yaml \
        recipes/train_umask.py --config recipes/umask/netfp_small.yaml
    python recipes/train_umask.py --config recipes/umask/netfp_small.yaml --steps 200

The YAML names the data (the netfp CSV, a Tsinghua directory, an event table, or tensors saved by
``BehaviourTensors.save``), the tensor layout, the user embeddings (``uscope``: heuristic
profiles of the history window; ``standin``: generative.standin; or an .npy file), the model preset
and the training settings. The model is saved with ``UMaskCompleter.save`` (safetensors + json).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import yaml


def load_tensors(data: dict):
    from uscope.data import (
        BehaviourTensors,
        TensorConfig,
        build_tensors,
        read_events,
        read_netfp,
        read_tsinghua,
    )

    source = Path(data["source"])
    if data.get("format") == "tensors" or source.suffix == ".npz":
        return BehaviourTensors.load(source), None
    fmt = data.get("format", "netfp")
    if fmt == "netfp":
        events, _ = read_netfp(source)
    elif fmt == "tsinghua":
        events = read_tsinghua(source).events
    else:
        events, _ = read_events(source)
    cfg = TensorConfig(slot_minutes=data.get("slot_minutes", 60), n_slots=data.get("n_slots", 24),
                       observed=data.get("observed", "all"))
    return build_tensors(events, cfg), events


def user_embeddings(spec: str, bt, events, history_slots: int) -> np.ndarray:
    from generative.standin import histogram_embedding

    if spec.endswith(".npy"):
        return np.load(spec).astype(np.float32)
    if spec == "uscope" and events is not None:
        import pandas as pd

        import uscope

        cutoff = pd.Timestamp(bt.start) + pd.Timedelta(
            minutes=bt.config.slot_minutes * history_slots)
        profiles = uscope.profile_users(events[events["timestamp"] < cutoff], backend="heuristic",
                                        users=bt.user_ids)
        order = {u: i for i, u in enumerate(profiles.user_ids)}
        return profiles.embeddings()[[order[u] for u in bt.user_ids]].astype(np.float32)
    return histogram_embedding(bt.values, bt.channel_groups["app"], history_slots)


def main() -> None:
    ap = argparse.ArgumentParser(description="Train U-MASK + DiT")
    ap.add_argument("--config", required=True)
    ap.add_argument("--output_dir", default=None)
    ap.add_argument("--steps", type=int, default=None, help="override train.steps")
    args = ap.parse_args()
    conf = yaml.safe_load(Path(args.config).read_text(encoding="utf-8"))

    import torch
    from accelerate import Accelerator

    from generative.completion import UMaskCompleter
    from generative.config import DIT_PRESETS
    from generative.train import TrainConfig, fit

    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    bt, events = load_tensors(conf["data"])
    n_slots = bt.values.shape[2]
    h = user_embeddings(str(conf.get("embeddings", "standin")), bt, events,
                        conf.get("history_slots", n_slots // 2))
    if h.shape[0] != bt.values.shape[0]:
        raise ValueError(f"embeddings have {h.shape[0]} rows for {bt.values.shape[0]} users")
    C, T, H, W = bt.values.shape[1:]
    model_conf = conf.get("model", {})
    cfg = DIT_PRESETS[model_conf.get("preset", "umask-small")](
        channels=C, n_slots=T, height=H, width=W, patch=tuple(model_conf.get("patch", (1, H, W))),
        user_dim=h.shape[1], fusion=model_conf.get("fusion", "concat"),
        mask_policy=model_conf.get("mask_policy", "adaptive"),
        train_steps=model_conf.get("diffusion_steps", 200))
    cfg.channel_names, cfg.channel_groups = bt.channel_names, bt.channel_groups
    cfg.umask.set_centred(model_conf.get("centre", []))
    train_cfg = TrainConfig(**conf.get("train", {}))
    if args.steps is not None:
        train_cfg.steps = args.steps
    model = UMaskCompleter(cfg)
    fit(model, bt.values, bt.observed_mask, h, train_cfg, accelerator=accelerator,
        callback=lambda r: accelerator.print(
            f"step {r['step']}: loss {r['loss']:.4f} rec {r['rec']:.4f} con {r['con']:.4f} "
            f"rho_tau {[round(x, 3) for x in r['ratios']]}"
            + (f" val {r['val_loss']:.4f} (best step {r['best_step']})" if "val_loss" in r
               else "")))
    if accelerator.is_main_process:
        model = accelerator.unwrap_model(model)
        model.set_reference(torch.from_numpy(h[:256]))
        out = Path(args.output_dir or conf.get("output_dir", "runs/umask"))
        model.save(out)
        accelerator.print(f"saved {out}/model.safetensors and {out}/config.json")


if __name__ == "__main__":
    main()
