"""The mathematics of a VAE: posteriors, likelihoods, networks, the model, objectives, priors
and what one does with a trained model (sampling). No files, no training loop, no CLI."""
