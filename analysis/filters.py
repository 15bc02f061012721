"""The first layer's kernels as a picture grid (the lecture's AlexNet conv1 figure).

The first layer is the first convolution the forward pass runs (found by call order, so any
family works); its kernel is (kh, kw, C_in, C_out). Colour kernels are shown as RGB, each
min-max scaled on its own as Krizhevsky et al. did; grey ones share one diverging scale
centred on zero, so a weight's sign and size read the same in every tile.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from flax import nnx

from analysis import figures, taps


def first_conv(model: nnx.Module, image_shape: tuple[int, ...]) -> tuple[str, np.ndarray]:
    """(layer name, kernel (kh, kw, C_in, C_out)) of the first convolution that runs."""
    modules = {".".join(map(str, path)): m for path, m in nnx.iter_modules(model) if path}
    for name in taps.layers(model, image_shape):
        module = modules.get(taps.call_of(name)[0])
        kernel = getattr(module, "kernel", None)
        if isinstance(kernel, nnx.Param) and kernel.get_value().ndim == 4:
            return name, np.asarray(kernel.get_value())
    from errors import UserError
    raise UserError("this network has no convolution with a (kh, kw, C_in, C_out) kernel")


def filters_figure(kernel: np.ndarray, path: Path, *, title: str) -> Path:
    kh, kw, cin, cout = kernel.shape
    rows, cols = figures.grid_shape(cout, 16 if cout > 32 else 8)
    fig, axes = figures.figure(rows, cols, panel=0.9 if cout > 32 else 1.3, title=title)
    colour = cin == 3
    scale = float(np.abs(kernel).max()) or 1.0
    im = None
    for i in range(cout):
        ax = axes.flat[i]
        if colour:
            figures.show_image(ax, figures.to_unit(kernel[..., i]))
        else:  # grey (or many channels): the channels' mean, one signed scale for all tiles
            im = ax.imshow(kernel[..., i].mean(axis=-1), cmap="RdBu_r", vmin=-scale,
                           vmax=scale, interpolation="nearest")
            figures.off(ax)
        ax.set_title(str(i), fontsize=6)
    figures.hide_unused(axes, cout)
    if im is not None:
        cb = fig.colorbar(im, ax=axes, fraction=0.03, pad=0.02)
        cb.set_label("weight" + (f" (mean over {cin} input channels)" if cin > 1 else ""),
                     fontsize=7)
        cb.ax.tick_params(labelsize=6)
    return figures.save(fig, path)
