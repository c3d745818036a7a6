"""The churn model registry: one immutable lake folder per version, with its manifest.

``<lake>/models/churn/v<N>/`` holds ``model.pkl`` (the pickled model), ``manifest.json``
(version, creation time, training window and snapshot dates, horizon, feature list, metrics,
the model file's SHA-256 and the library versions) and the report's charts. A folder is written
aside and renamed into place (:meth:`c360.lake.Lake.write_folder`), so a version is complete or
absent. Loading checks the SHA-256 before unpickling: the lake is trusted storage, and a file
changed after registration is refused rather than run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import pickle
import re
from collections.abc import Mapping
from typing import Any

import sklearn

from c360.batch.churn.model import ChurnModel
from c360.errors import DataError, NotFoundError
from c360.lake import Lake

FOLDER = "models/churn"
_VERSION = re.compile(r"v(\d+)")


def dump_model(model: ChurnModel) -> bytes:
    return pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)


def versions(lake: Lake) -> list[str]:
    """Registered versions, oldest first."""
    found = [name for name in lake.folders(FOLDER) if _VERSION.fullmatch(name)]
    return sorted(found, key=lambda name: int(name[1:]))


def register(lake: Lake, report: Mapping[str, Any], files: Mapping[str, bytes]) -> tuple[str, str]:
    """Write the next version with ``files`` and a manifest made of ``report``."""
    known = versions(lake)
    version = f"v{int(known[-1][1:]) + 1 if known else 1}"
    manifest = {
        **report,
        "version": version,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "model_sha256": hashlib.sha256(files["model.pkl"]).hexdigest(),
        "sklearn_version": sklearn.__version__,
    }
    payload = {**files, "manifest.json": json.dumps(manifest, indent=2).encode()}
    return version, lake.write_folder(f"{FOLDER}/{version}", payload)


def manifest(lake: Lake, version: str) -> dict[str, Any]:
    text = lake.read_file(f"{FOLDER}/{version}/manifest.json")
    if text is None:
        known = ", ".join(versions(lake)) or "none"
        raise NotFoundError(f"churn model {version} is not registered (registered: {known})")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def load(lake: Lake, version: str | None = None) -> tuple[dict[str, Any], ChurnModel]:
    """A registered model and its manifest: ``version``, else the newest."""
    if version is None:
        known = versions(lake)
        if not known:
            raise NotFoundError("no churn model is registered: train one (c360 train churn)")
        version = known[-1]
    meta = manifest(lake, version)
    data = lake.read_file(f"{FOLDER}/{version}/model.pkl")
    if data is None or hashlib.sha256(data).hexdigest() != meta["model_sha256"]:
        raise DataError(
            f"churn model {version}: model.pkl is missing or differs from its manifest's SHA-256; "
            "refusing to load it (train a new version)"
        )
    model = pickle.loads(data)  # checked against the manifest's hash above
    if not isinstance(model, ChurnModel):
        raise DataError(f"churn model {version}: model.pkl does not hold a churn model")
    return meta, model
