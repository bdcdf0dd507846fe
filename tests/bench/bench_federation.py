#!/usr/bin/env python3
"""bench_federation.py — a whole federation on 127.0.0.1, measured end to end.

Real covey-coordinator and covey-agent processes, real CurveZMQ, a real SQLite
state; for models of ~0.2M, ~1M and ~10M parameters (mlp:784-256-10,
mlp:784-1270-10, mlp:784-12700-10) and 8, 32 and 128 agents it runs a few
training rounds and prints, against baselines measured in the same run:

 1. coordinator overhead per round = round wall time (coordinator log,
    "round started" -> "round committed") minus the slowest agent's training
    time (agent logs, "training" -> "update ready"), with where the rest goes:
    the download span (round start -> the last agent has the model), the tail
    after the last agent finished training (remaining uploads, aggregation,
    commit) and the commit itself (last update received -> committed);
 2. aggregation GB/s: printed by bench_aggr (this run, above), not repeated;
 3. model transfer GB/s through the real protocol (agent logs, "downloading the
    global model" -> "global model received", with bytes): one agent alone
    (single stream) and all agents of a round together (aggregate); and the
    upload of one update as the coordinator pulls it (agent "update ready" ->
    coordinator "update received", from when its pull could start); next to
    raw CurveZMQ with fl_net's options (bench_net --json, run here);
 4. the coordinator's peak RSS (VmHWM of /proc/PID/status, read before it is
    stopped) next to the goal 3 x model bytes + 64 KiB per agent; and the
    largest agent's VmHWM;
 5. the per-round cost of secure aggregation (SecAgg+, the default): rounds
    of the 1M model with 10, 50 and 100 agents with secagg.mode on and off,
    their median round wall times and the difference, with the time of the
    key phases (setup -> shares routed) and of unmasking (unmasking ->
    committed, i.e. reconstructing the secrets, removing the masks, decoding
    and the commit) from the coordinator log.

Sections 1, 3 and 4 run with secagg.mode = off, so they measure the
transport and aggregation of plain updates (section 5 adds what SecAgg costs).

Agents train on a tiny CSV (64 rows, 784 features + label, shared read-only)
for one epoch, and rounds.eval_every = 0, so that rounds are training rounds
only and training is short: what remains is the federation's own cost. Round
1 (connections, first touch of every buffer) is left out of the figures.

Bounded: each configuration has a deadline, the whole bench a time budget
(configurations past it are skipped, and said so); a configuration whose
agents would not fit in memory (from the measured agent peak RSS of the same
model, or an estimate) is skipped and said so. Every process is registered,
killed at the parent's death (PR_SET_PDEATHSIG) and reaped; 127.0.0.1 only.

Figures only: nothing passes or fails on a time. The machine (2 vCPUs) is
shared with other work, and N agents share its 2 cores, so training times
stretch with N; the figures are noisy.

usage: bench_federation.py [--quick]
  --quick       8 and 32 agents only, 0.2M and 1M models, 3 rounds (or COVEY_BENCH_QUICK=1)
  env COVEY_BIN (required: build directory), COVEY_BENCH_BUDGET_S (default 300),
      COVEY_KEEP_TMP=1 keeps the logs and states, COVEY_BENCH_ONLY=secagg runs section 5 only
"""
import calendar
import ctypes
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BIN = os.environ.get("COVEY_BIN", "")
COORD = os.path.join(BIN, "covey-coordinator")
AGENT = os.path.join(BIN, "covey-agent")
NET = os.path.join(BIN, "bench", "bench_net")

MODELS = [("0.2M", "mlp:784-256-10"), ("1M", "mlp:784-1270-10"), ("10M", "mlp:784-12700-10")]
COUNTS = [8, 32, 128]
SA_COUNTS = [10, 50, 100]   # agents in the secure-aggregation comparison (section 5)
ROWS, DIM, CLASSES = 64, 784, 10
CONFIG_DEADLINE_S = 150
MEM_FRACTION = 0.6        # of MemAvailable that the agents of one configuration may use
FLOWER = "Flower 1.10 on this machine: ~3 s per round for softmax (issue figure, not measured here)"

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _child_setup():
    # the child dies with this script, however it ends
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(*args, timeout=60):
    p = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout,
                       preexec_fn=_child_setup)
    if p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s%s" % (" ".join(args), p.returncode, p.stdout,
                                                     p.stderr))
    return p.stdout


