#!/usr/bin/env python3
"""Turns a bench/postgres.sh result file (TSV) into the markdown tables of
docs/benchmarks-postgres.md.  Usage: bench/postgres-report.py bench/results/postgres-*.tsv"""
import sys

rows = {}
order = []
for line in open(sys.argv[1]).read().splitlines()[1:]:
    f = line.split("\t")
    rows[f[0]] = f
    order.append(f[0])

def wall(k): return float(rows[k][1]) if k in rows and rows[k][1] else None
def rss(k): return int(rows[k][2]) / 1024 if k in rows and rows[k][2] and rows[k][2] != "0" else None
def tree(k): return int(rows[k][3]) / 1024 if k in rows and rows[k][3] else None
def byt(k): return int(rows[k][4]) if k in rows and rows[k][4] else None
def num(k): return float(rows[k][4]) if k in rows and rows[k][4] else None
def load(k): return rows[k][5] if k in rows else ""
MiB = 1 << 20

base = wall("pg_dump_Z0_devnull")
print("| Measurement | Wall time | Ratio | Size / peak RSS | Load (1/5/15 min) before |")
print("|---|---:|---:|---:|---|")
def line(name, k, ratio_to=None, extra=""):
    w = wall(k)
    if w is None: return
    r = f"{w / ratio_to:.2f}×" if ratio_to else ""
    print(f"| {name} | {w:.1f} s | {r} | {extra} | {load(k)} |")
line("`pg_dump -Fc -Z0 > /dev/null`", "pg_dump_Z0_devnull", base, "")
line("`pg_dump -Fc > file`", "pg_dump_Fc_file", base, f"{byt('pg_dump_Fc_file_size')/MiB:.0f} MiB file")
line("lifeboat `backup postgres` (first)", "lifeboat_backup_first", base,
     f"lifeboat {rss('lifeboat_backup_first'):.0f} MiB RSS; repo {byt('lifeboat_repo_after_first')/MiB:.0f} MiB")
line("`pg_dump -Fc -Z0 \\| restic backup --stdin` (first)", "restic_backup_first", base,
     f"restic {tree('restic_backup_first'):.0f} MiB RSS; repo {byt('restic_repo_after_first')/MiB:.0f} MiB")
pr = wall("pg_restore_j2_file")
line("`pg_dump -Fc -Z0 > file` (final state, for the restores)", "pg_dump_Z0_file_final", base, "")
line("`pg_restore -j2` from the local -Z0 file", "pg_restore_j2_file", pr, "")
line("lifeboat `restore postgres latest --jobs 2`", "lifeboat_restore_jobs2", pr,
     f"lifeboat {rss('lifeboat_restore_jobs2') or 0:.0f} MiB RSS")
line("lifeboat `restore postgres latest` (single stream)", "lifeboat_restore_single", pr,
     f"lifeboat {rss('lifeboat_restore_single') or 0:.0f} MiB RSS")
line("`restic dump \\| pg_restore` (single stream)", "restic_dump_pg_restore", pr,
     f"largest process {tree('restic_dump_pg_restore') or 0:.0f} MiB RSS")
print()
print("| Hour | Churn | lifeboat backup | lifeboat adds | restic backup | restic adds | lifeboat ÷ restic bytes | Load before lifeboat / restic |")
print("|---:|---:|---:|---:|---:|---:|---:|---|")
h = 1
while f"churn_h{h}" in rows:
    la, ra = byt(f"lifeboat_added_h{h}"), byt(f"restic_added_h{h}")
    lw, rw = wall(f"lifeboat_backup_h{h}"), wall(f"restic_backup_h{h}")
    if la is None or ra is None:
        break
    print(f"| {h} | {wall(f'churn_h{h}'):.1f} s | {lw:.1f} s | {la/MiB:.2f} MiB | {rw:.1f} s | {ra/MiB:.2f} MiB | {la/ra:.2f} | {load(f'lifeboat_backup_h{h}')} / {load(f'restic_backup_h{h}')} |")
    h += 1
if "lifeboat_repo_final" in rows:
    print()
    print(f"Final repositories: lifeboat {byt('lifeboat_repo_final')/MiB:.0f} MiB, restic {byt('restic_repo_final')/MiB:.0f} MiB.")

pairs = []
p = 1
while f"pair{p}_lifeboat_restore_jobs2" in rows:
    pairs.append(p)
    p += 1
if pairs:
    print()
    print("Paired rounds (each pair back to back on the final state; ratio = lifeboat ÷ the tool beside it):")
    print()
    print("| Pair | `pg_dump -Fc -Z0 > /dev/null` | lifeboat `backup postgres` | Ratio | lifeboat RSS | `pg_restore -j2` from file | lifeboat `restore --jobs 2` | Ratio | of which staging (writers up) | of which pg_restore (writers down) | lifeboat RSS | Load before |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    br, rr, dr = [], [], []
    for p in pairs:
        d, b = wall(f"pair{p}_pg_dump_Z0_devnull"), wall(f"pair{p}_lifeboat_backup")
        r, l = wall(f"pair{p}_pg_restore_j2_file"), wall(f"pair{p}_lifeboat_restore_jobs2")
        st, pg = num(f"pair{p}_lifeboat_staging_s"), num(f"pair{p}_lifeboat_pg_restore_s")
        br.append(b / d); rr.append(l / r)
        if st is not None:
            dr.append((l - st) / r)
        st_s = f"{st:.1f} s" if st is not None else "—"
        pg_s = f"{pg:.1f} s ({pg/r:.2f}×)" if pg is not None else "—"
        print(f"| {p} | {d:.1f} s | {b:.1f} s | {b/d:.2f}× | {rss(f'pair{p}_lifeboat_backup') or 0:.0f} MiB "
              f"| {r:.1f} s | {l:.1f} s | {l/r:.2f}× | {st_s} | {pg_s} | {rss(f'pair{p}_lifeboat_restore_jobs2') or 0:.0f} MiB "
              f"| {load(f'pair{p}_pg_dump_Z0_devnull')} |")
    def med(v):
        v = sorted(v)
        n = len(v)
        return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
    print()
    print(f"Backup ÷ raw dump: {min(br):.2f}–{max(br):.2f}× (median {med(br):.2f}×); "
          f"restore --jobs 2 ÷ pg_restore -j2: {min(rr):.2f}–{max(rr):.2f}× (median {med(rr):.2f}×).")
    wr, sw = [], []
    for p in pairs:
        w = wall(f"pair{p}_lifeboat_restore_jobs2_whole") if f"pair{p}_lifeboat_restore_jobs2_whole" in rows else None
        if w:
            wr.append(w / wall(f"pair{p}_pg_restore_j2_file"))
            sw.append(wall(f"pair{p}_lifeboat_restore_jobs2") / w)
    if wr:
        print(f"Restore --jobs 2 --whole-tables (plain pg_restore -j2 inside Lifeboat) ÷ pg_restore -j2: "
              f"{min(wr):.2f}–{max(wr):.2f}× (median {med(wr):.2f}×); "
              f"split ÷ whole-tables: {min(sw):.2f}–{max(sw):.2f}× (median {med(sw):.2f}×).")
    if dr:
        print(f"Restore --jobs 2 without its staging (wall − staging_seconds: writers down, "
              f"plus start-up and verification) ÷ pg_restore -j2: {min(dr):.2f}–{max(dr):.2f}× (median {med(dr):.2f}×).")
