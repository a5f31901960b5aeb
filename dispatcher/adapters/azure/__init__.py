"""Adapters to Azure services. Only this package imports the Azure SDKs."""
