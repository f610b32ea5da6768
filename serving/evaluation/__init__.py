"""Post-deploy evaluation of a TGI endpoint: suite files, scoring, measurement, gates.
The entry point is serving/evaluate.py (`llmops evaluate`)."""
