"""charjax's shipped configs, installed as the package `charjax_configs`.

Each module's `get_config()` returns a whole config; `default` holds the schema. Run one by
name (`charjax train --config default`) or by path (`--config configs/default.py`).
"""