def proc_status(pid, field):
    """kB value of a /proc/PID/status field (VmHWM, VmRSS), or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def cpu_seconds(pid):
    """utime + stime of a process, seconds, or None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def mem_available():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


# ------------------------------------------------------------------ logs

_KV = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def parse_line(line):
    d = {}
    for k, v in _KV.findall(line):
        d[k] = v[1:-1] if v.startswith('"') else v
    if "t" in d:  # a field named t (e.g. a threshold) gives way to the time below
        d["t_field"] = d["t"]
    if "ts" in d:
        # 2026-11-26T05:26:32.204Z
        t = time.strptime(d["ts"][:19], "%Y-%m-%dT%H:%M:%S")
        d["t"] = calendar.timegm(t) + int(d["ts"][20:23]) / 1000.0
    return d


def read_log(path):
    try:
        with open(path, errors="replace") as f:
            return [parse_line(l) for l in f if l.startswith("ts=")]
    except OSError:
        return []


def tail(path, n):
    try:
        with open(path, errors="replace") as f:
            return "".join("      " + l[:300] + ("\n" if not l.endswith("\n") else "")
                           for l in f.readlines()[-n:])
    except OSError:
        return ""


def count_in_file(path, needle):
    try:
        with open(path, "rb") as f:
            return f.read().count(needle)
    except OSError:
        return 0


# ------------------------------------------------------------- processes

class Procs:
    """Every process this script starts; stopped and reaped by close()."""

    def __init__(self):
        self.procs = []

    def spawn(self, args, log_path, env=None):
        log = open(log_path, "ab")
        try:
            p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log,
                                 stdin=subprocess.DEVNULL, env=env, preexec_fn=_child_setup)
        finally:
            log.close()
        self.procs.append(p)
        return p

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.time() + 10
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []


# ------------------------------------------------------------ one config

def numel(spec):
    dims = [int(x) for x in spec.split(":")[1].split("-")]
    return sum(dims[i] * dims[i + 1] + dims[i + 1] for i in range(len(dims) - 1))


