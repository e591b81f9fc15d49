"""Errors the user sees. Each names the thing that is wrong (file, URI, record) and why."""


class AmeliError(Exception):
    """Base class: anything raised on purpose by ameli-ray."""


class ConfigError(AmeliError):
    pass


class StorageError(AmeliError):
    pass


class StorageUnreachable(StorageError):
    pass


class ObjectNotFound(StorageError):
    pass


class ChecksumMismatch(StorageError):
    pass


class InputFormatError(AmeliError):
    """A data file does not hold what its format promises (bad JSON, missing fields, wrong types)."""


class ImageDecodeError(AmeliError):
    """An image could not be used: unreadable, corrupt, too large, or missing."""


class ModelLoadError(AmeliError):
    pass
