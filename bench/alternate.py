"""Configurations measured in alternating rounds on one stack (``bench.web_configs``, ``bench.warm_configs``): a
slow minute of the shared machine falls on every configuration alike."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.stack import Stack

# One measurement: the stack (its env set to the configuration), the round and the configuration's index, and
# what ``setup`` returned; a line of text to print.
Measure = Callable[[Stack, int, int, Any], str]


def alternate(
    configs: list[dict[str, str]], rounds: int, measure: Measure, *, setup: Callable[[Stack], Any] | None = None
) -> None:
    root = Path(tempfile.mkdtemp(prefix="velocity-configs-"))
    stack = Stack(root).prepare()
    try:
        import django

        django.setup()
        context = setup(stack) if setup is not None else None
        base_env = dict(stack.env)
        for number in range(1, rounds + 1):
            for index, config in enumerate(configs):
                stack.env = {**base_env, **config}
                print(f"round {number} {json.dumps(config)}: {measure(stack, number, index, context)}", flush=True)
    finally:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)