def run_config(tmp, keys, csv, spec, n, rounds, secagg="off"):
    """One federation: n agents, `rounds` rounds, secagg.mode `secagg`. Returns a
    dict of raw results."""
    d = tempfile.mkdtemp(prefix="cfg-", dir=tmp)
    state = os.path.join(d, "state")
    port = free_port()
    endpoint = "tcp://127.0.0.1:%d" % port
    sets = {
        "federation.endpoint": endpoint, "federation.name": "bench", "federation.enroll_endpoint": "off",
        "rounds.rounds": rounds, "rounds.min_fit": n, "rounds.min_available": n,
        "rounds.eval_every": 0, "training.epochs": 1, "training.batch": 32,
        "rounds.train_timeout": 120, "rounds.stale_after": 30,
        # "plus": secure aggregation with SecAgg+'s Harary graph at every size;
        # "active": the active-server model (identity CA, signed keys, R3)
        "secagg.mode": "on" if secagg in ("plus", "active") else secagg,
    }
    if secagg == "plus":
        sets["secagg.full_max"] = 2
    certs = []
    if secagg == "active":
        ca = os.path.join(d, "ca.key")
        sets["secagg.threat"] = "semi-malicious"
        sets["secagg.identity_ca"] = run(COORD, "ca", "init", "--out", ca).split()[0]
        for i in range(n):
            ident = re.search(r"--identity ([0-9a-f]{64})",
                              run(AGENT, "identity", "--key", keys[i][0])).group(1)
            cert = os.path.join(d, "a%03d.cert" % i)
            run(COORD, "ca", "sign", "--ca", ca, "--agent-key", keys[i][1], "--identity", ident,
                "--out", cert)
            certs.append(["--identity-ca", ca + ".pub", "--identity-cert", cert])
    args = [COORD, "init", "--state", state, "--model", spec]
    for k, v in sets.items():
        args += ["--set", "%s=%s" % (k, v)]
    run(*args)
    for i in range(n):
        run(COORD, "agents", "add", "a%03d" % i, keys[i][1], "--state", state)

    procs = Procs()
    res = {"spec": spec, "n": n, "rounds": rounds, "dir": d}
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    clog = os.path.join(d, "coordinator.log")
    alogs = [os.path.join(d, "a%03d.log" % i) for i in range(n)]
    try:
        coord = procs.spawn([COORD, "run", "--state", state, "--log-level", "info"], clog, env)
        deadline = time.time() + 30
        while count_in_file(clog, b"coordinator started") == 0:
            if coord.poll() is not None or time.time() > deadline:
                raise RuntimeError("coordinator did not start:\n" + tail(clog, 5))
            time.sleep(0.05)
        res["coord_base_rss"] = proc_status(coord.pid, "VmRSS")
        agents = []
        for i in range(n):
            agents.append(procs.spawn(
                [AGENT, "run", "--coordinator", endpoint, "--server-key",
                 os.path.join(state, "server.key.pub"), "--key", keys[i][0],
                 "--data", csv, "--test-data", csv, "--seed", str(i + 1)]
                + (certs[i] if certs else []), alogs[i], env))
        t_start = time.time()
        deadline = t_start + CONFIG_DEADLINE_S
        done = 0
        cpu0 = None
        while True:
            done = count_in_file(clog, b'msg="round committed"')
            if done >= 1 and cpu0 is None:
                # CPU use over rounds 2..R, as coordinator and agents see it
                cpu0 = (time.time(), cpu_seconds(coord.pid),
                        sum(cpu_seconds(a.pid) or 0 for a in agents))
            if done >= rounds:
                break
            if coord.poll() is not None:
                raise RuntimeError("coordinator exited %d; its log ends:\n%s"
                                   % (coord.returncode, tail(clog, 3)))
            dead = [i for i, a in enumerate(agents) if a.poll() is not None]
            if dead:
                raise RuntimeError("agent %d exited; its log ends:\n%s" % (dead[0],
                                                                          tail(alogs[dead[0]], 3)))
            if time.time() > deadline:
                res["timeout"] = True
                break
            time.sleep(0.1)
        res["elapsed"] = time.time() - t_start
        if cpu0 and done >= 2:
            wall = time.time() - cpu0[0]
            c1 = cpu_seconds(coord.pid)
            if c1 is not None and cpu0[1] is not None and wall > 0:
                res["coord_cpu"] = (c1 - cpu0[1]) / wall
                res["agents_cpu"] = (sum(cpu_seconds(a.pid) or 0 for a in agents) - cpu0[2]) / wall
        # peak RSS, read before anything is stopped
        res["coord_hwm"] = proc_status(coord.pid, "VmHWM")
        res["agent_hwm"] = max([proc_status(a.pid, "VmHWM") or 0 for a in agents] or [0])
    finally:
        procs.close()
    res.update(analyse(clog, alogs, rounds))
    return res


