#!/usr/bin/python3
"""Helpers of bench/failover.sh, none of them Lifeboat code.

  writer ACKS USER TICK dns BIND NAME MAP
  writer ACKS USER TICK hosts SERVER[,SERVER...]
      The independent writer. Every TICK seconds it commits one numbered row
      (`INSERT INTO bench_writes (id) VALUES (n)`, autocommit) and, once the
      server acknowledged it, appends `id <TAB> unix time of the ack <TAB>
      server <TAB> unix time the INSERT was sent` to ACKS (line-buffered;
      the commit happened between the two times). Each attempt takes a new id, so an
      attempt whose outcome is unknown (the connection broke during the
      commit) is never counted as acknowledged. `dns`: whenever it
      (re)connects it asks the DNS server BIND (`PORT` on 127.0.0.1, or
      `ADDR:PORT`) for NAME's A records (`dig`, no cache) and maps each
      answered address to a server with MAP (`192.0.2.10=5432,...`; a server
      is a port on 127.0.0.1 or `HOST:PORT`); `hosts`: a fixed list of
      servers (a Patroni client knows both nodes). The third column of ACKS
      is the server as MAP or the list spells it. Either way libpq's
      `target_session_attrs=read-write` picks the writable one among them,
      and the connection is kept until an error. Errors go to ACKS.errors
      (each distinct message once in a row). Password: PGPASSWORD. Ids
      start at FAILOVER_WRITER_FIRST_ID (default 1). Stops on SIGTERM.

  measure ACKS T_INJECT T_END PORT USER
      After one event (fault injected or command started at T_INJECT, the
      command or the recovery done at T_END): waits (up to 120 s) for an
      ack later than T_END + 1 s, then prints, tab-separated:
        gap_s      the longest interval between consecutive acks from the
                   last ack before T_INJECT to the first after T_END + 1 s;
        back_s     from T_INJECT to the ack that ended that interval;
        missing    acknowledged ids (all so far) absent from bench_writes
                   on the server at PORT (the current primary);
        acked      how many ids were acknowledged so far;
        on_new     `yes` when every ack after T_END + 1 s came from PORT.

  report EVENTS_TSV
      median and max per system and kind of every column.
"""
import math
import os
import signal
import subprocess
import sys
import time


def writer(args):
    import psycopg2
    acks_path, user, tick, mode = args[0], args[1], float(args[2]), args[3]
    if mode == 'dns':
        bind_host, bind_port = split_server(args[4])
        name = args[5]
        mapping = dict(kv.split('=') for kv in args[6].split(','))
    else:
        fixed = args[4].split(',')
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))

    def ports():
        if mode != 'dns':
            return fixed
        try:
            out = subprocess.run(
                ['dig', '+short', '+norecurse', '+time=1', '+tries=1',
                 '@' + bind_host, '-p', bind_port, name, 'A'],
                capture_output=True, text=True, timeout=3).stdout
        except subprocess.TimeoutExpired:
            return []
        return [mapping[a] for a in out.split() if a in mapping]

    acks = open(acks_path, 'a', buffering=1)
    errors = open(acks_path + '.errors', 'a', buffering=1)
    last_error = None
    conn = None
    conn_port = None
    # The first id is FAILOVER_WRITER_FIRST_ID (default 1): two writers on
    # one table keep apart.
    n = int(os.environ.get('FAILOVER_WRITER_FIRST_ID', '1')) - 1
    next_t = time.time()
    while not stop:
        n += 1
        try:
            if conn is None:
                ps = ports()
                if not ps:
                    raise RuntimeError('DNS answered no known address')
                servers = [split_server(p) for p in ps]
                conn = psycopg2.connect(
                    host=','.join(h for h, _ in servers),
                    port=','.join(p for _, p in servers),
                    dbname='postgres', user=user, connect_timeout=2,
                    target_session_attrs='read-write',
                    # A partitioned server never answers and never closes:
                    # statement_timeout runs on the server, so only the
                    # client's TCP timeout ends a write in flight to it
                    # (without it the writer hung until TCP gave up, ~15 min).
                    tcp_user_timeout=2000, keepalives=1, keepalives_idle=1,
                    keepalives_interval=1, keepalives_count=2,
                    options='-c statement_timeout=10000')
                conn.autocommit = True
                at = (conn.info.host, str(conn.info.port))
                conn_port = next((p for p, s in zip(ps, servers) if s == at),
                                 f'{at[0]}:{at[1]}')
            sent = time.time()
            with conn.cursor() as cur:
                cur.execute('INSERT INTO bench_writes (id) VALUES (%s)', (n,))
            acks.write(f'{n}\t{time.time():.6f}\t{conn_port}\t{sent:.6f}\n')
            last_error = None
        except Exception as e:  # any failure: drop the connection, retry next tick
            text = str(e).strip()
            msg = text.splitlines()[0] if text else type(e).__name__
            if msg != last_error:
                errors.write(f'{time.time():.6f}\t{n}\t{msg}\n')
                last_error = msg
            if conn is not None:
                try:
                    conn.close()
                except Exception:
                    pass
            conn = None
        next_t += tick
        delay = next_t - time.time()
        if delay > 0:
            time.sleep(delay)
        else:
            next_t = time.time()


