"""Looking inside trained networks: functions a researcher imports, one file per analysis.

taps (any layer's output, by module path), filters, activations, saliency, gradcam, guided
(guided backprop and the deconvnet), occlusion, top_patches, dream (DeepDream, class models),
style (Gatys et al.), adversarial (FGSM, PGD), equivariance; the architecture sheet (sheet,
with jaxpr_walk, flop_rules and receptive_field). `launch.py analyze KIND --workdir RUN ...`
draws each of them for a trained run (cli.py, kinds.py, run.py, figures.py);
`launch.py summary` prints the sheet (summary_cli.py).
"""
