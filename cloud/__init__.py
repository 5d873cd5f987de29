"""Google Cloud support: Cloud Storage I/O and Spark job submission to Dataproc.

`cloud.paths` lets the rest of the project accept `gs://` URIs wherever it
accepts local paths, `cloud.storage` moves ratings files, run artefacts and
pushed models between local disk and Cloud Storage, and `cloud.dataproc`
builds and submits the Spark example job (`python -m cloud.dataproc --help`).
"""
