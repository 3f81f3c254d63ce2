"""Stage 1 of the flow: the typed cloud model and its loader."""

from hastack.model.cloud import (
    HOME_REGION,
    SERVICES,
    Architecture,
    Cell,
    Cloud,
    Node,
    Rack,
    Region,
    Role,
    Settings,
    Vips,
    Zone,
)
from hastack.model.load import load_cloud, parse_cloud

__all__ = [
    "HOME_REGION", "Architecture", "Cell", "Cloud", "Node", "Rack", "Region", "Role", "SERVICES",
    "Settings", "Vips", "Zone",
    "load_cloud", "parse_cloud",
]
