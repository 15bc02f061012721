"""Image-to-image tasks: super-resolution, denoising and the (denoising) autoencoder.

Batch: `input` (the degraded image the network sees), `target` (the clean image) and, in
evaluation, `baseline` (what the network is compared with: bicubic upsampling for
super-resolution, the noisy input for denoising), all (B, H, W, C) float32. Degradations are
computed from the clean image on the fly (data/degrade.py): in training from the example's own
random stream, in evaluation from `example_rng(seed, index)`, so every evaluation is the same.

Channels (`task.channels`): `y`, the network sees the BT.601 luma of YCbCr (the SR papers;
colour is rebuilt at predict time with bicubic Cb, Cr); `grey`, images are made grey first;
`rgb`, the network sees colour. Training takes random `data.patch_size` patches, evaluation
whole images (batched by size). Metrics, on Y (a 1-channel image is its own Y) with `scale`
pixels shaved for super-resolution: `psnr`, `ssim` and the same of the baseline,
`psnr_baseline`, `ssim_baseline`. Loss (`task.loss`): mse (default) or l1.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from data import degrade, pipeline
from tasks import base, image_metrics, pictures

LOSSES = ("mse", "l1")
_forward = nnx.jit(lambda model, images: model(images))  # one trace cache for every predict call
CHANNELS = ("y", "grey", "rgb")


class ImageToImage(base.Task):
    """What the three tasks share; each says how it degrades and what its baseline is."""

    model_output = "image"
    default_metric, default_mode = "psnr", "max"
    default_channels = "y"
    border = 0               # pixels shaved before PSNR/SSIM
    baseline_name = "input"  # what the baseline column of samples.png shows

    def __init__(self, c, info: base.DataInfo):
        super().__init__(c, info)
        self.channels = c.task.channels or self.default_channels
        self.loss_name = c.task.loss or "mse"
        self.upscale = 1

    def check(self) -> None:
        self.require(self.loss_name in LOSSES, f"unknown task.loss {self.loss_name!r} for "
                     f"{self.name}; choose one of {', '.join(LOSSES)}")
        self.require(self.channels in CHANNELS, f"unknown task.channels {self.channels!r}; "
                     f"choose one of {', '.join(CHANNELS)}")
        self.require(self.channels != "rgb" or self.info.in_channels == 3,
                     f"task.channels=rgb needs colour images; {self.info.name!r} is grey "
                     "(use task.channels=grey)")
        self.require(self.c.data.patch_size >= 0, "data.patch_size must be >= 0")

    def has_baseline(self) -> bool:
        return True

    def metric_names(self) -> list[str]:
        names = ["loss", "psnr", "ssim"]
        return names + (["psnr_baseline", "ssim_baseline"] if self.has_baseline() else [])

    def model_kwargs(self) -> dict:
        return {"in_channels": 3 if self.channels == "rgb" else 1}

    def check_model(self, model_name: str, model) -> None:
        self.upscale = int(getattr(model, "upscale", 1))

    def eval_sizes_vary(self) -> bool:
        return True

    # --- host -------------------------------------------------------------------------------
    def to_channels(self, image: np.ndarray) -> np.ndarray:
        """HWC float in [0, 1] as the network sees it: grey, Y (of the image as colour) or RGB."""
        if self.channels == "grey":
            return image if image.shape[-1] == 1 else degrade.rgb_to_grey(image)
        rgb = image if image.shape[-1] == 3 else np.repeat(image, 3, axis=-1)
        return degrade.rgb_to_ycbcr(rgb)[..., :1] if self.channels == "y" else rgb

    def decode(self, record: dict) -> dict:
        return {"image": self.to_channels(np.asarray(record["image"], np.float32) / 255.0)}

    def patch(self, image: np.ndarray, rng: np.random.Generator, multiple: int = 1) -> np.ndarray:
        size = self.c.data.patch_size
        if not size:
            return degrade.mod_crop(image, multiple)
        h, w = image.shape[:2]
        if size > min(h, w):
            raise ValueError(f"data.patch_size {size} exceeds an image of {h}x{w}")
        top, left = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
        return image[top:top + size, left:left + size]

    def degrade(self, clean: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(network input, baseline) for a clean image."""
        raise NotImplementedError

    def train_example(self, example: dict, rng: np.random.Generator) -> dict:
        clean = self.patch(example["image"], rng, self.multiple())
        network_input, _ = self.degrade(clean, rng)
        return {"input": network_input, "target": clean}

    def eval_example(self, example: dict, index: int) -> dict:
        clean = degrade.mod_crop(example["image"], self.multiple())
        network_input, baseline = self.degrade(clean, degrade.example_rng(self.c.seed, index))
        return {"input": network_input, "target": clean, "baseline": baseline}

    def multiple(self) -> int:
        return 1

    # --- device -------------------------------------------------------------------------------
    def _per_example_loss(self, pred, target):
        diff = pred - target
        error = jnp.abs(diff) if self.loss_name == "l1" else diff * diff
        return jnp.mean(error, axis=(1, 2, 3))

    def loss(self, model, batch: dict, key: jax.Array):
        pred = model(batch["input"])
        per_example = self._per_example_loss(pred, batch["target"])
        return jnp.mean(per_example), {"pred": pred, "per_example": per_example}

    def eval_outputs(self, model, batch: dict):
        pred = model(batch["input"])
        return {"pred": pred, "per_example": self._per_example_loss(pred, batch["target"])}

    def metric_sums(self, outputs, batch: dict, mask: jax.Array) -> dict:
        weight = mask.astype(jnp.float32)
        target, quality = batch["target"], dict(border=self.border, y_channel=True)
        sums = {"loss": jnp.sum(outputs["per_example"] * weight), "count": jnp.sum(weight),
                "psnr": image_metrics.psnr_sums(outputs["pred"], target, mask, **quality)[0]}
        if "baseline" in batch:  # evaluation: SSIM and the baseline too
            sums["ssim"] = image_metrics.ssim_sums(outputs["pred"], target, mask, **quality)[0]
            if self.has_baseline():
                baseline = batch["baseline"]
                sums["psnr_baseline"] = image_metrics.psnr_sums(baseline, target, mask,
                                                                **quality)[0]
                sums["ssim_baseline"] = image_metrics.ssim_sums(baseline, target, mask,
                                                                **quality)[0]
        return sums

    # --- pictures and predictions ---------------------------------------------------------------
    def samples_figure(self, batch: dict, outputs, path: Path) -> None:
        pred = np.asarray(outputs["pred"])
        columns = [np.asarray(batch["baseline"]), np.asarray(batch["target"]), pred]
        names = [self.baseline_name, "target", "prediction"]
        titles = [f"example {i}" for i in range(len(pred))]
        pictures.image_grid(columns, titles, path, column_names=names,
                            title=f"{self.name}: {pictures.short_name(self.info.name)}, "
                                  f"{self.channels} channel(s)")

    def restore(self, model, image: np.ndarray) -> np.ndarray:
        """A whole image (HWC float in [0, 1], the network's channels) through the network."""
        return np.asarray(_forward(model, jnp.asarray(image[None])))[0]

    def predict(self, model, paths: list[Path], out: Path) -> list[Path]:
        from data import image_files

        written = []
        for path in paths:
            image = image_files.read(path).astype(np.float32) / 255.0
            result = self.predict_one(model, image)
            image_files.save_png(image_files.to_uint8(result), out / f"{path.stem}.png")
            written.append(out / f"{path.stem}.png")
        return written

    def predict_one(self, model, image: np.ndarray) -> np.ndarray:
        """The restored image, in the input's colour when the network works on Y (its Cb and
        Cr kept, resized bicubically where the network changes the size), else in the
        network's channels."""
        if self.channels != "y":
            return np.clip(self.restore(model, self.to_channels(image)), 0, 1)
        ycbcr = degrade.rgb_to_ycbcr(image if image.shape[-1] == 3 else np.repeat(image, 3, -1))
        y = np.clip(self.restore(model, ycbcr[..., :1]), 0, 1)
        chroma = ycbcr[..., 1:]
        if chroma.shape[:2] != y.shape[:2]:
            chroma = degrade.bicubic_resize(chroma, y.shape[:2])
        rgb = np.clip(degrade.ycbcr_to_rgb(np.concatenate([y, chroma], -1)), 0, 1)
        return rgb if image.shape[-1] == 3 else rgb[..., :1]


