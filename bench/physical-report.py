#!/usr/bin/env python3
"""Tables for docs/benchmarks.md from a bench/physical.sh result file.

    bench/physical-report.py bench/results/physical-<stamp>.tsv

Reads the TSV (step, tool, wall_s, bytes, note, load) and, beside it,
physical-<stamp>-archive-push.tsv (every push the archive command made).
Prints Markdown: full backups, hourly backups, restore, PITR, archive-push,
and the issue's goals judged against Debian's pgBackRest (configuration gz,
its default compression, and zst, level 1).
"""
import collections
import os
import re
import statistics
import sys

MIB = 1 << 20


def load(path):
    rows = []
    with open(path) as f:
        next(f)
        for line in f:
            step, tool, wall, nbytes, note, load_ = (line.rstrip("\n").split("\t") + [""] * 6)[:6]
            rows.append(dict(step=step, tool=tool, wall=float(wall) if wall else None,
                             bytes=int(nbytes) if nbytes.lstrip("-").isdigit() else None,
                             note=note, load=load_))
    return rows


def kv(note):
    return dict(m.groups() for m in re.finditer(r"(\w+)=(\S+)", note))


def one(rows, step, tool):
    for r in rows:
        if r["step"] == step and r["tool"] == tool:
            return r
    return None


def mib(b):
    return f"{b / MIB:,.1f}"


