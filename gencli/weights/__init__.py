"""Published weights converted into gencli checkpoints, and exports."""
