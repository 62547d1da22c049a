"""Runtimes: the contract every file-backed framework runtime implements (find file, load, predict)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from modelplane.model.base import Headers, Model
from modelplane.model.payload import predict_input, predict_response
from modelplane.protocol.errors import InferenceError, InvalidInput, ModelLoadError, ModelNotReady


class FileModel(Model):
    """A model loaded from exactly one file with one of `extensions` in `model_dir` (or `model_dir` itself)."""

    extensions: tuple[str, ...] = ()
    pickle_sized: bool = False  # memory_bytes() is the loaded object's pickled size (for plain Python/numpy models)

    def __init__(self, name: str, model_dir: str | Path, options: dict[str, Any] | None = None) -> None:
        super().__init__(name)
        self.model_dir = Path(model_dir)
        self.options = options or {}
        self.model: Any = None
        self._bytes: int | None = None

    def model_file(self) -> Path:
        if self.model_dir.is_file():
            return self.model_dir
        if not self.model_dir.is_dir():
            raise ModelLoadError(f"model directory {self.model_dir} does not exist")
        found = sorted(p for p in self.model_dir.iterdir() if p.is_file() and p.suffix in self.extensions)
        if not found:
            raise ModelLoadError(f"no model file ({', '.join(self.extensions)}) found in {self.model_dir}")
        if len(found) > 1:
            raise ModelLoadError(f"More than one model file is detected in {self.model_dir}: {[p.name for p in found]}")
        return found[0]

    def load(self) -> bool:
        self.model = self.load_file(self.model_file())
        self._bytes = pickled_size(self.model) if self.pickle_sized else None
        self.ready = True
        return True

    def unload(self) -> None:
        self.model = None
        self.ready = False

    def memory_bytes(self) -> int | None:
        return self._bytes

    def load_file(self, path: Path) -> Any:
        raise NotImplementedError

    def run(self, model: Any, inputs: Any) -> Any:
        """Predict with `model` (the loaded object this request started with, never None)."""
        raise NotImplementedError

    def check(self, model: Any, inputs: Any) -> None:
        """Refuse inputs the model can tell are wrong before running it (InvalidInput); optional."""

    def predict(self, payload: Any, headers: Headers | None = None) -> Any:
        if isinstance(payload, (bytes, bytearray)):
            raise InvalidInput(
                "the request body was not sent as JSON: send it with the header Content-Type: application/json "
                "(curl: -H 'Content-Type: application/json')"
            )
        model = self.model  # one reference for the whole request: an unload meanwhile cannot pull it away
        if model is None:
            raise ModelNotReady(self.name, "it was unloaded")
        inputs = predict_input(payload)
        self.check(model, inputs)
        try:
            result = self.run(model, inputs)
        except InvalidInput:
            raise
        except (ValueError, TypeError) as exc:  # the frameworks' own input validation (NaN, strings, shapes)
            raise InvalidInput(f"the model refused the input: {type(exc).__name__}: {exc}") from exc
        except Exception as exc:
            raise InferenceError(f"{type(exc).__name__}: {exc}") from exc
        return predict_response(payload, result, self.name)


class _Counter:
    """A write-only file that counts what is written to it."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0

    def write(self, data: bytes) -> int:
        self.n += len(data)
        return len(data)


def pickled_size(obj: Any) -> int | None:
    """The bytes of `obj` pickled (protocol 5), its array buffers counted out of band, never copied: close to what
    a numpy-backed model (scikit-learn, an XGBoost or LightGBM booster) holds. None when it does not pickle."""
    counter = _Counter()

    def buffer(view: pickle.PickleBuffer) -> None:
        counter.n += view.raw().nbytes

    try:
        pickle.dump(obj, counter, protocol=5, buffer_callback=buffer)
    except Exception:  # an object that refuses pickling: the cache keeps its size on disk
        return None
    return counter.n
