"""Whole-frame summaries: Report -> Summary (scalars + optional curve), one function per type."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .base import Report, Summary, _f
from .tables import _is_numeric


def _stats(s: pd.Series, prefix: str, *, p90: bool = False) -> dict[str, float]:
    s = pd.to_numeric(s, errors="coerce").dropna()
    out = {f"{prefix}_mean": _f(s.mean()) if len(s) else math.nan,
           f"{prefix}_median": _f(s.median()) if len(s) else math.nan}
    if p90:
        out[f"{prefix}_p90"] = _f(s.quantile(0.9)) if len(s) else math.nan
    return out


def _numeric_aggregates(frame: pd.DataFrame, skip=()) -> dict[str, float]:
    out = {"rows": float(len(frame))}
    for c in frame.columns:
        if c in skip or not _is_numeric(frame[c]):
            continue
        out.update(_stats(frame[c], str(c)))
    return out


def _hist(x: pd.Series, y: pd.Series) -> tuple[dict[str, float], pd.DataFrame]:
    xv = x.to_numpy("float64")
    yv = y.to_numpy("float64")
    total = float(yv.sum())
    out = {"total": total, "mean": math.nan, "median": math.nan, "max": math.nan,
           "nonzero_bins": float((yv > 0).sum())}
    if total > 0:
        out["mean"] = float((xv * yv).sum() / total)
        cum = np.cumsum(yv)
        out["median"] = float(xv[np.searchsorted(cum, total / 2.0)])
        out["max"] = float(xv[yv > 0].max())
    return out, pd.DataFrame({"x": xv, "y": yv})


def _series(x, y, **extra) -> pd.DataFrame:
    d = {"x": np.asarray(x, dtype="float64"), "y": np.asarray(y, dtype="float64")}
    for k, v in extra.items():
        d[k] = np.asarray(v, dtype="float64")
    return pd.DataFrame(d)


def _ts_scalars(y: pd.Series) -> dict[str, float]:
    v = y.to_numpy("float64")
    if not len(v):
        return {"final": math.nan, "mean": math.nan, "max": math.nan}
    return {"final": float(v[-1]), "mean": float(np.nanmean(v)), "max": float(np.nanmax(v))}


def _contacts(frame: pd.DataFrame, h1: str, h2: str, state: str) -> dict[str, float]:
    """Pair up/down events per unordered host pair (k-th up with k-th down) -> contact stats."""
    a = frame[h1].astype(str).to_numpy(dtype=object)
    b = frame[h2].astype(str).to_numpy(dtype=object)
    swap = a > b
    lo = np.where(swap, b, a)
    hi = np.where(swap, a, b)
    st = frame[state].astype(str).to_numpy(dtype=object)
    df = pd.DataFrame({"lo": lo, "hi": hi, "st": st, "time": frame["time"].to_numpy("float64")})
    df["k"] = df.groupby(["lo", "hi", "st"], sort=False).cumcount()
    up = df[df["st"] == "up"]
    down = df[df["st"] == "down"]
    m = up.merge(down, on=["lo", "hi", "k"], suffixes=("_up", "_down"))
    dur = (m["time_down"] - m["time_up"]).to_numpy()
    return {"events": float(len(df)), "up": float(len(up)), "down": float(len(down)),
            "contacts": float(len(m)), "open_at_end": float(len(up) - len(m)),
            "pairs": float(len(df.drop_duplicates(["lo", "hi"]))),
            "contact_duration_mean": float(dur.mean()) if len(dur) else math.nan,
            "contact_duration_median": float(np.median(dur)) if len(dur) else math.nan,
            "contact_time_total": float(dur.sum()) if len(dur) else 0.0}


def _s_keyvalue(r: Report) -> Summary:
    f = r.frame
    return Summary({str(k): float(v) for k, v in zip(f["metric"], f["value"])})


def _s_hist(xcol: str, ycol: str, below10: bool = False):
    def summ(r: Report) -> Summary:
        sc, curve = _hist(r.frame[xcol], r.frame[ycol])
        if below10:
            x = r.frame[xcol].to_numpy("float64")
            y = r.frame[ycol].to_numpy("float64")
            sc["frac_below_10s"] = float(y[x < 10].sum() / sc["total"]) if sc["total"] > 0 else math.nan
        return Summary(sc, curve, "histogram")
    return summ


def _s_jump(r: Report) -> Summary:
    sc, curve = _hist(r.frame["bin_center"], r.frame["count"])
    curve["density"] = r.frame["density"].to_numpy("float64")
    return Summary(sc, curve, "histogram")


def _s_buffer(r: Report) -> Summary:
    f = r.frame
    sc = _ts_scalars(f["occupancy"])
    sc["variance_mean"] = _f(f["variance"].mean()) if len(f) else math.nan
    sc["final_time"] = _f(f["time"].iloc[-1]) if len(f) else math.nan
    return Summary(sc, _series(f["time"], f["occupancy"], variance=f["variance"]), "timeseries")


def _s_per_hour(r: Report) -> Summary:
    f = r.frame
    sc = _ts_scalars(f["contacts"])
    sc.update({"hours": float(len(f)), "total": float(f["contacts"].sum()),
               "min": _f(f["contacts"].min()) if len(f) else math.nan})
    return Summary(sc, _series(f["hour"], f["contacts"]), "timeseries")


def _s_delivery(r: Report) -> Summary:
    f = r.frame
    ratio = f["delivered/created"]
    sc = _ts_scalars(ratio)
    last = f.iloc[-1] if len(f) else None
    sc.update({"created": _f(last["created"]) if last is not None else math.nan,
               "delivered": _f(last["delivered"]) if last is not None else math.nan,
               "final_time": _f(last["time"]) if last is not None else math.nan})
    return Summary(sc, _series(f["time"], ratio, created=f["created"], delivered=f["delivered"]), "timeseries")


def _s_delay(r: Report) -> Summary:
    f = r.frame
    d = f["messageDelay"]
    sc = {"delivered": float(len(f)),
          "final": _f(f["cumulativeProbability"].iloc[-1]) if len(f) else 0.0}
    sc.update(_stats(d, "delay", p90=True))
    sc["delay_max"] = _f(d.max()) if len(f) else math.nan
    if len(f):
        curve = _series(d, f["cumulativeProbability"])
    else:
        end = r.meta.get("sim_time", 0.0)
        curve = _series([0.0, end] if end else [0.0], [0.0, 0.0] if end else [0.0])
    return Summary(sc, curve, "timeseries")


def _s_total_contact(r: Report) -> Summary:
    f = r.frame
    sc = _ts_scalars(f["totalContactTime"])
    t_end = _f(f["time"].iloc[-1]) if len(f) else math.nan
    sc["final_time"] = t_end
    sc["slope"] = sc["final"] / t_end if len(f) and t_end > 0 else math.nan
    return Summary(sc, _series(f["time"], f["totalContactTime"]), "timeseries")


def _s_created(r: Report) -> Summary:
    f = r.frame
    sc = {"created": float(len(f))}
    sc.update(_stats(f["size"], "size"))
    sc.update({"size_min": _f(f["size"].min()) if len(f) else math.nan,
               "size_max": _f(f["size"].max()) if len(f) else math.nan,
               "first_time": _f(f["time"].min()) if len(f) else math.nan,
               "last_time": _f(f["time"].max()) if len(f) else math.nan,
               "ttl_mean": _f(pd.to_numeric(f["TTL"], errors="coerce").mean()) if len(f) else math.nan,
               "responses": float(f["isResponse"].sum())})
    return Summary(sc)


def _s_delivered(r: Report) -> Summary:
    f = r.frame
    sc = {"delivered": float(len(f))}
    sc.update(_stats(f["deliveryTime"], "delay", p90=True))
    sc.update(_stats(f["hopcount"], "hopcount"))
    sc.update(_stats(f["size"], "size"))
    sc["remaining_ttl_mean"] = _f(pd.to_numeric(f["remainingTtl"], errors="coerce").mean()) if len(f) else math.nan
    if len(f):
        arrows = f["path"].astype(str).str.count("->")
        sc["path_consistent_frac"] = float((arrows.to_numpy() == f["hopcount"].to_numpy()).mean())
    else:
        sc["path_consistent_frac"] = math.nan
    return Summary(sc)


def _s_distance_delay(r: Report) -> Summary:
    f = r.frame
    d = f[f["delivered"]]
    sc = {"messages": float(len(f)), "delivered": float(len(d)),
          "delivery_prob": float(len(d) / len(f)) if len(f) else math.nan}
    sc.update(_stats(d["delay"], "delay", p90=True))
    sc.update(_stats(d["hops"], "hops"))
    sc.update(_stats(f["distance"], "distance"))
    if len(d) >= 2 and d["distance"].std() > 0 and d["delay"].std() > 0:
        sc["corr_distance_delay"] = float(np.corrcoef(d["distance"], d["delay"])[0, 1])
    else:
        sc["corr_distance_delay"] = math.nan
    return Summary(sc)


def _s_encounters(r: Report) -> Summary:
    f = r.frame
    sc = {"nodes": float(len(f))}
    for c in ("encounters", "unique_encounters"):
        sc.update(_stats(f[c], c))
        sc[f"{c}_max"] = _f(f[c].max()) if len(f) else math.nan
    return Summary(sc)


def _s_message_report(r: Report) -> Summary:
    f = r.frame
    first = f[~f["duplicate"]]
    sc = {"delivered": float(len(first)), "duplicates": float(f["duplicate"].sum())}
    sc.update(_stats(first["delay"], "delay", p90=True))
    return Summary(sc)


def _s_node_density(r: Report) -> Summary:
    f = r.frame
    sc = {"cells": float(len(f)), "samples": float(max(f.shape[1] - 3, 0))}
    sc.update(_stats(f["average"], "average"))
    sc["average_max"] = _f(f["average"].max()) if len(f) else math.nan
    sc["average_total"] = _f(f["average"].sum())
    return Summary(sc)


def _s_radius(r: Report) -> Summary:
    f = r.frame
    sc = {"hosts": float(len(f))}
    sc.update(_stats(f["radius"], "radius"))
    group = f["host"].astype(str).str.extract(r"^([A-Za-z]*)", expand=False)
    for g, sub in f.groupby(group, sort=True):
        sc[f"radius_mean_{g or 'other'}"] = _f(sub["radius"].mean())
    return Summary(sc)


def _s_adjacency(r: Report) -> Summary:
    f = r.frame
    a = f["host1"].astype(str).to_numpy(dtype=object)
    b = f["host2"].astype(str).to_numpy(dtype=object)
    swap = a > b
    und = pd.DataFrame({"lo": np.where(swap, b, a), "hi": np.where(swap, a, b), "w": f["weight"].to_numpy()})
    merged = und.groupby(["lo", "hi"], sort=False)["w"].sum()
    deg = pd.concat([merged.index.get_level_values(0).to_series(), merged.index.get_level_values(1).to_series()]).value_counts()
    sc = {"edge_lines": float(len(f)), "edges": float(len(merged)), "nodes": float(len(deg)),
          "total_weight": float(f["weight"].sum()),
          "weight_mean": _f(merged.mean()) if len(merged) else math.nan,
          "degree_mean": _f(deg.mean()) if len(deg) else math.nan,
          "degree_max": _f(deg.max()) if len(deg) else math.nan}
    return Summary(sc)


def _s_message_graph(r: Report) -> Summary:
    f = r.frame
    sc = {"paths": float(len(f))}
    sc.update(_stats(f["hops"], "hops"))
    sc["hops_max"] = _f(f["hops"].max()) if len(f) else math.nan
    if len(f):
        nodes = f["path"].str.split("->").explode()
        relays = f["path"].str.split("->").map(lambda p: p[1:-1]).explode().dropna()
        sc["nodes"] = float(nodes.nunique())
        sc["relay_nodes"] = float(relays.nunique())
    else:
        sc["nodes"] = sc["relay_nodes"] = 0.0
    return Summary(sc)


def _s_connectivity(r: Report) -> Summary:
    f = r.frame
    sc = _contacts(f, "host1", "host2", "state")
    sc["final_time"] = _f(f["time"].max()) if len(f) else math.nan
    return Summary(sc)




def _s_eventlog(r: Report) -> Summary:
    f = r.frame
    act = f["action"].value_counts()
    sc = {"events": float(len(f))}
    for k in ("C", "S", "DE", "A", "DR", "R"):
        sc[k] = float(act.get(k, 0))
    de = f.loc[f["action"] == "DE", "extra"].value_counts()
    for k in ("R", "D", "A"):
        sc[f"DE_{k}"] = float(de.get(k, 0))
    conn = f.loc[f["action"] == "CONN", "extra"].value_counts()
    sc["CONN_up"] = float(conn.get("up", 0))
    sc["CONN_down"] = float(conn.get("down", 0))
    sc["final_time"] = _f(f["time"].max()) if len(f) else math.nan
    return Summary(sc)


def _s_ns2(r: Report) -> Summary:
    f = r.frame
    per_node = f.groupby("node").size()
    sc = {"waypoints": float(len(f)), "nodes": float(per_node.size),
          "waypoints_per_node_mean": _f(per_node.mean()) if len(per_node) else math.nan}
    sc.update(_stats(f["speed"], "speed"))
    sc["first_time"] = _f(f["time"].min()) if len(f) else math.nan
    sc["last_time"] = _f(f["time"].max()) if len(f) else math.nan
    return Summary(sc)


def _s_location(r: Report) -> Summary:
    f = r.frame
    sc = {"snapshots": float(f["t"].nunique()), "hosts": float(f["host"].nunique()),
          "first_t": _f(f["t"].min()) if len(f) else math.nan, "last_t": _f(f["t"].max()) if len(f) else math.nan}
    if len(f):
        g = f.sort_values(["host", "t"], kind="stable")
        same = (g["host"].to_numpy()[1:] == g["host"].to_numpy()[:-1])
        step = np.hypot(np.diff(g["x"].to_numpy()), np.diff(g["y"].to_numpy()))[same]
        sc["step_mean"] = float(step.mean()) if len(step) else math.nan
    else:
        sc["step_mean"] = math.nan
    sc.update(_stats(f["x"], "x"))
    sc.update(_stats(f["y"], "y"))
    return Summary(sc)


def _s_copy_count(r: Report) -> Summary:
    f = r.frame
    per_t = f.groupby("t", sort=True)["copies"].agg(["mean", "size", "sum"])   # sums in int64 (pandas' groupby)
    sc = {"snapshots": float(len(per_t)), "messages": float(f["msg"].nunique()),
          "copies_mean": _f(f["copies"].mean()) if len(f) else math.nan,
          "copies_max": _f(f["copies"].max()) if len(f) else math.nan,
          "messages_per_snapshot_mean": _f(per_t["size"].mean()) if len(per_t) else math.nan,
          "final_copies_mean": _f(per_t["mean"].iloc[-1]) if len(per_t) else math.nan}
    curve = _series(per_t.index, per_t["mean"], messages=per_t["size"], copies=per_t["sum"])
    return Summary(sc, curve, "timeseries")


def _s_message_location(r: Report) -> Summary:
    f = r.frame
    per_t = f.groupby("t", sort=True).agg(copies=("msg", "size"), holders=("holder", "nunique"),
                                          messages=("msg", "nunique"))
    sc = {"snapshots": float(len(per_t)), "messages": float(f["msg"].nunique()),
          "copies_per_snapshot_mean": _f(per_t["copies"].mean()) if len(per_t) else math.nan,
          "holders_per_snapshot_mean": _f(per_t["holders"].mean()) if len(per_t) else math.nan,
          "messages_per_snapshot_mean": _f(per_t["messages"].mean()) if len(per_t) else math.nan}
    curve = _series(per_t.index, per_t["copies"], holders=per_t["holders"], messages=per_t["messages"])
    return Summary(sc, curve, "timeseries")


def _s_generic(r: Report) -> Summary:
    if r.meta.get("generic_format") == "keyvalue":
        return _s_keyvalue(r)
    return Summary(_numeric_aggregates(r.frame))

