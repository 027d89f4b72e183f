"""The evaluation-counting loop every optimisation method shares (:mod:`.loop`: budget, best-so-far, stop,
divergence, checkpoints) and its checkpoint files (:mod:`.checkpoint`)."""
