class GencliError(Exception):
    """A user-facing error: the CLI prints its message on one line and exits non-zero."""


class OptionError(GencliError):
    """A bad option value or an unusable combination of options: a usage error (exit code 2 on the command
    line, as for an unknown option). The message names the option."""


class ConfigError(GencliError):
    """A config field with a bad value. Network code names the field; the library face (gencli.api), which
    knows which option set it, re-raises it naming the option (`as_option`)."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field} {problem}")
        self.field, self.problem = field, problem

    def as_option(self) -> OptionError:
        return OptionError(f"--{self.field.replace('_', '-')} {self.problem}")


class NothingToDo(GencliError):
    """The command has nothing left to do (e.g. `--resume` of a run already trained that far): the CLI
    prints the message and exits 0, having changed nothing."""
