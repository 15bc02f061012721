"""Training: config, optimizer, train state and step, mesh, checkpoints, run record, loop."""
