"""The peer dispatch-risk is measured against: what a data team would write with pandas and
LightGBM's Python package.

  speed:   read a contract-shaped history CSV with pandas, derive lead time and calendar
           columns, fit LightGBM with its defaults (500 trees, 63 leaves, learning rate 0.05).
  quality: fit the same LightGBM defaults on dispatch-risk's own feature matrices (exported by
           `train --export-features DIR`), so the comparison isolates the model and calibration.

Prints one JSON object. Used by benches/delay-risk; tests never need Python.
"""
import argparse
import json
import time

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

DEFAULTS = dict(objective="binary", learning_rate=0.05, num_leaves=63, verbose=-1, seed=42)


def speed(history: str) -> dict:
    t0 = time.perf_counter()
    df = pd.read_csv(history, low_memory=False)
    for c in ("scheduled_date", "date_deadline", "delivered_at"):
        df[c] = pd.to_datetime(df[c], format="ISO8601")
    df = df[df["delivered_at"].notna()]
    y = (df["delivered_at"] > df["date_deadline"]).astype(int)
    X = pd.DataFrame(
        {
            "lead_time_days": (df["date_deadline"] - df["scheduled_date"]).dt.total_seconds() / 86400,
            "weekday": df["scheduled_date"].dt.day_of_week,
            "month": df["scheduled_date"].dt.month,
        }
    )
    for c in ("order_value", "weight_kg", "volume_m3", "package_count", "distance_km", "shipping_cost"):
        if c in df:
            X[c] = df[c]
    for c in ("carrier", "warehouse", "destination", "customer_tier", "priority", "service_level", "transport_mode"):
        if c in df:
            X[c] = df[c].astype("category")
    for c in ("hazardous", "temperature_controlled"):
        if c in df:
            X[c] = df[c].astype(float)
    t_load = time.perf_counter() - t0
    booster = lgb.train(DEFAULTS, lgb.Dataset(X, y), num_boost_round=500)
    total = time.perf_counter() - t0
    return {"rows": int(len(X)), "features": int(X.shape[1]), "load_s": t_load, "total_s": total, "trees": booster.num_trees()}


def quality(features_dir: str) -> dict:
    fit = pd.read_parquet(f"{features_dir}/fit.parquet")
    valid = pd.read_parquet(f"{features_dir}/valid.parquet")
    cats = json.load(open(f"{features_dir}/categorical.json"))
    y_fit, y_valid = fit.pop("__late__"), valid.pop("__late__")
    t0 = time.perf_counter()
    booster = lgb.train(DEFAULTS, lgb.Dataset(fit, y_fit, categorical_feature=cats), num_boost_round=500)
    p = booster.predict(valid)
    return {
        "auc": roc_auc_score(y_valid, p),
        "logloss": log_loss(y_valid, np.clip(p, 1e-15, 1 - 1e-15)),
        "brier": brier_score_loss(y_valid, p),
        "n": int(len(y_valid)),
        "fit_s": time.perf_counter() - t0,
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["speed", "quality"])
    ap.add_argument("path")
    a = ap.parse_args()
    print(json.dumps(speed(a.path) if a.mode == "speed" else quality(a.path)))
