"""foldwise: k-fold image classification for Kaggle-style competitions."""

__version__ = "0.1.0"
