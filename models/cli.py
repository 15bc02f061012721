"""`launch.py models`: lists every registered network with its default input, its classes and
what it outputs (class_logits, pixel_logits or image)."""

from __future__ import annotations

import models


def main(argv: list[str]) -> int:
    for name in models.names():
        s = models.spec(name)
        shape = "x".join(map(str, s.input_shape))
        classes = "-" if s.num_classes is None else f"{s.num_classes} classes"
        aliases = f"  (also: {', '.join(s.aliases)})" if s.aliases else ""
        print(f"{name:<28} {shape:<11} {classes:<12} {s.output:<12}{aliases}".rstrip())
    return 0