class SuperResolution(ImageToImage):
    """Single-image super-resolution by `task.scale` (SRCNN, ESPCN). The low-resolution image is
    the clean one downscaled by antialiased bicubic (data/degrade.py says how it differs from
    MATLAB's imresize, which the papers used). A network with `upscale` 1 (SRCNN) sees the
    bicubic-upsampled image, one with `upscale` = scale (ESPCN) the low-resolution one."""

    name = "super_resolution"
    baseline_name = "bicubic"

    @property
    def border(self) -> int:
        return self.c.task.scale

    def multiple(self) -> int:
        return self.c.task.scale

    def check(self) -> None:
        super().check()
        scale, patch = self.c.task.scale, self.c.data.patch_size
        self.require(scale >= 2, f"task.scale must be >= 2, got {scale}")
        self.require(patch % scale == 0, f"data.patch_size {patch} must be a multiple of "
                     f"task.scale {scale}, so a patch downscales to whole pixels")

    def check_model(self, model_name: str, model) -> None:
        super().check_model(model_name, model)
        scale = self.c.task.scale
        self.require(self.upscale in (1, scale),
                     f"model {model_name!r} upscales x{self.upscale} but task.scale is {scale}; "
                     f"set --config.model.scale={scale} or --config.task.scale={self.upscale}")

    def degrade(self, clean, rng):
        scale = self.c.task.scale
        low = np.clip(degrade.downscale(clean, scale), 0, 1)
        bicubic = degrade.upscale_bicubic(low, scale)
        return (bicubic if self.upscale == 1 else low), bicubic

    def restore(self, model, image):
        scale = self.c.task.scale
        if self.upscale == 1:
            image = degrade.upscale_bicubic(image, scale)
        return super().restore(model, image)

