"""Bayesian Gaussian mixtures in NumPyro: models, inference, relabelling and summaries."""
