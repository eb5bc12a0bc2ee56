"""PITuning in three stages (Gong et al., KDD'24): population, distill, individual.

    python recipes/train_intent.py population --config recipes/intent/population.yaml
    python recipes/train_intent.py distill    --config recipes/intent/distill.yaml
    python recipes/train_intent.py individual --config recipes/intent/individual.yaml

Every stage reads the same events and protocol (population users vs held-out users), so the
three configs share the ``data`` and ``protocol`` blocks; ``--set section.key=value`` overrides
any config entry. Outputs: a teacher folder, a student folder, and adapters + test metrics.

``profiles: runs/profiles.parquet`` (a ProfileSet written by ``uscope profile``) conditions the
models on h_u, matched to the protocol's users by user id (``generative.conditioning``); users
without a profile stop the run naming them, unless ``missing_profiles: mean``. Give it to all
three stages; write the profiles from history that excludes the held-out users' test events.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

import torch
import yaml

from generative.intent import (
    BackboneConfig,
    IndividualConfig,
    IntentDataConfig,
    IntentPredictor,
    ProtocolConfig,
    TrainConfig,
    build_protocol,
    distill,
    intent_metrics,
    load_backbone,
    load_predictor,
    output_distribution,
    predict_logits,
    predict_with_adapters,
    save_adapters,
    save_predictor,
    train_population,
    tune_users,
)
from generative.intent.data import IntentVocab


def _dataclass(cls, values: dict | None):
    values = values or {}
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise SystemExit(f"unknown {cls.__name__} key(s): {sorted(unknown)}")
    return cls(**values)


def load_config(path: Path, overrides: list[str]) -> dict:
    config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for item in overrides:
        key, _, raw = item.partition("=")
        section, _, name = key.partition(".")
        if name:
            config.setdefault(section, {})[name] = yaml.safe_load(raw)
        else:  # a top-level key such as out= or teacher=
            config[section] = yaml.safe_load(raw)
    return config


def read_events(source: str):
    from uscope.cli.data import read_any

    return read_any(Path(source), None, lenient=False, rejects=None)[0]


def protocol_from(config: dict, vocab: IntentVocab | None = None):
    data_config = _dataclass(IntentDataConfig, config.get("data"))
    events = read_events(config["events"])
    return build_protocol(events, data_config, _dataclass(ProtocolConfig, config.get("protocol")),
                          vocab=vocab, source=config["events"])


def user_embeddings(config: dict, data, model=None) -> torch.Tensor | None:
    """h_u of ``profiles`` in the protocol's user order (None without it); a saved model that
    conditions on h_u needs them."""
    if not config.get("profiles"):
        if model is not None and model.config.user_embedding_dim > 0:
            raise SystemExit("this model conditions on h_u: set profiles: PATH (a ProfileSet)")
        return None
    from generative.conditioning import align_embeddings
    from uscope.profile import ProfileSet

    h = align_embeddings(ProfileSet.load(config["profiles"]), data.seqs.user_ids,
                         missing=config.get("missing_profiles", "error"),
                         source=str(config["profiles"]))
    print(f"h_u of {h.shape[0]} users from {config['profiles']} ({h.shape[1]}-d)")
    return torch.from_numpy(h)


def model_options(config: dict, h: torch.Tensor | None) -> dict:
    options = dict(config.get("model", {}))
    if h is not None:
        options["user_embedding_dim"] = h.shape[1]
    return options


def stage_population(config: dict) -> None:
    torch.manual_seed(config.get("seed", 0))
    data = protocol_from(config)
    print(json.dumps(data.summary()))
    h = user_embeddings(config, data)
    backbone = load_backbone(_dataclass(BackboneConfig, config.get("backbone")))
    model = IntentPredictor.from_vocab(data.vocab, backbone, **model_options(config, h))
    print(f"backbone: {model.backbone_label}; {model.n_parameters() / 1e6:.2f}M parameters")
    train_population(model, data.population, _dataclass(TrainConfig, config.get("train")),
                     user_embeddings=h, log=print)
    p_out = output_distribution(predict_logits(model, data.population, user_embeddings=h))
    save_predictor(model, config["out"], data.vocab, data.data_config, {
        "stage": "population", "p_out": p_out.tolist(), "p_pop": data.p_pop.tolist(),
        "protocol": config.get("protocol", {})})
    print(f"saved the population predictor to {config['out']}")


def stage_distill(config: dict) -> None:
    torch.manual_seed(config.get("seed", 0))
    teacher, vocab, _, meta = load_predictor(config["teacher"])
    data = protocol_from(config, vocab)
    h = user_embeddings(config, data, teacher)
    backbone = load_backbone(_dataclass(BackboneConfig, config.get("backbone")))
    student = IntentPredictor.from_vocab(vocab, backbone, **model_options(config, h))
    print(f"teacher: {teacher.backbone_label}; student: {student.backbone_label}, "
          f"{student.n_parameters() / 1e6:.2f}M parameters")
    distill(student, teacher, data.population, _dataclass(TrainConfig, config.get("train")),
            user_embeddings=h, log=print)
    save_predictor(student, config["out"], vocab, data.data_config,
                   {**meta, "stage": "distill", "teacher": teacher.backbone_label})
    print(f"saved the student to {config['out']}")


def stage_individual(config: dict) -> None:
    student, vocab, _, meta = load_predictor(config["student"])
    data = protocol_from(config, vocab)
    h = user_embeddings(config, data, student)
    individual = _dataclass(IndividualConfig, config.get("individual"))
    adapters = tune_users(student, data.tune, torch.tensor(meta["p_out"]),
                          torch.tensor(meta["p_pop"]), individual, user_embeddings=h)
    out = Path(config.get("out", config["student"]))
    out.mkdir(parents=True, exist_ok=True)
    save_adapters({data.seqs.user_ids[u]: a for u, a in adapters.items()}, out)
    scores = predict_with_adapters(student, data.test, adapters, user_embeddings=h).numpy()
    metrics = intent_metrics(data.test.target.numpy(), scores)
    (out / "individual_metrics.json").write_text(json.dumps(
        {"strategy": individual.strategy, "backbone": student.backbone_label, **metrics},
        indent=1), encoding="utf-8")
    print(json.dumps(metrics, indent=1))
    print(f"saved {len(adapters)} adapters to {out}")


STAGES = {"population": stage_population, "distill": stage_distill,
          "individual": stage_individual}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=sorted(STAGES))
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(load_config(args.config, args.set).get("threads", 1)))
    STAGES[args.stage](load_config(args.config, args.set))


if __name__ == "__main__":
    sys.exit(main())