def split_server(text):
    """`PORT` (on 127.0.0.1) or `HOST:PORT` -> (host, port)."""
    host, _, port = text.rpartition(':')
    return (host or '127.0.0.1', port)


def read_acks(path):
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.rstrip('\n').split('\t')
            if len(parts) >= 3:
                rows.append((int(parts[0]), float(parts[1]), parts[2]))
    return rows


def measure(args):
    import psycopg2
    acks_path, t_inject, t_end, port, user = args[0], float(args[1]), float(args[2]), args[3], args[4]
    deadline = time.time() + 120
    while True:
        acks = read_acks(acks_path)
        if acks and acks[-1][1] > t_end + 1:
            break
        if time.time() > deadline:
            print('nan\tnan\tnan\tnan\tnan')
            return
        time.sleep(0.2)
    times = sorted(t for _, t, _ in acks)
    before = [t for t in times if t <= t_inject]
    after = [t for t in times if t > t_end + 1]
    window = ([before[-1]] if before else []) + \
        [t for t in times if t_inject < t <= t_end + 1] + [after[0]]
    gap, end = 0.0, window[0]
    for a, b in zip(window, window[1:]):
        if b - a > gap:
            gap, end = b - a, b
    ids = [i for i, _, _ in acks]
    # Where the writer wrote after the event: the new primary's port?
    resumed = 'yes' if all(p == port for _, t, p in acks if t > t_end + 1) else 'no'

    conn = psycopg2.connect(host='127.0.0.1', port=port, dbname='postgres',
                            user=user, connect_timeout=5)
    with conn.cursor() as cur:
        cur.execute('SELECT count(*) FROM bench_writes WHERE id = ANY(%s)', (ids,))
        found = cur.fetchone()[0]
    conn.close()
    print(f'{gap:.3f}\t{end - t_inject:.3f}\t{len(ids) - found}\t{len(ids)}\t{resumed}')


