"""Measuring models: compute-only functions over a model and tensors.

likelihood       -ELBO, IWAE NLL, bits/dim              latent   active units, KL, collapse
reconstruction   MSE, PSNR, SSIM                        sample_quality  FD, class confidence
precision_recall k-NN manifold precision and recall     sharpness  Laplacian energy ratio
evaluate         all of it for one split, and as rows   classifier  the FD's feature classifier
scores           per-example anomaly scores             ood      AUROC, AUPRC, FPR95, thresholds
"""
