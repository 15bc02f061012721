"""Train-state bytes per device under each mesh: data parallel (replicated), FSDP, and tensor
parallel for the large dense layers, for one network, on eight devices (fake CPU devices here,
so the figures are the state's placement and XLA's own accounting, not a peak measured by an
accelerator's allocator).

The state is created as training creates it (training/sharded_init.py): the network is built
inside one jitted initialisation whose outputs are placed by the sharding rules, so the whole
state is never materialised on one device. For each mesh the benchmark reports the bytes each
device holds once the state is created, and XLA's memory analysis of that compiled
initialisation: its output bytes per device (the state's shards) and its temporary bytes per
device (the peak of the initialisation beyond its output). The whole state's size comes from its
abstract shapes; nothing is built eagerly.

    uv run python -m benchmarks.fsdp_memory [--model alexnet_one_tower] [--json OUT]

Measured (8 fake CPU devices on 2 cores, SGD with momentum: parameters + one moment; 45 s for
the four meshes, compilation included):
    alexnet_one_tower, 488.8 MB of state (benchmarks/results/fsdp_memory_alexnet_cpu8.json):
                                held per device     initialisation's temporaries per device
      data=8                          488.8 MB        639.7 MB
      data=1 x fsdp=8                  61.2 MB (1/8.0)  80.0 MB
      data=4 x model=2                270.7 MB (1/1.8) 346.1 MB  (fc6 and fc7 are 89% of it)
      data=2 x fsdp=2 x model=2       135.4 MB (1/3.6) 173.1 MB
    The held bytes equal the compiled initialisation's output bytes per device, and its
    temporaries (the random bits drawn before they become weights) shrink with the shards too:
    under fsdp=8 no device ever holds more than 141 MB of the 489 MB state.
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
    import numpy as np
    import optax

    import models
    from training import mesh as mesh_lib, sharded_init, sharding, state as state_lib

    tx = optax.sgd(0.01, momentum=0.9)
    build = lambda: state_lib.create(models.create(args.model), tx, 0)
    _, shapes = sharded_init.abstract(build)
    total = sum(int(np.prod(x.shape)) * x.dtype.itemsize for x in jax.tree.leaves(shapes))
    params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes.params))
    rows = []
    for sizes in MESHES:
        _, init = sharded_init.init_fn(build, mesh_lib.make_mesh(sizes))
        memory = init.lower().compile().memory_analysis()
        held = max(sharding.bytes_per_device(init()).values())
        row = {"mesh": sizes, "max_bytes_per_device": held}
        if memory is not None:
            row.update(init_output_bytes_per_device=memory.output_size_in_bytes,
                       init_temp_bytes_per_device=memory.temp_size_in_bytes)
        rows.append(row)
        print(f"{str(sizes):40s} {held / 1e6:8.1f} MB per device (1/{total / held:.1f} of "
              f"{total / 1e6:.1f} MB)" + ("" if memory is None else
                                         f"; init output {memory.output_size_in_bytes / 1e6:.1f}"
                                         f" MB, temporaries {memory.temp_size_in_bytes / 1e6:.1f}"
                                         " MB per device"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "state_bytes": total, "params": params,
                       "measures": "train-state bytes each device holds once the state is "
                                   "created sharded (training/sharded_init.py), and XLA's memory "
                                   "analysis of that compiled initialisation per device",
                       "devices": jax.device_count(), "platform": jax.devices()[0].platform,
                       "meshes": rows}, f, indent=2)


if __name__ == "__main__":
    main()
