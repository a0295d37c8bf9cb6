"""Errors a user can cause. The CLI prints their message as one sentence and exits non-zero."""


class VaekitError(Exception):
    """A problem with the user's input (data, options, run folder), not a bug in vaekit."""


class DataError(VaekitError):
    """The data cannot be read or does not suit the model."""


class RunFolderError(VaekitError):
    """A run folder is missing, incomplete, damaged, or from somewhere else."""


def not_a_run(path, what: str) -> RunFolderError:
    """The one wording for a damaged or foreign run folder: "<path> is not a vaekit run: <what>"."""
    return RunFolderError(f"{path} is not a vaekit run: {what}")


class TrainingDiverged(VaekitError):
    """Training kept producing non-finite losses or gradients."""
