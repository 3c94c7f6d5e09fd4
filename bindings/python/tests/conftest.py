"""Lets `pytest bindings/python/tests` import the `lathe` package from this checkout when it is not installed."""

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("lathe") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
