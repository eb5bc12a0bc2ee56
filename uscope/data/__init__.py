"""Data layer: validated event tables, readers, location categories, behaviour tensors,
and the simulator that provides the package's embedded (simulated) default data."""

from uscope.data.generic import read_events
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
    load_events,
    save_events,
    validate_events,
)
from uscope.data.simulate import SimulatedPopulation, simulate
from uscope.data.tensor import BehaviourTensors, TensorConfig, build_tensors
from uscope.data.tsinghua import TsinghuaData, read_tsinghua

__all__ = [
    "EVENT_COLUMNS", "BehaviourTensors", "DataError", "LocationMap", "ReadReport",
    "SimulatedPopulation", "TensorConfig", "TsinghuaData", "build_tensors", "cluster_gps_places",
    "fit_location_categories", "load_events", "place_centres", "poi_mix_near_places",
    "read_events", "read_netfp", "read_tsinghua", "save_events", "simulate", "validate_events",
]
