"""Package definition for the candidate-generation pipeline.

The same package runs in four places: the local pipeline, Spark executors
(shipped with --py-files), Beam workers that import the custom TFMA metric,
and the pipeline container on Vertex AI. Exact dependency versions live in
requirements.lock; the ranges here are what the code is tested against.
"""

import setuptools

setuptools.setup(
    name="youtube-candidate-generation",
    version="0.1.0",
    description=(
        "TFX pipeline for YouTube-style candidate generation from a ratings log"
    ),
    python_requires=">=3.9,<3.11",
    packages=setuptools.find_packages(
        include=[
            "spark",
            "spark.*",
            "transform",
            "transform.*",
            "trainer",
            "trainer.*",
            "pipeline",
            "pipeline.*",
            "schemas",
            "schemas.*",
            "cloud",
            "cloud.*",
            "evaluation",
            "evaluation.*",
            "baselines",
            "baselines.*",
        ]
    ),
    package_data={"schemas": ["*.pbtxt"]},
    install_requires=[
        "tfx[kfp]==1.16.0",
        "tensorflow>=2.16,<2.17",
        "tf-keras>=2.16,<2.17",
        "tensorflow-transform==1.16.0",
        "tensorflow-model-analysis==0.47.1",
        "apache-beam[gcp]==2.59.0",
        "pyspark>=3.5,<3.6",
        "google-cloud-storage>=2.10",
        "google-cloud-dataproc>=5",
        "gcsfs",
        "matplotlib",
        "psutil",
    ],
)
