"""Serving: the BentoML service (``bcistream.serving.service``), its typed client and the remote classifier.

Importing this package does not import BentoML; only ``bcistream.serving.service`` does.
"""

from bcistream.serving.client import Client, FilePrediction, Prediction, RemoteClassifier, ServingError
from bcistream.serving.holder import ModelHolder, parse_model_uri

__all__ = ["Client", "FilePrediction", "ModelHolder", "Prediction", "RemoteClassifier", "ServingError",
           "parse_model_uri"]
