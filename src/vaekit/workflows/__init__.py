"""What users do with runs, built from the layers below: evaluate, compare, report, sweep,
fit a prior, anomaly scores and the background model, denoising, compression. Each module is one workflow;
html and pictures are the pieces the pages share."""
