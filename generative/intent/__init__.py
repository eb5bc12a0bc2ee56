"""PITuning intent head (Gong et al., KDD'24): a pretrained-LM next-intent predictor, tuned on
the population (eq. 2-5), distilled into a small student (eq. 6-7) and adapted per user with
adaptive unlearning (eq. 8-11); metrics of Appendix D (eq. 12-16) and the baselines."""

from generative.intent.backbone import Backbone, BackboneConfig, load_backbone
from generative.intent.baselines import (
    FirstOrderMarkov,
    MostFrequent,
    appendix_e_features,
    fit_lightgbm,
    lightgbm_params,
    lightgbm_per_user,
)
from generative.intent.checkpoint import (
    load_adapters,
    load_predictor,
    save_adapters,
    save_predictor,
)
from generative.intent.data import (
    HONOR,
    MOBILE,
    SPLIT_UNITS,
    IntentDataConfig,
    IntentSamples,
    IntentSequences,
    IntentVocab,
    build_samples,
    build_sequences,
    intent_setting,
    split_earlier_later,
    split_users,
)
from generative.intent.export import export_torchscript, load_exported, max_export_error
from generative.intent.individual import (
    STRATEGIES,
    IndividualConfig,
    UserAdapter,
    predict_with_adapters,
    tune_user,
    tune_users,
)
from generative.intent.metrics import METRIC_NAMES, intent_metrics, recall_per_intent
from generative.intent.model import ADAPTER_PARAMS, IntentModelConfig, IntentPredictor
from generative.intent.protocol import (
    ProtocolConfig,
    ProtocolData,
    build_protocol,
    validation_protocol,
)
from generative.intent.train import (
    TrainConfig,
    distill,
    output_distribution,
    predict_logits,
    train_population,
)

__all__ = [
    "ADAPTER_PARAMS", "HONOR", "METRIC_NAMES", "MOBILE", "SPLIT_UNITS", "STRATEGIES",
    "Backbone",
    "BackboneConfig", "FirstOrderMarkov", "IndividualConfig", "IntentDataConfig",
    "IntentModelConfig", "IntentPredictor", "IntentSamples", "IntentSequences", "IntentVocab",
    "MostFrequent", "ProtocolConfig", "ProtocolData", "TrainConfig", "UserAdapter",
    "appendix_e_features", "build_protocol", "build_samples", "build_sequences", "distill",
    "export_torchscript", "fit_lightgbm", "intent_metrics", "intent_setting", "lightgbm_params",
    "lightgbm_per_user", "load_adapters", "load_backbone", "load_exported", "load_predictor",
    "max_export_error", "output_distribution", "predict_logits", "predict_with_adapters",
    "recall_per_intent", "save_adapters", "save_predictor", "split_earlier_later",
    "split_users", "train_population", "tune_user", "tune_users", "validation_protocol",
]