def analyse(clog, alogs, rounds):
    """Per-round figures from the logs."""
    c = read_log(clog)
    start, commit, last_recv, recvs = {}, {}, {}, {}
    sa_setup, sa_routed, sa_unmask = {}, {}, {}
    graph = None
    for e in c:
        m = e.get("msg")
        if m == "secure aggregation set up":
            sa_setup[int(e["round"])] = e["t"]
            graph = "%s k=%s t=%s" % (e.get("graph"), e.get("k"), e.get("t_field"))
        elif m == "secure aggregation: shares routed":
            sa_routed[int(e["round"])] = e["t"]
        elif m in ("secure aggregation: unmasking", "secure aggregation: consistency check"):
            # the active model's consistency round counts as part of unmasking
            sa_unmask.setdefault(int(e["round"]), e["t"])
        if m == "round started":
            start[int(e["round"])] = e["t"]
        elif m == "round committed":
            commit[int(e["round"])] = e["t"]
        elif m == "update received":
            last_recv[int(e["round"])] = e["t"]
            recvs.setdefault(int(e["round"]), []).append((e["t"], e["agent"]))
    warns = sum(1 for e in c if e.get("level") in ("warn", "error"))
    # per agent and round: download (start, end, bytes), training (start, end)
    per_round = {}
    stalls = 0
    for path in alogs:
        name = os.path.basename(path)[:-4]   # a003.log -> a003, the name the coordinator logs
        dl = None
        for e in read_log(path):
            m = e.get("msg")
            if m == "downloading the global model":
                dl = [e["t"], None, int(e["bytes"])]
            elif m == "global model received" and dl:
                dl[1] = e["t"]
            elif m == "model transfer stalled; resuming":
                stalls += 1
            elif m == "training":
                r = int(e["round"])
                rec = per_round.setdefault(r, {}).setdefault(name, {})
                rec["tr0"] = e["t"]
                if dl and dl[1] is not None:
                    rec["dl"] = tuple(dl)
                dl = None
            elif m in ("update ready", "masked update ready"):
                r = int(e["round"])
                per_round.setdefault(r, {}).setdefault(name, {})["tr1"] = e["t"]
    out = []
    for r in sorted(commit):
        if r not in start or r not in per_round:
            continue
        recs = [x for x in per_round[r].values() if "tr0" in x and "tr1" in x]
        if not recs:
            continue
        wall = commit[r] - start[r]
        train_max = max(x["tr1"] - x["tr0"] for x in recs)
        dls = [x["dl"] for x in recs if "dl" in x]
        row = {"round": r, "wall": wall, "train_max": train_max, "overhead": wall - train_max,
               "tail": commit[r] - max(x["tr1"] for x in recs),
               "commit": commit[r] - last_recv.get(r, commit[r])}
        if dls:
            row["dl_span"] = max(x[1] for x in dls) - start[r]
            span = max(x[1] for x in dls) - min(x[0] for x in dls)
            total = sum(x[2] for x in dls)
            row["dl_bytes"] = dls[0][2]
            row["dl_agg_gbs"] = total / span / 1e9 if span > 0 else None
        # the coordinator pulls one update at a time: an update's pull starts when it is
        # ready or when the previous pull ends, whichever is later, and ends when received
        prev, ul = start[r], []
        for t, name in sorted(recvs.get(r, [])):
            rec = per_round[r].get(name)
            if rec and "tr1" in rec and rec.get("dl"):
                t0 = max(rec["tr1"], prev)
                if t > t0:
                    ul.append(rec["dl"][2] / (t - t0) / 1e9)
            prev = t
        row["ul_gbs"] = statistics.median(ul) if ul else None
        if r in sa_setup and r in sa_routed:
            row["sa_keys"] = sa_routed[r] - sa_setup[r]
        if r in sa_unmask:
            row["sa_unmask"] = commit[r] - sa_unmask[r]
        out.append(row)
    return {"per_round": out, "warnings": warns, "stalls": stalls, "sa_graph": graph}


def med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


# ------------------------------------------------------------------ main

def fmt(v, spec="%.3f", none="-"):
    return none if v is None else spec % v


