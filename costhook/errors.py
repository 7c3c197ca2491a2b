"""The errors costhook raises across its own module boundaries. Each message is for
humans: the CLI prints it as it is, a hook logs it in one line."""


class ConfigError(ValueError):
    """The config file is unreadable or invalid; the message names the key."""


class PriceConfigError(ValueError):
    """A price override in the config is invalid."""


class StoreError(Exception):
    """The database cannot be used (corrupt, wrong file, newer schema)."""


class NoDatabase(StoreError):
    """There is no database file where a read-only command was told to look."""


class UpgradePending(StoreError):
    """An existing database needs schema steps; the caller chose not to wait for them."""


class ImportStopped(Exception):
    """An import could not go on (one of its worker processes ended abruptly); what it had
    written stays consistent, and running it again goes on."""


class InstallError(Exception):
    """An agent's settings cannot be read or written safely; nothing was changed."""


class BadPayload(ValueError):
    """A hook's stdin is not the JSON object an agent sends."""


class DashboardError(Exception):
    """The dashboard note cannot be written."""


class TeamError(Exception):
    """The team server cannot be used (unreachable, refused, newer schema); one line, no password."""
