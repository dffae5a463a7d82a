"""bcistream: real-time motor-imagery EEG decoding with online retraining."""

__version__ = "0.1.0"
