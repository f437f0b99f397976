"""Data collection, transition buffers, training loops and checkpoints."""
