"""Dataset readers for the papers' experiments: image classification (vision.py) and commonsense reasoning."""
