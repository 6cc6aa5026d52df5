"""Real servers for robostore's remote backends, each on 127.0.0.1 (test infrastructure).

``backends.s3`` runs moto in server mode, ``backends.gcs`` runs fake-gcs-server, and
``backends.hf`` is a protocol-level emulator of the Hugging Face Hub HTTP API. Each one
starts with one command (``python -m backends.s3`` from the repository root) and as a
pytest fixture (:mod:`backends.pytest_plugin`). This folder is not part of the installed
``robostore`` package.
"""