class Denoising(ImageToImage):
    """Additive white Gaussian noise of `task.sigma` (0-255 units), not clipped (DnCNN)."""

    name = "denoising"
    default_channels = "grey"
    baseline_name = "noisy"

    def check(self) -> None:
        super().check()
        self.require(self.c.task.sigma > 0, f"task.sigma must be > 0, got {self.c.task.sigma}")

    def degrade(self, clean, rng):
        noisy = degrade.add_gaussian_noise(clean, self.c.task.sigma, rng).astype(np.float32)
        return noisy, noisy


class Autoencoder(ImageToImage):
    """Reconstruct the input; with `task.corruption` (gaussian: `task.sigma`, masking:
    `task.masking_fraction` of the pixels zeroed) it is the denoising autoencoder of Vincent
    et al. 2008: the corrupted image in, the clean one out. Images are resized to
    `data.image_size` and padded by `data.pad`, as for a classifier."""

    name = "autoencoder"
    default_channels = "grey"
    baseline_name = "input"
    CORRUPTIONS = ("none", "gaussian", "masking")

    def check(self) -> None:
        super().check()
        kind = self.c.task.corruption
        self.require(kind in self.CORRUPTIONS, f"unknown task.corruption {kind!r}; choose one "
                     f"of {', '.join(self.CORRUPTIONS)}")

    def has_baseline(self) -> bool:
        return self.c.task.corruption != "none"

    def eval_sizes_vary(self) -> bool:
        return False

    def decode(self, record: dict) -> dict:
        resized = pipeline.decode({"image": record["image"], "label": 0},
                                  self.c.data.image_size, self.c.data.pad)["image"]
        return {"image": self.to_channels(resized)}

    def degrade(self, clean, rng):
        kind, t = self.c.task.corruption, self.c.task
        if kind == "gaussian":
            corrupted = degrade.add_gaussian_noise(clean, t.sigma, rng)
        elif kind == "masking":
            corrupted = degrade.masking_noise(clean, t.masking_fraction, rng)
        else:
            corrupted = clean
        corrupted = np.asarray(corrupted, np.float32)
        return corrupted, corrupted

    def predict_one(self, model, image):
        """Reconstructed at the run's input size (`data.image_size` + `data.pad`), then resized
        back to the input's."""
        from data import image_files

        resized = self.decode({"image": image_files.to_uint8(image)})["image"]
        restored = np.clip(self.restore(model, resized), 0, 1)
        return degrade.bicubic_resize(restored, image.shape[:2]).clip(0, 1)
