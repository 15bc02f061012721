"""Published weights brought into convjax's networks: one module per source (torchvision.py),
each a table of the networks it publishes and the name mapping of their tensors."""
