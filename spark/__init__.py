"""Spark stage: turn a ratings CSV into TFRecord shards for TFX ImportExampleGen.

`spark.job.run_job` is the Python entry point and `spark/make_examples.py` the
`spark-submit` entry point. The feature contract of the output is defined in
`schemas.features`.
"""
