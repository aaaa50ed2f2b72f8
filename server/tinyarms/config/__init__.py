"""Config: the typed schema, layered loading with provenance, and workspace trust."""

from tinyarms.config.layers import Problem, Source, is_config_file, user_config_file
from tinyarms.config.loader import ConfigInputs, LoadResult, load_best, load_config, unstructure
from tinyarms.config.schema import ROLE_NAMES, Config, Role, Tier

__all__ = [
    "ROLE_NAMES",
    "Config",
    "ConfigInputs",
    "LoadResult",
    "Problem",
    "Role",
    "Source",
    "Tier",
    "is_config_file",
    "load_best",
    "load_config",
    "unstructure",
    "user_config_file",
]
