"""Local emulators of the Azure services the dispatcher uses, speaking the same wire protocols."""