def main():
    quick = "--quick" in sys.argv[1:] or os.environ.get("COVEY_BENCH_QUICK") == "1"
    if not BIN or not os.access(COORD, os.X_OK) or not os.access(AGENT, os.X_OK):
        print("bench_federation: COVEY_BIN must name a build directory with covey-coordinator "
              "and covey-agent (run 'make bench')")
        return 2
    budget = float(os.environ.get("COVEY_BENCH_BUDGET_S", "300"))
    t_begin = time.time()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    models = MODELS[:2] if quick else MODELS
    counts = COUNTS[:2] if quick else COUNTS
    base_rounds = 3 if quick else 4

    tmp = tempfile.mkdtemp(prefix="covey-bench-fed-")
    try:
        print("bench_federation: covey-coordinator + covey-agent processes on 127.0.0.1, "
              "CurveZMQ, SQLite")
        print("agents: %d-row CSV (%d features), 1 epoch, batch 32; rounds.eval_every=0; "
              "round 1 excluded (warm-up)" % (ROWS, DIM))
        print("machine: %d vCPUs shared with other workers; N agents share them, so figures "
              "are noisy\n" % os.cpu_count())

        # data shared by every agent
        rng = random.Random(1)
        csv = os.path.join(tmp, "tiny.csv")
        with open(csv, "w") as f:
            for i in range(ROWS):
                f.write("%d," % (i % CLASSES))
                f.write(",".join("%.3f" % rng.random() for _ in range(DIM)))
                f.write("\n")
        # agent keys, made once for every configuration
        nmax = max(counts + SA_COUNTS)
        keys = []
        for i in range(nmax):
            path = os.path.join(tmp, "a%03d.key" % i)
            keys.append((path, run(AGENT, "keygen", "--out", path).strip()))

        # transport baseline, same run
        net = None
        if os.access(NET, os.X_OK):
            try:
                out = subprocess.run([NET, "--json"], capture_output=True, text=True,
                                     timeout=120, preexec_fn=_child_setup).stdout
                net = json.loads(out.strip().splitlines()[-1])
            except (subprocess.TimeoutExpired, ValueError, IndexError) as e:
                print("bench_net baseline failed: %r" % e)
        else:
            print("bench_net absent (%s): transfer ratios omitted" % NET)

        # plan: cheap configurations first, so a tight budget still shows the small ones
        plan = [("1 agent", label, spec, 1, 3, "off") for label, spec in models[1:]]
        for n in counts:
            for label, spec in models:
                # fewer rounds where one round moves gigabytes, to keep the bench short
                heavy = numel(spec) * 4 * n
                plan.append(("", label, spec, n, 2 if heavy > 1e9 else
                             3 if heavy > 1e8 or n >= 128 else base_rounds, "off"))
        # secure aggregation on and off, 1M model (section 5)
        for n in SA_COUNTS[:2] if quick else SA_COUNTS:
            for mode in ("off", "on", "plus", "active"):
                plan.append(("secagg", MODELS[1][0], MODELS[1][1], n, 3, mode))
        if os.environ.get("COVEY_BENCH_ONLY") == "secagg":
            plan = [p for p in plan if p[0] == "secagg"]
        results, skipped = [], []
        agent_hwm = {}     # model label -> measured peak RSS of one agent
        for kind, label, spec, n, rounds, secagg in plan:
            mbytes = numel(spec) * 4
            est = agent_hwm.get(label, 6 * mbytes + 32 * 2**20)
            need = n * est
            avail = mem_available()
            if need > MEM_FRACTION * avail:
                skipped.append("%s x %d agents: skipped, would need ~%.1f GiB of agent memory "
                               "(%d x %.0f MiB%s) but %.1f GiB is available (limit %.0f%%)"
                               % (label, n, need / 2**30, n, est / 2**20,
                                  " measured" if label in agent_hwm else " estimated",
                                  avail / 2**30, 100 * MEM_FRACTION))
                continue
            if time.time() - t_begin > budget:
                skipped.append("%s x %d agents: skipped, time budget of %.0f s spent "
                               "(COVEY_BENCH_BUDGET_S)" % (label, n, budget))
                continue
            t0 = time.time()
            try:
                r = run_config(tmp, keys, csv, spec, n, rounds, secagg)
            except (RuntimeError, subprocess.SubprocessError, OSError) as e:
                skipped.append("%s x %d agents: failed: %s" % (label, n, str(e)[:1500]))
                continue
            r["label"], r["kind"], r["secs"] = label, kind, time.time() - t0
            r["secagg"] = secagg
            r["model_bytes"] = mbytes
            if r.get("agent_hwm"):
                agent_hwm[label] = max(agent_hwm.get(label, 0), r["agent_hwm"])
            results.append(r)
            if not os.environ.get("COVEY_KEEP_TMP"):
                shutil.rmtree(r["dir"], ignore_errors=True)
            print("  ran %-4s x %3d agents, %d rounds, secagg %-3s: %.1f s%s" %
                  (label, n, rounds, secagg, r["secs"],
                   " (deadline hit)" if r.get("timeout") else ""), flush=True)
        if quick:
            skipped.append("quick run: %s models and %s agents only (no 10M, no 128 agents)"
                           % ("/".join(m[0] for m in models), "/".join(map(str, counts))))
        report(results, skipped, net)
        print("\nbench_federation: %.1f s" % (time.time() - t_begin))
    finally:
        if os.environ.get("COVEY_KEEP_TMP"):
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def report(results, skipped, net):
    fed = sorted([r for r in results if not r["kind"]], key=lambda r: (r["model_bytes"], r["n"]))
    one = [r for r in results if r["kind"] == "1 agent"]
    sa = [r for r in results if r["kind"] == "secagg"]

    print("\n1. Coordinator overhead per round (median of rounds 2..R; seconds)")
    print("   overhead = round wall time - slowest agent's training time (training -> update "
          "ready, CPU-contended)")
    hdr = "%-5s %4s %2s %8s %9s %9s %6s %9s %8s %8s %6s %7s %5s" % (
        "model", "N", "R", "wall", "slowest", "overhead", "ovh%", "download", "tail", "commit",
        "c.CPU", "a.CPU", "warn")
    print("   " + hdr)
    for r in fed:
        rows = [x for x in r["per_round"] if x["round"] >= 2] or r["per_round"]
        wall, tm, ovh = med(rows, "wall"), med(rows, "train_max"), med(rows, "overhead")
        print("   %-5s %4d %2d %8s %9s %9s %6s %9s %8s %8s %6s %7s %5d%s" % (
            r["label"], r["n"], len(rows), fmt(wall), fmt(tm), fmt(ovh),
            fmt(100 * ovh / wall if ovh is not None and wall else None, "%.0f%%"),
            fmt(med(rows, "dl_span")), fmt(med(rows, "tail")), fmt(med(rows, "commit")),
            fmt(100 * r["coord_cpu"] if "coord_cpu" in r else None, "%.0f%%"),
            fmt(100 * r["agents_cpu"] if "agents_cpu" in r else None, "%.0f%%"),
            r["warnings"], "  (deadline hit)" if r.get("timeout") else ""))
    print("   download = round start -> last agent has the model; tail = last agent done "
          "training -> committed")
    print("   (remaining serial uploads + aggregation + commit); commit = last update received "
          "-> committed")
    print("   c.CPU / a.CPU = CPU time of the coordinator / of all agents together per second "
          "of wall time")
    print("   over rounds 2..R (200% = both vCPUs); warn = warning and error lines in the "
          "coordinator log")
    print("   reference: " + FLOWER)

    print("\n2. Aggregation GB/s next to single-pass memory bandwidth: see bench_aggr "
          "(this run)")

    cs = net.get("curve_stream") if net else None
    cw = net.get("curve_window") if net else None
    b2 = net.get("blake2b") if net else None
    print("\n3. Model transfer through the protocol (agent: downloading -> global model received,"
          " incl. its")
    print("   BLAKE2b of the whole model) vs raw CurveZMQ measured now (bench_net: stream %s, "
          "window 4 %s,"  % (fmt(cs), fmt(cw)))
    print("   plain ZeroMQ %s, TCP %s, BLAKE2b %s GB/s); goal >= 80%% of raw CurveZMQ stream"
          % (fmt(net.get("plain_stream") if net else None),
             fmt(net.get("tcp_stream") if net else None), fmt(b2)))
    if cs and b2:
        serial = 1 / (1 / cs + 1 / b2)
        print("   (the transfer followed by a separate BLAKE2b pass over the model, as the agent "
              "does it,\n   cannot exceed %.3f GB/s = %.0f%% of the stream)"
              % (serial, 100 * serial / cs))
    print("   %-5s %4s %8s %10s %8s %10s %8s" % ("model", "N", "MB", "download", "vs raw",
                                              "upload", "vs raw"))
    for r in one + fed:
        rows = [x for x in r["per_round"] if x["round"] >= 2] or r["per_round"]
        dl, ul, by = med(rows, "dl_agg_gbs"), med(rows, "ul_gbs"), med(rows, "dl_bytes")
        print("   %-5s %4d %8s %10s %8s %10s %8s%s" % (
            r["label"], r["n"], fmt(by / 1e6 if by else None, "%.1f"), fmt(dl),
            fmt(100 * dl / cs if dl and cs else None, "%.0f%%"),
            fmt(ul), fmt(100 * ul / cs if ul and cs else None, "%.0f%%"),
            "   <- single stream: one agent alone" if r["kind"] else ""))
    print("   download = bytes of all agents' downloads / their span (they take turns, 4 at a")
    print("   time with transfer.window = 1 MiB, while those served already train and upload on")
    print("   the same 2 vCPUs: compare the round wall time of section 1 too);")
    print("   upload = one update pulled by the coordinator (serially, one agent at a time): "
          "bytes / (received -")
    print("   max(ready, previous update received)), median over updates")
    stalls = sum(r["stalls"] for r in results)
    print("   transfer stalls (agent got nothing for 5 s and asked again; later re-requests of the")
    print("   same wait, at 10, 20, 30 s, are not counted): %d" % stalls)

    print("\n4. Coordinator peak RSS (VmHWM) vs goal 3 x model bytes + 64 KiB per agent (MiB)")
    print("   %-5s %4s %9s %9s %9s %8s %13s %9s %10s" % (
        "model", "N", "VmHWM", "at start", "goal", "HWM/goal", "KiB/agent", "marginal",
        "agent HWM"))
    prev = {}   # model -> (N, VmHWM) of the previous federation of that model
    for r in one + fed:
        goal = 3 * r["model_bytes"] + 64 * 1024 * r["n"]
        hwm, base = r.get("coord_hwm"), r.get("coord_base_rss")
        p = prev.get(r["label"])
        marginal = (hwm - p[1]) / 1024 / (r["n"] - p[0]) if hwm and p and r["n"] > p[0] else None
        if hwm:
            prev[r["label"]] = (r["n"], hwm)
        print("   %-5s %4d %9s %9s %9.1f %8s %13s %9s %10s" % (
            r["label"], r["n"], fmt(hwm / 2**20 if hwm else None, "%.1f"),
            fmt(base / 2**20 if base else None, "%.1f"), goal / 2**20,
            fmt(hwm / goal if hwm else None, "%.2f"),
            fmt((hwm - base) / 1024 / r["n"] if hwm and base else None, "%.0f") + " (64)",
            fmt(marginal, "%.0f"),
            fmt(r["agent_hwm"] / 2**20 if r.get("agent_hwm") else None, "%.1f")))
    print("   at start = VmRSS once the coordinator has started (model loaded, no agent yet);")
    print("   KiB/agent = (VmHWM - at start) / N, goal in brackets: it also spreads over N what")
    print("   grows with the model (the sealed checkpoint at a commit, SQLite's cache) and the")
    print("   credit window (transfer.window); marginal = VmHWM growth per added agent from the")
    print("   row above of the same model; agent HWM = the largest agent's VmHWM")

    print("\n5. Secure aggregation per round, 1M model, median of rounds 2..R (seconds): off, SecAgg "
          "(default: full graph")
    print("   up to secagg.full_max = 100 agents) and SecAgg+ (Harary graph, secagg.full_max = 2)")
    print("   and the active-server model (identity CA: signed keys and the consistency round, "
          "full graph)")
    print("   %-4s %7s | %-20s %7s %7s %6s %6s | %-20s %7s %7s %6s %6s | %7s %7s %6s %6s" % (
        "N", "off", "SecAgg graph", "wall", "added", "keys", "unmask", "SecAgg+ graph", "wall",
        "added", "keys", "unmask", "active", "added", "keys", "unmask"))
    for n in sorted({r["n"] for r in sa}):
        def rows(mode):
            return [x for r in sa if r["n"] == n and r["secagg"] == mode
                    for x in r["per_round"] if x["round"] >= 2]
        def graph(mode):
            g = [r.get("sa_graph") for r in sa if r["n"] == n and r["secagg"] == mode]
            return (g[0] or "-") if g else "-"
        w_off = med(rows("off"), "wall")
        cols = []
        for mode in ("on", "plus", "active"):
            w = med(rows(mode), "wall")
            added = w - w_off if w is not None and w_off is not None else None
            cols.append(("%-20s " % graph(mode) if mode != "active" else "") +
                        "%7s %7s %6s %6s" % (fmt(w), fmt(added), fmt(med(rows(mode), "sa_keys")),
                                             fmt(med(rows(mode), "sa_unmask"))))
        print("   %-4d %7s | %s | %s | %s" % (n, fmt(w_off), cols[0], cols[1], cols[2]))
    print("   keys = setup -> shares routed (overlaps the agents' download and training); unmask =")
    print("   unmasking -> committed (shares, reconstruction, mask removal, decoding, commit; active:")
    print("   from the consistency check, so the R3 round trip is included). All N")
    print("   agents share this machine's 2 vCPUs, so 'added' includes N clients' mask expansion,")
    print("   (k+1) x 4 MB of ChaCha20 each, done one after another here and in parallel on real")
    print("   devices: per client it is (k+1) x m words (bench_secagg, section 1), growing as k m.")
    print("   reference: Flower 1.10's SecAgg+ adds ~9-12 s to a softmax round with 4 or 16 "
          "clients (issue figure)")

    if skipped:
        print("\nNot measured:")
        for s in skipped:
            print("   " + s)


if __name__ == "__main__":
    sys.exit(main())
