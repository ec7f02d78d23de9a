"""Stage 3: calibration, ensembles compared on OOF logits by nested CV, and the submission. Never imports torch."""
