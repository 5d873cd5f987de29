"""Runner file for the TFX CLI's Vertex AI engine.

    export CANDIDATE_GENERATION_VERTEX_FLAGS="--project PROJECT \\
        --region REGION --image IMAGE --pipeline-root gs://BUCKET/root \\
        --examples-dir gs://BUCKET/examples/run1 \\
        --serving-root gs://BUCKET/serving"
    tfx pipeline create --engine vertex --pipeline_path vertex_runner.py
    tfx run create --engine vertex --pipeline_name candidate-generation \\
        --project PROJECT --region REGION

The TFX CLI runs this file without command-line arguments, so the options
of `python -m pipeline.vertex_runner` come from the environment variable
CANDIDATE_GENERATION_VERTEX_FLAGS, and the JSON configuration from its
`--config` option. The CLI stores the compiled pipeline as
`$HOME/tfx/vertex/PIPELINE_NAME/pipeline.json` (or below `$VERTEX_HOME`) in
place of `--output`, and `tfx run create` submits that file.
"""

import os
import shlex
import sys

from pipeline import vertex_runner

FLAGS_ENV = "CANDIDATE_GENERATION_VERTEX_FLAGS"


if __name__ == "__main__":
  flags = shlex.split(os.environ.get(FLAGS_ENV, ""))
  if "--submit" in flags:
    sys.exit(f"Remove --submit from {FLAGS_ENV}: with the TFX CLI, "
             "`tfx run create --engine vertex` submits the pipeline.")
  sys.exit(vertex_runner.main(flags + sys.argv[1:]))
