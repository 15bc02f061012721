"""`launch.py models`: lists every registered network with its default input and classes."""

from __future__ import annotations

import models


def main(argv: list[str]) -> int:
    for name in models.names():
        s = models.spec(name)
        h, w, c = s.input_shape
        aliases = f"  (also: {', '.join(s.aliases)})" if s.aliases else ""
        print(f"{name:<28} {h}x{w}x{c}  {s.num_classes} classes{aliases}")
    return 0