def main():
    path = sys.argv[1]
    rows = load(path)
    tools = []
    for r in rows:
        if r["step"] == "full" and r["tool"] not in tools:
            tools.append(r["tool"])
    pgbr = [t for t in tools if t != "lifeboat"]
    db = one(rows, "database_bytes", [r["tool"] for r in rows if r["step"] == "database_bytes"][0])["bytes"]
    hours = sorted({int(m.group(1)) for r in rows if (m := re.fullmatch(r"incr_h(\d+)", r["step"]))})
    loads = [float(r["load"].split()[0]) for r in rows if r["load"]]
    print(f"Database: {db:,} bytes ({db / (1 << 30):.2f} GiB); {len(hours)} hours; "
          f"1-min load {min(loads):.1f}–{max(loads):.1f}\n")

    # full base backup
    print("| full base backup | time (s) | added to the repository (MiB) | Lifeboat / this |")
    print("|---|---:|---:|---:|")
    lb_full = one(rows, "full", "lifeboat")["wall"]
    for t in tools:
        w = one(rows, "full", t)["wall"]
        a = one(rows, "full_added", t)["bytes"]
        ratio = "" if t == "lifeboat" else f"{lb_full / w:.2f}"
        print(f"| {t} | {w:.1f} | {mib(a)} | {ratio} |")
    print()

    # hourly
    print("| hour | WAL (MiB) | " + " | ".join(f"{t} s / MiB added" for t in tools) + " |")
    print("|---:|---:|" + "---:|" * len(tools))
    added = collections.defaultdict(list)
    times = collections.defaultdict(list)
    walh = []
    for h in hours:
        wal = one(rows, f"wal_h{h}", "postgres")["bytes"]
        walh.append(wal)
        cells = []
        for t in tools:
            w = one(rows, f"incr_h{h}", t)["wall"]
            a = one(rows, f"incr_h{h}_added", t)["bytes"]
            added[t].append(a)
            times[t].append(w)
            cells.append(f"{w:.1f} / {mib(a)}")
        print(f"| {h} | {mib(wal)} | " + " | ".join(cells) + " |")
    print()
    dbh = [one(rows, f"database_bytes_h{h}", r0["tool"])["bytes"] for h in hours
           for r0 in [one(rows, "database_bytes", [r["tool"] for r in rows if r["step"] == "database_bytes"][0])]]
    growth = [b - a for a, b in zip([db] + dbh[:-1], dbh)]
    print(f"The database grew from {db:,} to {dbh[-1]:,} bytes; per hour by "
          f"{mib(statistics.median(growth))} MiB (median), {100 * statistics.median(g / d for g, d in zip(growth, dbh)):.2f} % of its size.\n")
    print("| per hour | time median / max (s) | added median / max (MiB) | added, % of the database that hour (median / max) | WAL archived into it, median (MiB) |")
    print("|---|---:|---:|---:|---:|")
    for t in tools:
        arch = [one(rows, f"wal_h{h}_archived", t)["bytes"] for h in hours]
        print(f"| {t} | {statistics.median(times[t]):.1f} / {max(times[t]):.1f} | "
              f"{mib(statistics.median(added[t]))} / {mib(max(added[t]))} | "
              f"{100 * statistics.median(a / d for a, d in zip(added[t], dbh)):.2f} % / "
              f"{100 * max(a / d for a, d in zip(added[t], dbh)):.2f} % | "
              f"{mib(statistics.median(arch))} |")
    print(f"\nWAL written per hour (pg_wal_lsn_diff over the churn): median {mib(statistics.median(walh))} MiB, "
          f"max {mib(max(walh))} MiB.")
    lbn = [kv(one(rows, f"incr_h{h}_added", "lifeboat")["note"]) for h in hours]
    print("Lifeboat's own --json per hour: bytes_new median "
          f"{mib(statistics.median(int(k['bytes_new']) for k in lbn))} MiB, bytes_stored median "
          f"{mib(statistics.median(int(k['bytes_stored']) for k in lbn))} MiB.\n")

    # restore and PITR, per round
    restore_totals = collections.defaultdict(dict)
    restore_files = collections.defaultdict(dict)
    for kind, title in (("restore_latest", "restore (to the end of the archive)"), ("pitr", "PITR (to a time)")):
        rounds = sorted({int(m.group(1)) for r in rows if (m := re.fullmatch(kind + r"_r(\d+)", r["step"]))})
        if not rounds:
            continue
        print(f"| {title} | round | total (s) | files (s) | recovery until promoted (s) | stop (s) | Lifeboat total / this |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for rn in rounds:
            step = f"{kind}_r{rn}"
            lb = one(rows, step, "lifeboat")
            parts = kv(one(rows, f"{step}_parts", "lifeboat")["note"])
            restore_totals[kind].setdefault("lifeboat", []).append(lb["wall"])
            restore_files[kind].setdefault("lifeboat", []).append(float(parts["restore_seconds"]))
            print(f"| lifeboat | {rn} | {lb['wall']:.1f} | {float(parts['restore_seconds']):.1f} | "
                  f"{float(parts['recovery_seconds']):.1f} | (in recovery) | |")
            for t in pgbr:
                tot = kv(one(rows, f"{step}_total", t)["note"])
                wt = float(tot["wall_total"])
                restore_totals[kind].setdefault(t, []).append(wt)
                restore_files[kind].setdefault(t, []).append(float(tot["files"]))
                print(f"| {t} | {rn} | {wt:.1f} | {float(tot['files']):.1f} | "
                      f"{float(tot['recovery']):.1f} | {float(tot['stop']):.1f} | {lb['wall'] / wt:.2f} |")
        print()
        if kind == "pitr":
            pw = one(rows, "pitr_wal", "postgres")
            print(f"PITR WAL: {mib(pw['bytes'])} MiB from before the pgbench load to the target ({pw['note']}); "
                  f"Lifeboat replayed to {parts.get('replay_time', '?')}, replay_lsn {parts.get('replay_lsn', '?')}.\n")

    # archive-push
    pushes = [r for r in rows if r["step"].startswith("push_") and r["wall"]]
    if pushes:
        seg = one(rows, "push_segments", "all")
        n = int(re.search(r"\((\d+)\)", seg["note"]).group(1))
        print(f"| archive-push, {n} segments ({mib(seg['bytes'])} MiB), one process each | s | segments/s | stored (MiB) |")
        print("|---|---:|---:|---:|")
        for r in pushes:
            mode = r["step"].removeprefix("push_")
            st = one(rows, "push_stored", r["tool"] if r["tool"] == "lifeboat" else f"{r['tool']}-{mode}")
            print(f"| {r['tool']} {mode} | {r['wall']:.1f} | {n / r['wall']:.2f} | {mib(st['bytes']) if st else ''} |")
        print()
    arch = path.removesuffix(".tsv") + "-archive-push.tsv"
    if os.path.exists(arch):
        per = collections.defaultdict(list)
        for line in open(arch):
            t, f, rc, us = line.rstrip("\n").split("\t")
            if rc == "0" and len(f) == 24:
                per[t].append(int(us) / 1e6)
        print("| archive_command during the run, per segment | segments | median (ms) | mean (ms) | max (ms) |")
        print("|---|---:|---:|---:|---:|")
        for t, v in per.items():
            print(f"| {t} | {len(v)} | {statistics.median(v) * 1000:.0f} | {statistics.mean(v) * 1000:.0f} | {max(v) * 1000:.0f} |")
        print()

    # goals
    print("Goals (Debian's pgBackRest as the reference):")
    for t in [t for t in pgbr if t in ("pgbackrest-gz", "pgbackrest-zst")]:
        w = one(rows, "full", t)["wall"]
        print(f"- base backup ≤ {t}'s full: {lb_full:.1f} s vs {w:.1f} s: "
              f"{'met' if lb_full <= w else 'NOT met'} ({lb_full / w:.2f}×)")
        for kind in ("restore_latest", "pitr"):
            if t in restore_totals[kind]:
                lbt = statistics.median(restore_totals[kind]["lifeboat"])
                tt = statistics.median(restore_totals[kind][t])
                print(f"- {kind}: Lifeboat ≤ 1.1× {t} (medians over rounds): {lbt:.1f} s vs {tt:.1f} s: "
                      f"{'met' if lbt <= 1.1 * tt else 'NOT met'} ({lbt / tt:.2f}×); the files alone "
                      f"{statistics.median(restore_files[kind]['lifeboat']):.1f} s vs {statistics.median(restore_files[kind][t]):.1f} s "
                      f"({statistics.median(restore_files[kind]['lifeboat']) / statistics.median(restore_files[kind][t]):.2f}×)")
    for t in tools:
        pct = [a / d for a, d in zip(added[t], dbh)]
        print(f"- each hourly base backup adds ≤ 0.3 % of the database: {t} max {100 * max(pct):.2f} % "
              f"(median {100 * statistics.median(pct):.2f} %): {'met' if max(pct) <= 0.003 else 'NOT met'}")


if __name__ == "__main__":
    main()
