"""Stage 2: training one fold or the full retrain (timm models, the Trainer, its inputs, checkpoints, DDP)."""
