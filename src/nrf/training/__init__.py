"""Training: the one loop, the encoder registry, and the Universal encoder's training."""
