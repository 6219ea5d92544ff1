"""The peer for the service benchmark: what a data team would otherwise build.

A minimal FastAPI + uvicorn service that scores the same LightGBM model file on the same
features: calendar and numbers as dispatch-risk computes them, category codes from the model's
vocabularies, history features from the model's history (per entity, as of the end of the
history, not re-cut at each decision time), Platt calibration and risk bands. Each score is
recorded in SQLite (WAL). No carrier ranking, factors or policies: those are dispatch-risk's
extra work per request.

Run: PEER_MODEL_DIR=models/default PEER_DB=/tmp/peer.sqlite3 \
     uvicorn --app-dir benches/peer app:app --workers 2 --port 8090 --no-access-log
"""

import json
import math
import os
import sqlite3
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import List, Optional, Union

import lightgbm as lgb
import numpy as np
import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

MODEL_DIR = os.environ.get("PEER_MODEL_DIR", "models/default")
DB_PATH = os.environ.get("PEER_DB", "peer.sqlite3")

with open(os.path.join(MODEL_DIR, "features.json")) as f:
    SPEC = json.load(f)
SCHEMA = SPEC["schema"]
CAL_A, CAL_B = SPEC["calibration"]["a"], SPEC["calibration"]["b"]
BANDS = SPEC["risk_bands"]
BOOSTER = lgb.Booster(model_file=os.path.join(MODEL_DIR, "delay_model.txt"))
CODES = [{v: i for i, v in enumerate(c["values"])} for c in SCHEMA["categorical"]]
WINDOWS = SCHEMA["history"]["windows_days"]
PRIOR_M = SCHEMA["history"]["prior_strength"]
KEYS = ["carrier", "lane", "carrier_dest", "warehouse", "destination"]


def _entity(key, carrier, warehouse, destination):
    return {
        "carrier": carrier,
        "lane": f"{warehouse}>{destination}",
        "carrier_dest": f"{carrier}>{destination}",
        "warehouse": warehouse,
        "destination": destination,
    }[key]


def _history_table():
    h = pd.read_parquet(os.path.join(MODEL_DIR, "history.parquet"))
    h["late"] = h["delivered_at"] > h["date_deadline"]
    h["lateness"] = (h["delivered_at"] - h["date_deadline"]) / 86400.0
    h["transit"] = (h["delivered_at"] - h["scheduled_date"]) / 86400.0
    end = h["delivered_at"].max()
    prior = (h["late"].sum() + 0.5 * PRIOR_M) / (len(h) + PRIOR_M)
    smooth = lambda late, n: (late + PRIOR_M * prior) / (n + PRIOR_M)
    table = {}
    for key in KEYS:
        h["_k"] = [
            _entity(key, c, w, d)
            for c, w, d in zip(h["carrier"], h["warehouse"], h["destination"])
        ]
        for name, g in h.sort_values("delivered_at").groupby("_k"):
            row = []
            for w in WINDOWS:
                recent = g[g["delivered_at"] >= end - w * 86400]
                row += [smooth(recent["late"].sum(), len(recent)), float(len(recent))]
            last10 = g.tail(10)
            row += [
                smooth(g["late"].sum(), len(g)),
                g["lateness"].mean(),
                g["transit"].mean(),
                None,  # slack: lead time minus mean transit, per request
                smooth(last10["late"].sum(), len(last10)),
                0.0,
                0.0,
            ]
            table[(key, name)] = row
    return prior, smooth, table


PRIOR, SMOOTH, HISTORY = _history_table()
EMPTY = []
for w in WINDOWS:
    EMPTY += [PRIOR, 0.0]
EMPTY += [PRIOR, math.nan, math.nan, None, PRIOR, 0.0, 0.0]

DB = sqlite3.connect(DB_PATH, check_same_thread=False, isolation_level=None)
DB.execute("PRAGMA journal_mode=WAL")
DB.execute("PRAGMA synchronous=NORMAL")
DB.execute("PRAGMA busy_timeout=5000")
DB_LOCK = threading.Lock()
DB.execute(
    "CREATE TABLE IF NOT EXISTS scores (score_id TEXT PRIMARY KEY, shipment_id TEXT, "
    "created_at TEXT, request TEXT, response TEXT, latency_us INTEGER)"
)


