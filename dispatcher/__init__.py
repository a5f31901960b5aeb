"""A serverless job dispatcher for Azure Container Instances."""

__version__ = "0.1.0"
