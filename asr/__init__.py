"""ASR library (audio, features, model, training, decoding). Never imports ``app``."""
