"""The networks of every family: a config dataclass, its modules and build(config); nothing else."""
