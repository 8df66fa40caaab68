"""CLI commands of the stylegan family (registered on the apps of gencli.cli)."""
