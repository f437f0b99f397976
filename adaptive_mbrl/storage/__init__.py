"""Files on disk: atomic writes, checkpoints, and run folders (the bottom layer: imports no other package
module, so every layer above may write files the same way)."""