class Shipment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shipment_id: str
    scheduled_date: Optional[str] = None
    date_deadline: str
    carrier: Optional[str] = None
    warehouse: str
    destination: str
    customer_id: Optional[str] = None
    customer_tier: Optional[str] = None
    priority: Optional[Union[str, int]] = None
    transport_mode: Optional[str] = None
    service_level: Optional[str] = None
    order_value: Optional[float] = None
    weight_kg: Optional[float] = None
    volume_m3: Optional[float] = None
    package_count: Optional[float] = None
    distance_km: Optional[float] = None
    shipping_cost: Optional[float] = None
    hazardous: Optional[bool] = None
    temperature_controlled: Optional[bool] = None
    same_day: Optional[bool] = None
    credit_hold: Optional[bool] = None


class Batch(BaseModel):
    shipments: List[Shipment]


def _ts(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=timezone.utc).timestamp()


def features(s: Shipment):
    decided = _ts(s.scheduled_date) if s.scheduled_date else time.time()
    deadline = _ts(s.date_deadline)
    lead = (deadline - decided) / 86400.0
    dist = s.distance_km
    d = datetime.fromtimestamp(decided, tz=timezone.utc)
    dd = datetime.fromtimestamp(deadline, tz=timezone.utc)
    row = [
        lead,
        dist / max(lead, 1 / 24) if dist is not None else math.nan,
        d.weekday(),
        d.hour + d.minute / 60,
        d.month,
        d.timetuple().tm_yday,
        dd.weekday(),
    ]
    values = s.model_dump()
    for name in SCHEMA["numeric"]:
        v = values.get(name)
        row.append(math.nan if v is None else float(v))
    carrier = s.carrier or ""
    for k, vocab in enumerate(SCHEMA["categorical"]):
        v = values.get(vocab["name"])
        row.append(math.nan if v is None else CODES[k].get(str(v), len(vocab["values"])))
    row.append(PRIOR)
    for key in KEYS:
        h = list(HISTORY.get((key, _entity(key, carrier, s.warehouse, s.destination)), EMPTY))
        h[2 * len(WINDOWS) + 3] = lead - h[2 * len(WINDOWS) + 2]
        row += h
    return row


def band(p):
    if p >= BANDS["critical"]:
        return "critical"
    if p >= BANDS["high"]:
        return "high"
    if p >= BANDS["medium"]:
        return "medium"
    return "low"


def answer(shipments):
    x = np.array([features(s) for s in shipments], dtype=np.float64)
    raw = BOOSTER.predict(x, raw_score=True)
    out = []
    for s, r in zip(shipments, raw):
        p = 1.0 / (1.0 + math.exp(-(CAL_A * r + CAL_B)))
        out.append(
            {
                "shipment_id": s.shipment_id,
                "delay_risk": round(p, 6),
                "risk_band": band(p),
                "score_id": uuid.uuid4().hex,
            }
        )
    return out


def record(shipments, answers, started):
    now = datetime.now(timezone.utc).isoformat()
    latency = int((time.perf_counter() - started) * 1e6)
    with DB_LOCK:
        DB.execute("BEGIN")
        DB.executemany(
            "INSERT INTO scores VALUES (?, ?, ?, ?, ?, ?)",
            [
                (a["score_id"], s.shipment_id, now, s.model_dump_json(), json.dumps(a), latency)
                for s, a in zip(shipments, answers)
            ],
        )
        DB.execute("COMMIT")


app = FastAPI()


@app.post("/v1/score")
def score(s: Shipment):
    started = time.perf_counter()
    a = answer([s])
    record([s], a, started)
    return a[0]


@app.post("/v1/score/batch")
def score_batch(b: Batch):
    started = time.perf_counter()
    a = answer(b.shipments)
    record(b.shipments, a, started)
    return {"count": len(a), "scores": a}
