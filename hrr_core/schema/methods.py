"""Which config dataclass validates ``methods.<m>.model`` for each registered method.

The one map from a method's registry name (``kind``, or the ``baseline`` name when ``kind`` is
``baseline``) to its config class, as ``module:Class`` paths so that loading ``params.yaml``
imports only the config modules. Everything else a method is (how it is built, trained and
scored) lives in its registry entry, ``hrr_core/methods/<name>.py``; a test checks both agree.
"""

from __future__ import annotations

import importlib

METHOD_CONFIGS: dict[str, str] = {
    "classifier": "hrr_core.schema.models:ClassifierConfig",
    "hrr": "hrr_core.schema.models:HRRConfig",
    "cnnspot": "hrr_core.schema.baselines:CNNSpotConfig",
    "npr": "hrr_core.schema.baselines:NPRConfig",
    "dire": "hrr_core.schema.baselines:DIREConfig",
    "univfd": "hrr_core.schema.baselines:UnivFDConfig",
    "aeroblade": "hrr_core.schema.baselines:AEROBLADEConfig",
    "spectrum_lr": "hrr_core.schema.baselines:SpectrumLRConfig",
    "safe": "hrr_core.schema.baselines:SAFEConfig",
    "bsf": "hrr_core.schema.baselines:BSFConfig",
    "freqnet": "hrr_core.schema.baselines:FreqNetConfig",
    "ferretnet": "hrr_core.schema.baselines:FerretNetConfig",
    "selfdesc": "hrr_core.schema.baselines:SelfDescConfig",
}


def method_config_class(name: str) -> type:
    """The config dataclass of registered method ``name``."""
    if name not in METHOD_CONFIGS:
        raise ValueError(f"unknown method kind {name!r}; registered: {', '.join(sorted(METHOD_CONFIGS))}")
    module, cls = METHOD_CONFIGS[name].split(":")
    return getattr(importlib.import_module(module), cls)
