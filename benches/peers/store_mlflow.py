#!/usr/bin/env python3
"""The same version-store operations with MLflow's file-based tracking + model registry (the
setup: `file:` URIs, no server, no database).

usage: store_mlflow.py WORKDIR ARTIFACT_FILE [--models 100] [--versions 100] [--repeat 20]

Prints one JSON line (milliseconds are medians over --repeat runs):
  register_ms   log a 5 MB artifact in a run + create a model version from it + set the
                `champion` alias (what `VersionStore::register` + `promote` do)
  load_ms       fetch that artifact back as bytes (download_artifacts + read)
  build_s       create MODELS x VERSIONS model versions (registry metadata only: MLflow
                versions reference a source URI, no artifact copy)
  list_ms       search_model_versions("name='model_<MODELS/2>'") on that registry
  active_ms     get_model_version_by_alias(model_<MODELS/2>, "champion")
"""
import argparse
import json
import os
import statistics
import time
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
# MLflow 3 keeps the file backend in maintenance mode behind this switch; it is the anchor.
os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")

import mlflow  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402


def median_ms(f, repeat):
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        ts.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workdir")
    ap.add_argument("artifact")
    ap.add_argument("--models", type=int, default=100)
    ap.add_argument("--versions", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=20)
    a = ap.parse_args()
    uri = "file://" + os.path.abspath(os.path.join(a.workdir, "mlruns"))
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    c = MlflowClient()
    c.create_registered_model("m")
    last = {}

    def register():
        with mlflow.start_run() as run:
            mlflow.log_artifact(a.artifact)
        mv = c.create_model_version("m", f"{run.info.artifact_uri}/{os.path.basename(a.artifact)}", run_id=run.info.run_id)
        c.set_registered_model_alias("m", "champion", mv.version)
        last["run"] = run.info.run_id

    register_ms = median_ms(register, a.repeat)
    dst = os.path.join(a.workdir, "dl")
    os.makedirs(dst, exist_ok=True)

    def load():
        p = mlflow.artifacts.download_artifacts(run_id=last["run"], artifact_path=os.path.basename(a.artifact), dst_path=dst)
        with open(p, "rb") as f:
            return f.read()

    load_ms = median_ms(load, a.repeat)

    t = time.perf_counter()
    for m in range(a.models):
        name = f"model_{m:03d}"
        c.create_registered_model(name)
        for v in range(a.versions):
            mv = c.create_model_version(name, f"file:///nonexistent/{name}/{v}")
            if v % 10 == 9:
                c.set_registered_model_alias(name, "champion", mv.version)
    build_s = time.perf_counter() - t
    probe = f"model_{a.models // 2:03d}"
    n = len(c.search_model_versions(f"name='{probe}'"))
    assert n == a.versions, n
    list_ms = median_ms(lambda: c.search_model_versions(f"name='{probe}'"), min(a.repeat, 10))
    active_ms = median_ms(lambda: c.get_model_version_by_alias(probe, "champion"), a.repeat)
    print(json.dumps({"lib": "mlflow " + mlflow.__version__, "register_ms": register_ms, "load_ms": load_ms,
                      "build_s": build_s, "list_ms": list_ms, "active_ms": active_ms}))


if __name__ == "__main__":
    main()
