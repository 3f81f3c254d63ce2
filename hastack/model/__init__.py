"""Stage 1 of the flow: the typed cloud model and its loader."""

from hastack.model.cloud import SERVICES, Architecture, Cloud, Node, Role, Settings, Vips
from hastack.model.load import load_cloud, parse_cloud

__all__ = [
    "Architecture", "Cloud", "Node", "Role", "SERVICES", "Settings", "Vips",
    "load_cloud", "parse_cloud",
]