def num(v):
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def report(args):
    import csv
    rows = list(csv.DictReader(open(args[0]), delimiter='\t'))
    for r in rows:
        r['to_cmd_s'] = f"{float(r['t_cmd']) - float(r['t_event']):.3f}"
        r['cmd_only_s'] = f"{float(r['t_end']) - float(r['t_cmd']):.3f}"
    cols = [
        ('to_cmd_s', 'event -> command start s'),
        ('cmd_only_s', 'command wall time s'),
        ('rto_writes_s', 'record: RTO writes accepted s'),
        ('rto_dns_s', 'record: RTO DNS answering s'),
        ('rpo_s', 'record: RPO s'),
        ('writer_gap_s', 'writer: longest gap between acks s'),
        ('writer_back_s', 'writer: event start -> first ack after s'),
        ('lost', 'acknowledged rows missing'),
    ]
    keys = []
    for r in rows:
        k = (r['system'], r['kind'])
        if k not in keys:
            keys.append(k)
    print('median / max per system and kind (n = events)')
    for system, kind in keys:
        rs = [r for r in rows if (r['system'], r['kind']) == (system, kind)]
        loads = [float(r['load_1_5_15'].split()[0]) for r in rs]
        extra = ''
        if kind == 'failover' and system == 'lifeboat':
            accepted = sum(1 for r in rs if r['accept_data_loss'] == 'yes')
            extra = f', --accept-data-loss needed {accepted}/{len(rs)}'
        bad = [r['exit'] for r in rs if r['exit'] not in ('0', '-')]
        if bad:
            extra += f', non-zero exits {bad}'
        elsewhere = sum(1 for r in rs if r['writer_on_new'] != 'yes')
        if elsewhere:
            extra += f', writer acked by another server after {elsewhere} events'
        print(f"\n{system} {kind}: n={len(rs)}, 1-min load {min(loads):.1f}-{max(loads):.1f}{extra}")
        for c, label in cols:
            if c == 'cmd_only_s' and system.startswith('patroni'):
                label = 'fault -> replica writable (psql poll) s'

            xs = sorted(x for x in (num(r[c]) for r in rs) if x is not None)
            if not xs or (c == 'to_cmd_s' and xs[-1] == 0):
                continue
            med = xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2
            print(f"  {label:44s} {med:9.3f} / {xs[-1]:9.3f}   ({len(xs)} values)")


def auto_report(args):
    """median / max per profile of the automatic rounds, against issue 20's
    goals (from the injected fault: fast profile writes <= 10 s, DNS <= 15 s;
    seed profile both <= 120 s)."""
    import csv
    rows = list(csv.DictReader(open(args[0]), delimiter='\t'))
    goals = {'fast': (10.0, 15.0), 'seed': (120.0, 120.0)}
    cols = [
        ('writes_s', 'fault -> writes accepted (writer) s'),
        ('dns_s', 'fault -> DNS answering (dig) s'),
        ('rec_rto_writes_s', 'record: RTO writes accepted s'),
        ('rec_rto_dns_s', 'record: RTO DNS answering s'),
        ('rec_rpo_s', 'record: RPO s'),
        ('lost', 'acknowledged rows lost'),
        ('acked_after_bump', 'acks by the old primary after the bump'),
    ]
    print('\nautomatic failover on the test bed: median / max per profile')
    for profile in dict.fromkeys(r['profile'] for r in rows):
        rs = [r for r in rows if r['profile'] == profile]
        faults = ', '.join(f"{f} {sum(1 for r in rs if r['fault'] == f)}"
                           for f in dict.fromkeys(r['fault'] for r in rs))
        print(f"\n{profile}: n={len(rs)} ({faults})")
        for c, label in cols:
            xs = sorted(x for x in (num(r[c]) for r in rs) if x is not None)
            if not xs:
                continue
            med = xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2
            print(f"  {label:44s} {med:9.3f} / {xs[-1]:9.3f}   ({len(xs)} values)")
        if profile in goals:
            gw, gd = goals[profile]
            def worst(col):
                xs = [num(r[col]) for r in rs]
                return math.inf if any(x is None for x in xs) else max(xs)
            w, d = worst('writes_s'), worst('dns_s')
            print(f"  goal writes <= {gw:.0f} s: {'met' if w <= gw else 'NOT met'} (max {w:.1f}); "
                  f"DNS <= {gd:.0f} s: {'met' if d <= gd else 'NOT met'} (max {d:.1f})")


if __name__ == '__main__':
    {'writer': writer, 'measure': measure, 'report': report,
     'auto-report': auto_report}[sys.argv[1]](sys.argv[2:])
