"""gencli: deep generative image models from one command line."""

__version__ = "0.1.0"
