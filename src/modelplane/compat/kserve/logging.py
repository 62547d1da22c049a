"""Compatibility: `kserve.logging.configure_logging` — a logging config file (YAML or JSON dictConfig, or an INI
fileConfig), else a plain format at INFO."""

from __future__ import annotations

import logging
import logging.config
from pathlib import Path

logger = logging.getLogger("kserve")


def configure_logging(log_config: str | dict | None = None) -> None:
    if isinstance(log_config, dict):
        logging.config.dictConfig(log_config)
    elif log_config:
        path = Path(log_config)
        if path.suffix in (".yaml", ".yml", ".json"):
            import yaml

            logging.config.dictConfig(yaml.safe_load(path.read_text()))
        else:
            logging.config.fileConfig(path, disable_existing_loggers=False)
    else:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
