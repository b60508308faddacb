"""The application layer: appending commands, the executor that runs them, observations, settings."""
