"""Protocol core: domain errors, each carrying its status once; REST and gRPC both map from STATUS_TABLE."""

from __future__ import annotations

import math
from typing import NamedTuple


class Status(NamedTuple):
    http: int
    grpc: str  # a grpc.StatusCode member name; the protocol layer does not import grpc


class ModelplaneError(Exception):
    """Base of every error the data plane reports to a client."""

    status: Status = Status(500, "INTERNAL")
    headers: dict[str, str] = {}  # sent with the error (REST headers, gRPC trailing metadata)

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ModelplaneError):
    status = Status(400, "INVALID_ARGUMENT")

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param  # the request field at fault, where one is (OpenAI's error `param`)


class ModelNotFound(ModelplaneError):
    status = Status(404, "NOT_FOUND")

    def __init__(self, name: str, version: str | None = None) -> None:
        if version:
            super().__init__(f"Model with name {name} and version {version} does not exist.")
        else:
            super().__init__(f"Model with name {name} does not exist.")


class ModelNotReady(ModelplaneError):
    status = Status(503, "UNAVAILABLE")

    def __init__(self, name: str, detail: str = "") -> None:
        msg = f"Model with name {name} is not ready."
        super().__init__(f"{msg} {detail}".strip())


class ServerNotReady(ModelplaneError):
    status = Status(503, "UNAVAILABLE")


class PayloadTooLarge(ModelplaneError):
    status = Status(413, "RESOURCE_EXHAUSTED")


class Overloaded(ModelplaneError):
    """The model's queue is full: retry later (Retry-After says when it is likely to have room)."""

    status = Status(429, "RESOURCE_EXHAUSTED")

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.headers = {"retry-after": str(max(1, math.ceil(retry_after_s)))}


class DeadlineExceeded(ModelplaneError):
    """The request's deadline passed, or would pass before the model could answer it."""

    status = Status(504, "DEADLINE_EXCEEDED")


class ClientGone(ModelplaneError):
    """The client went away while its request waited; nobody reads the answer (nginx's 499)."""

    status = Status(499, "CANCELLED")


class InferenceError(ModelplaneError):
    """The model itself failed while handling a well-formed request."""

    status = Status(500, "INTERNAL")


class NotImplementedByModel(ModelplaneError):
    status = Status(501, "UNIMPLEMENTED")


class ModelLoadError(ModelplaneError):
    status = Status(503, "UNAVAILABLE")


class Forbidden(ModelplaneError):
    """The server is configured not to allow this (e.g. repository load/unload with model control mode none)."""

    status = Status(403, "PERMISSION_DENIED")


class RouteNotFound(ModelplaneError):
    status = Status(404, "UNIMPLEMENTED")


class MethodNotAllowed(ModelplaneError):
    status = Status(405, "UNIMPLEMENTED")


# The one table: every error class and the status it carries. REST and gRPC adapters consult only this.
STATUS_TABLE: dict[type[ModelplaneError], Status] = {
    cls: cls.status
    for cls in (
        ModelplaneError,
        InvalidInput,
        ModelNotFound,
        ModelNotReady,
        ServerNotReady,
        PayloadTooLarge,
        Overloaded,
        DeadlineExceeded,
        ClientGone,
        InferenceError,
        NotImplementedByModel,
        ModelLoadError,
        Forbidden,
        RouteNotFound,
        MethodNotAllowed,
    )
}


def status_of(exc: BaseException) -> Status:
    """Status for any exception: domain errors carry theirs, anything else is an internal error."""
    if isinstance(exc, ModelplaneError):
        return exc.status
    return ModelplaneError.status
