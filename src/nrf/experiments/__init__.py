"""The paper's experiments: the few-image cell and everything built on it."""
