"""Stage 1: the competition on disk (layouts, images, decode cache, duplicates, folds). Never imports torch."""
