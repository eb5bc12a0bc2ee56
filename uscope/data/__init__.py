"""Data layer: validated event tables, readers, the dataset registry, location categories,
behaviour tensors,
the item views and novelty split that later stages share, and the simulator that provides the
package's embedded (simulated) default data."""

from uscope.data.datasets import DatasetSpec, LoadedDataset, dataset_names, load_dataset
from uscope.data.foursquare import read_foursquare
from uscope.data.frappe import read_frappe
from uscope.data.generic import read_events
from uscope.data.items import (
    KIND_COLUMNS,
    UsageMatrix,
    intent_column,
    item_column,
    known_items,
    used_items,
)
from uscope.data.locations import (
    LocationMap,
    cluster_gps_places,
    fit_location_categories,
    place_centres,
    poi_mix_near_places,
)
from uscope.data.netfp import read_netfp
from uscope.data.schema import (
    EVENT_COLUMNS,
    DataError,
    ReadReport,
    has_apps,
    has_places,
    has_times,
    load_events,
    parse_context,
    save_events,
    validate_events,
)
from uscope.data.shanghai import read_shanghai_sample
from uscope.data.simulate import SimulatedPopulation, simulate
from uscope.data.splits import SyntheticInEvaluation, cutoff_time, novelty_split, require_real
from uscope.data.studentlife import read_studentlife
from uscope.data.tensor import BehaviourTensors, TensorConfig, build_tensors
from uscope.data.tsinghua import TsinghuaData, read_tsinghua

__all__ = [
    "EVENT_COLUMNS",
    "KIND_COLUMNS",
    "BehaviourTensors",
    "DataError",
    "DatasetSpec",
    "LoadedDataset",
    "LocationMap",
    "ReadReport",
    "SimulatedPopulation",
    "SyntheticInEvaluation",
    "TensorConfig",
    "TsinghuaData",
    "UsageMatrix",
    "build_tensors",
    "cluster_gps_places",
    "cutoff_time",
    "dataset_names",
    "fit_location_categories",
    "has_apps",
    "has_places",
    "has_times",
    "intent_column",
    "item_column",
    "known_items",
    "load_dataset",
    "load_events",
    "novelty_split",
    "parse_context",
    "place_centres",
    "poi_mix_near_places",
    "read_events",
    "read_foursquare",
    "read_frappe",
    "read_netfp",
    "read_shanghai_sample",
    "read_studentlife",
    "read_tsinghua",
    "require_real",
    "save_events",
    "simulate",
    "used_items",
    "validate_events",
]
