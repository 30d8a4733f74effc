"""Controllers: background workers that run core generators, and the training, prediction and project actions."""
