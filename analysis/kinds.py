"""What `launch.py analyze KIND` does for each KIND: pick the image, layer and class from the
command line, run the analysis of analysis/KIND.py, draw its picture. Each returns
(path written, one line for the console)."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from analysis import cli, taps


def _probs(opened, image: np.ndarray) -> np.ndarray:
    forward = taps.pure(opened.model, lambda m, x: jax.nn.softmax(m(x), axis=-1))
    return np.asarray(forward(jnp.asarray(image)[None]))[0]


def _target(opened, args, image) -> tuple[int, str]:
    """(class to explain, a title fragment): --class, else the predicted one."""
    p = _probs(opened, image)
    c = int(np.argmax(p)) if args.class_id is None else args.class_id
    how = "predicted" if args.class_id is None else "asked"
    return c, f"class {opened.class_names[c]} ({how}, p={p[c]:.3f})"


def _head(opened) -> str:
    return f"{opened.config.model.name} ({opened.workdir.name}, step {opened.step})"


def filters(opened, args):
    from analysis import filters as f

    name, kernel = f.first_conv(opened.model, opened.image_shape)
    kh, kw, cin, cout = kernel.shape
    path = f.filters_figure(kernel, args.out, title=f"{_head(opened)}: first layer {name}, "
                            f"{cout} kernels of {kh}x{kw}x{cin}")
    return path, f"{cout} kernels of layer {name}"


def activations(opened, args):
    from analysis import activations as a

    image, what = cli.image_of(opened, args)
    layer = args.layer or taps.feature_maps(opened.model, opened.image_shape)[0]
    maps = a.feature_maps(opened.model, image, layer)
    path = a.activations_figure(image, maps, args.out, title=f"{_head(opened)}: layer {layer} "
                                f"{'x'.join(map(str, maps.shape))} (the module's output) on "
                                f"{what}, most active channels first")
    return path, f"layer {layer}: {maps.shape[-1]} channels of {maps.shape[0]}x{maps.shape[1]}"


def saliency(opened, args):
    from analysis import saliency as s

    image, what = cli.image_of(opened, args)
    c, about = _target(opened, args, image)
    ig = s.integrated_gradients(opened.model, image, c)
    maps = {"vanilla gradient": s.vanilla_gradient(opened.model, image, c),
            "SmoothGrad (50 x 15% noise)": s.smoothgrad(opened.model, image, c),
            "integrated gradients\n(black baseline, 64 steps)": ig}
    path = s.saliency_figure(image, maps, args.out, title=f"{_head(opened)}: saliency of the "
                             f"logit of {about}, {what}; |attribution|, max over channels")
    return path, f"saliency of class {c}; integrated gradients sum {ig.sum():.3f}"


def gradcam(opened, args):
    from analysis import gradcam as g

    image, what = cli.image_of(opened, args)
    c, about = _target(opened, args, image)
    coarse, fine, layer = g.gradcam(opened.model, image, c, args.layer)
    path = g.gradcam_figure(image, coarse, fine, args.out, layer=layer,
                            title=f"{_head(opened)}: Grad-CAM of {about}, {what}")
    return path, f"Grad-CAM of class {c} at {layer}"


def _relu_rule(opened, args, kind: str):
    from analysis import guided, saliency as s

    image, what = cli.image_of(opened, args)
    c, about = _target(opened, args, image)
    maps = {kind.replace("_", " "): guided.relu_rule_gradient(opened.model, image, c, kind),
            "plain gradient": s.vanilla_gradient(opened.model, image, c)}
    path = guided.relu_rules_figure(image, maps, args.out,
                                    title=f"{_head(opened)}: {kind} of {about}, {what}")
    return path, f"{kind} of class {c}"


def guided_backprop(opened, args):
    return _relu_rule(opened, args, "guided_backprop")


def deconvnet(opened, args):
    return _relu_rule(opened, args, "deconvnet")


def occlusion(opened, args):
    from analysis import occlusion as o

    image, what = cli.image_of(opened, args)
    c, about = _target(opened, args, image)
    size = max(2, image.shape[0] // 4)
    probs, logits = o.occlusion(opened.model, image, c, size=size, stride=1)
    logit = taps.pure(opened.model, lambda m, x: m(x)[0, c])(jnp.asarray(image)[None])
    clean = (float(_probs(opened, image)[c]), float(logit))
    path = o.occlusion_figure(image, probs, logits, clean, args.out,
                              title=f"{_head(opened)}: occlusion, {about}, {what}",
                              class_name=opened.class_names[c], size=size, stride=1)
    return path, f"occlusion of class {c}: lowest p {probs.min():.3f}, logit {logits.min():.2f}"


def top_patches(opened, args):
    from analysis import top_patches as t

    layer = args.layer or taps.feature_maps(opened.model, opened.image_shape)[-1]
    images, _ = opened.eval_set(args.eval)
    found = t.top_patches(opened.model, images, layer, args.channel)
    path = t.top_patches_figure(found, args.out, title=f"{_head(opened)}: the {len(found.patches)}"
                                f" eval patches that excite {layer} channel {found.channel} "
                                f"most (receptive field {found.field} px)")
    return path, f"{layer} channel {found.channel}: top activation {found.values[0]:.3f}"


def dream(opened, args):
    from analysis import dream as d

    image, what = cli.image_of(opened, args)
    layer = args.layer or taps.feature_maps(opened.model, opened.image_shape)[-1]
    taps.check_layer(opened.model, opened.image_shape, layer, taps.spatial,
                     "layer with a spatial feature map")
    dreamed, history = d.deepdream(opened.model, image, layer, steps=args.steps or 20)
    path = d.dream_figure(image, dreamed, history, args.out, layer=layer,
                          title=f"{_head(opened)}: DeepDream on {layer}, {what} "
                          f"({len(history)} octaves x {args.steps or 20} steps, jitter 2 px)")
    return path, f"DeepDream on {layer}: objective {history[0][1]:.4g} -> {history[-1][2]:.4g}"


def class_model(opened, args):
    from analysis import dream as d

    wanted = range(opened.info.num_classes) if args.class_id is None else [args.class_id]
    results = d.class_models(opened.model, opened.image_shape, list(wanted),
                             steps=args.steps or 200)
    names = [opened.class_names[c] for c in wanted]
    path = d.class_models_figure([r[0] for r in results], [r[1] for r in results], names,
                                 args.out, title=f"{_head(opened)}: class models (argmax of "
                                 "logit - 0.01 ||x||^2, from black)")
    return path, f"{len(results)} class model(s)"


def style(opened, args):
    from analysis import style as s

    content = opened.read_image(Path(args.input))
    style_image = opened.read_image(Path(args.style))
    content_layers, style_layers = s.default_layers(opened.model, opened.image_shape)
    if args.layer:
        content_layers = [args.layer]
    result, report = s.style_transfer(opened.model, content, style_image,
                                      content_layers=content_layers, style_layers=style_layers,
                                      steps=args.steps or 200)
    path = s.style_figure(content, style_image, result, report, args.out,
                          content_layers=content_layers, style_layers=style_layers,
                          title=f"{_head(opened)}: style transfer (Gatys et al., L-BFGS)")
    return path, (f"style loss {report['style_start']:.4g} -> {report['style_end']:.4g}, "
                  f"content loss {report['content_end']:.4g}")


def adversarial(opened, args):
    from analysis import adversarial as a

    images, labels = opened.eval_set(args.eval)
    epsilons = [0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3]
    table = a.accuracy_vs_epsilon(opened.model, images, labels, epsilons)
    print(a.format_table(epsilons, table))
    shown = [0.05, 0.1, 0.2]
    pgd = a.attacker(opened.model, "pgd")
    examples = {eps: (adv := pgd(images[:5], labels[:5], eps),
                      a.predictions(opened.model, adv)) for eps in shown}
    path = a.adversarial_figure(images[:5], labels[:5], examples, epsilons, table, args.out,
                                class_names=opened.class_names, n_eval=len(images),
                                title=f"{_head(opened)}: PGD examples (10 steps; red: fooled) "
                                "and accuracy against the L-inf budget")
    return path, f"clean accuracy {100 * table['pgd'][0]:.2f}% on {len(images)} eval images"


def equivariance(opened, args):
    from analysis import equivariance as e

    image, what = cli.image_of(opened, args)
    strides = e.sheet_strides(opened.model, opened.image_shape)
    rows, change = e.layer_distances(opened.model, image, args.shift, strides)
    curve = {k: e.layer_distances(opened.model, image, k, {})[1] for k in range(-4, 5)}
    for r in rows:
        print(f"  {r.layer:<16} stride {r.stride}: equivariance error "
              f"{r.equivariance_error:.4f}, invariance distance {r.invariance_distance:.4f}")
    path = e.equivariance_figure(rows, change, curve, args.out, k=args.shift, mode="zeros",
                                 title=f"{_head(opened)}: shifting {what} sideways")
    return path, f"shift {args.shift}: output change {change:.4f} (total variation)"
