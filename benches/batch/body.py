# The service bench's batch: the sample's last 10,000 rows without outcomes, with a credit hold on
# the given share of them (spread evenly). Usage: body.py SHARE OUT.json
import csv, json, math, sys
share = float(sys.argv[1]) if len(sys.argv) > 1 else 0.5
rows = list(csv.DictReader(open('data/samples/history_sample.csv')))[-10000:]
NUM = ["order_value","weight_kg","volume_m3","package_count","distance_km","shipping_cost"]
out = []
for i, r in enumerate(rows):
    m = {}
    for h, v in r.items():
        if v == "" or h in ("delivered_at","shipped_at","notes"):
            continue
        if h in NUM: m[h] = float(v)
        elif h in ("hazardous","temperature_controlled"): m[h] = (v == "true")
        else: m[h] = v
    if math.floor((i+1)*share) > math.floor(i*share):
        m["credit_hold"] = True
    out.append(m)
json.dump({"shipments": out}, open(sys.argv[2], 'w'))
