"""CLI commands of the cyclegan family (registered on the apps of gencli.cli)."""
