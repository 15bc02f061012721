"""Train-state bytes per device under each mesh: data parallel (replicated), FSDP, and tensor
parallel for the large dense layers, for one network, on eight devices (fake CPU devices here,
so the figure is the state's placement, not a peak measured by an accelerator's allocator).

    uv run python -m benchmarks.fsdp_memory [--model alexnet_one_tower] [--json OUT]

Measured (8 fake CPU devices, SGD with momentum: parameters + one moment):
    alexnet_one_tower, 488.8 MB of state (benchmarks/results/fsdp_memory_alexnet_cpu8.json):
      data=8                          488.8 MB per device
      data=1 x fsdp=8                  61.2 MB per device  (1/8.0)
      data=4 x model=2                270.7 MB per device  (1/1.8: fc6 and fc7 are 89% of it)
      data=2 x fsdp=2 x model=2       135.4 MB per device  (1/3.6)
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

MESHES = ({"data": 8}, {"data": 1, "fsdp": 8}, {"data": 4, "model": 2}, {"data": 2, "fsdp": 2,
                                                                          "model": 2})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="alexnet_one_tower")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import jax
    import optax

    import models
    from training import mesh as mesh_lib, sharding, state as state_lib

    _, state = state_lib.create(models.create(args.model), optax.sgd(0.01, momentum=0.9), 0)
    total = sum(x.nbytes for x in jax.tree.leaves(state))
    rows = []
    for sizes in MESHES:
        held = sharding.bytes_per_device(mesh_lib.put_state(state, mesh_lib.make_mesh(sizes)))
        rows.append({"mesh": sizes, "max_bytes_per_device": max(held.values())})
        print(f"{str(sizes):40s} {max(held.values()) / 1e6:8.1f} MB per device "
              f"(1/{total / max(held.values()):.1f} of {total / 1e6:.1f} MB)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "state_bytes": total,
                       "params": state_lib.count_params(state.params), "meshes": rows}, f,
                      indent=2)


if __name__ == "__main__":
    main()
