"""Curation library (manifests, validation, balancing). Never imports ``app``."""
