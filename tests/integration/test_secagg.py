"""test_secagg.py — secure aggregation (SecAgg) end to end with real processes:
a real coordinator and scripted participants (tests/tools/sa_agent.c) that run
the client side of libcovey's protocol but offer KNOWN updates (every
coordinate = --value, weight --samples). The committed model is exported and
compared with the weighted mean the survivors' inputs must give, so each test
checks that the coordinator decoded the sum of exactly the right inputs:

- agents killed (SIGKILL) at every phase, with the full graph (13 agents)
  and with SecAgg+'s Harary graph (20 agents above secagg.full_max = 10) — before advertising keys, before
  sending shares, before their masked input, before revealing unmasking
  shares — while at least t survive: the result is the exact weighted mean
  over U3 (the agents whose masked input arrived, including the one that died
  while unmasking); nobody else's value leaks into it;
- below the threshold the attempt fails cleanly and the retry (fresh keys,
  fewer agents) commits the exact mean of the survivors;
- replayed, wrong-round, truncated and duplicated phase messages are refused
  with an error and counted, and the round still gives the exact result;
- a forged (well-formed) unmasking share is found among t + 2, discarded and
  its sender named, and the sum is still exact;
- status shows the secure-aggregation phase, the graph, k, t and the
  participants per phase while a round runs.
"""

import json
import os
import re
import signal
import struct

import covey
from covey import COORD, Federation, run

SA_AGENT = os.path.join(covey.BIN, "tools", "sa_agent")
LEVELS = 65536
MAX_WEIGHT = 100000
CLIP = 1.0


def read_safetensors(path):
    """All tensors of a safetensors file, concatenated in file-offset order."""
    with open(path, "rb") as f:
        raw = f.read()
    (hlen,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + hlen])
    header.pop("__metadata__", None)
    out = []
    for name, t in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        a, b = t["data_offsets"]
        data = raw[8 + hlen + a:8 + hlen + b]
        out.extend(struct.unpack("<%df" % (len(data) // 4), data))
    return out


def export(fed, rnd):
    out = os.path.join(fed.dir, "round-%d.safetensors" % rnd)
    run(COORD, "export", "--state", fed.state, "--round", str(rnd), "--out", out)
    return read_safetensors(out)


def expected_mean(agents):
    """The weighted mean the secure sum decodes to: weights quantized as the
    encoding does (w_q = round(min(w, W) / W * T))."""
    wq = [round(min(s, MAX_WEIGHT) / MAX_WEIGHT * LEVELS) for (_, s) in agents]
    return sum(w * v for w, (v, _) in zip(wq, agents)) / sum(wq)


class SecAggFederation(Federation):
    def __init__(self, name, n, settings=None):
        sets = {"rounds.rounds": "1", "rounds.min_available": str(n), "rounds.min_fit": "2",
                "rounds.eval_every": "0", "rounds.stale_after": "4",
                "secagg.phase_timeout": str(int(6 * covey.SLOW)),
                "secagg.levels": str(LEVELS), "secagg.max_weight": str(MAX_WEIGHT),
                "secagg.clip": str(CLIP)}
        sets.update(settings or {})
        super().__init__(name, model="softmax:784-10", settings=sets)

    def start_sa(self, name, value, samples, extra=()):
        key = self.add_agent(name)
        args = [SA_AGENT, "--coordinator", self.endpoint, "--server-key", self.server_pub,
                "--key", key, "--value", repr(value), "--samples", str(samples)] + list(extra)
        return self._spawn(name, args)

    def check_delta(self, test, before, after, want, tol=2e-3):
        delta = [a - b for a, b in zip(after, before)]
        worst = max(abs(d - want) for d in delta)
        mean_err = abs(sum(delta) / len(delta) - want)
        test.assertLess(worst, tol, "delta %r.. vs expected %.6f" % (delta[:4], want))
        test.assertLess(mean_err, tol / 10, "mean delta %.6f vs expected %.6f"
                        % (sum(delta) / len(delta), want))
        return worst


class SecAggTest(covey.unittest.TestCase):
    def dropouts_at_every_phase(self, name, n, graph, settings=None):
        """n agents; four die, one before each of its phase messages. Checks
        status mid-round shows `graph` (kind, k, t) and that the committed
        model moved by the exact weighted mean over U3 (n - 3 agents)."""
        fed = SecAggFederation(name, n, settings)
        try:
            fed.start_coordinator(["--exit-when-done"])
            included = []
            for i in range(n - 4):
                v, s = 0.01 * (i - n // 2), 900 + 150 * i
                fed.start_sa("ok-%d" % i, v, s)
                included.append((v, s))
            # their values must NOT be in the result: far from the others'
            for phase in ("adv", "shr", "masked"):
                fed.start_sa("die-" + phase, 0.9, 3000, ["--die-at", phase])
            # this one's masked input arrived: it IS in the sum, unmasked by
            # the others' shares although it never reveals its own
            fed.start_sa("die-shares", -0.5, 2000, ["--die-at", "shares"])
            included.append((-0.5, 2000))

            st = fed.wait_for("a secure-aggregation phase in status", lambda s: (
                s["round"].get("secure_aggregation") is not None), 120)
            sa = st["round"]["secure_aggregation"]
            self.assertEqual((sa["graph"], sa["k"], sa["t"]), graph, sa)
            self.assertEqual(sa["participants"]["selected"], n)
            self.assertEqual(st["secure_aggregation"], "on")

            fed.wait_exit("coordinator", 240)
            self.assertEqual(fed.procs["coordinator"].returncode, 0, fed.tail("coordinator"))
            worst = fed.check_delta(self, export(fed, 0), export(fed, 1), expected_mean(included))
            print("%s graph k=%d t=%d: exact sum over U3 (%d of %d), worst coordinate error %.2e"
                  % (graph + (n - 3, n, worst)))
            log = fed.log("coordinator")
            self.assertIn("secure aggregation: keys advertised", log)
            self.assertRegex(log, r'msg="secure aggregation: unmasking" round=1 u3=%d\b' % (n - 3))
            self.assertRegex(log, r'msg="round committed" round=1 attempt=1 updates=%d ' % (n - 3))
            for phase in ("adv", "shr", "masked", "shares"):
                self.assertIn("dying at", fed.log("die-" + phase), fed.tail("die-" + phase))
        finally:
            fed.close()

    def test_dropouts_at_every_phase_full_graph(self):
        # 13 agents: the full graph (SecAgg), t = floor(2n/3) + 1 = 9
        self.dropouts_at_every_phase("sadrop", 13, ("full", 12, 9))

    def test_dropouts_at_every_phase_harary_graph(self):
        # 20 agents above secagg.full_max = 10: SecAgg+ on a Harary graph
        # (gamma 0.05, delta 0.2 give k = 6, t = 2)
        self.dropouts_at_every_phase("saharary", 20, ("harary", 6, 2), {"secagg.full_max": "10"})

    def test_below_threshold_aborts_and_retries(self):
        # 5 agents (t = 4); two die before their masked input: U3 = 3 < t, the
        # attempt fails; the retry with the 3 left (t = 3) commits their mean
        fed = SecAggFederation("saretry", 5)
        try:
            fed.start_coordinator(["--exit-when-done"])
            agents = [(0.1, 1000), (-0.2, 2000), (0.05, 1500)]
            for i, (v, s) in enumerate(agents):
                fed.start_sa("ok-%d" % i, v, s)
            fed.start_sa("die-a", 0.9, 3000, ["--die-at", "masked"])
            fed.start_sa("die-b", 0.9, 3000, ["--die-at", "masked"])
            fed.wait_log("coordinator", r"round attempt failed; retrying", 120)
            # the operator lets the round go on with the three left (reload)
            ini = os.path.join(fed.state, "coordinator.ini")
            with open(ini) as f:
                text = f.read()
            text = re.sub(r"(?m)^min_available\s*=.*$", "min_available = 3", text)
            with open(ini, "w") as f:
                f.write(text)
            fed.procs["coordinator"].send_signal(signal.SIGHUP)
            fed.wait_exit("coordinator", 240)
            self.assertEqual(fed.procs["coordinator"].returncode, 0, fed.tail("coordinator"))
            log = fed.log("coordinator")
            self.assertRegex(log, r'msg="round attempt failed; retrying" round=1 attempt=1 '
                             r'reason="secure aggregation masked input collection: ')
            # (a retry may first pick the dead agents again while they still
            # count as online: that attempt fails at key advertisement)
            self.assertRegex(log, r'msg="round committed" round=1 attempt=\d+ updates=3 ')
            fed.check_delta(self, export(fed, 0), export(fed, 1), expected_mean(agents))
            rows = fed.query("SELECT attempt, phase FROM rounds WHERE round = 1 ORDER BY attempt")
            self.assertEqual([p for (_, p) in rows], ["failed"] * (len(rows) - 1) + ["done"])
        finally:
            fed.close()

    def test_forged_phase_messages_refused_round_unharmed(self):
        # each agent sends one extra phase message: four are forged (refused
        # with an error and counted), two are exact retransmissions (as after
        # a reconnection: ignored); the round still gives the exact result
        forges = ["forged-adv", "wrong-round", "truncated", "bad-shares"]
        repeats = ["replay-adv", "dup-shares"]
        # 8 agents, t = 6; two die instead of unmasking, so the round needs the
        # shares of all six others and is still unmasking when each extra
        # message arrives (otherwise a late one is ignored, not refused)
        n = len(forges) + len(repeats) + 2
        fed = SecAggFederation("saforge", n)
        try:
            fed.start_coordinator(["--exit-when-done"])
            agents = []
            for i, kind in enumerate(forges + repeats):
                v, s = 0.03 * (i - 2), 1200 + 100 * i
                fed.start_sa("a-%d" % i, v, s, ["--forge", kind])
                agents.append((v, s))
            for i in range(2):  # in U3: their inputs count
                fed.start_sa("quiet-%d" % i, -0.1 * i, 1000, ["--die-at", "shares"])
                agents.append((-0.1 * i, 1000))
            fed.wait_exit("coordinator", 240)
            self.assertEqual(fed.procs["coordinator"].returncode, 0, fed.tail("coordinator"))
            fed.check_delta(self, export(fed, 0), export(fed, 1), expected_mean(agents))
            log = fed.log("coordinator")
            self.assertRegex(log, r'msg="round committed" round=1 attempt=1 updates=8 ')
            for i, kind in enumerate(forges + repeats):
                out = fed.log("a-%d" % i)
                self.assertIn("sent forged " + kind, out)
                # (judged from the coordinator's log: the error it answers may
                # be dropped when it exits right after the round)
                refused = r'msg="invalid message rejected" agent=a-%d ' % i
                if kind in forges:
                    self.assertRegex(log, refused, kind)
                else:
                    self.assertNotRegex(log, refused, kind)
                    self.assertNotIn("reply t=error", out, kind)
            invalid = [int(x) for x in re.findall(
                r'msg="invalid message rejected" .* invalid_total=(\d+)', log)]
            self.assertEqual(max(invalid), len(forges), log[-3000:])
        finally:
            fed.close()

    def test_forged_share_found_and_discarded(self):
        # 8 agents (t = 6): one reveals a share with a flipped bit (well formed,
        # so only the shares' consistency shows it). The coordinator waits for
        # t + 2 shares of each secret, finds the odd one out, discards it,
        # names the agent, and the sum is still exact.
        n = 8
        fed = SecAggFederation("sashare", n)
        try:
            fed.start_coordinator(["--exit-when-done"])
            agents = []
            for i in range(n):
                v, s = 0.02 * (i - 3), 1000 + 200 * i
                fed.start_sa("a-%d" % i, v, s, ["--forge", "forged-share"] if i == 2 else [])
                agents.append((v, s))
            fed.wait_exit("coordinator", 240)
            self.assertEqual(fed.procs["coordinator"].returncode, 0, fed.tail("coordinator"))
            self.assertIn("sent forged forged-share", fed.log("a-2"))
            fed.check_delta(self, export(fed, 0), export(fed, 1), expected_mean(agents))
            log = fed.log("coordinator")
            self.assertRegex(log, r'msg="secure aggregation: a forged share was discarded" '
                                  r'round=1 agent=a-2 ')
            self.assertRegex(log, r'msg="round committed" round=1 attempt=1 updates=8 ')
        finally:
            fed.close()

    def test_coordinator_killed_mid_secure_round_resumes(self):
        # real agents (3: t = 3, so no round can finish without each of them).
        # Twice the coordinator is killed (SIGKILL) in the middle of a secure
        # round, which one stopped agent (SIGSTOP) holds open: in round 2 as
        # it starts (keys being advertised), in round 3 once the shares are
        # routed (agents training). Each interrupted attempt is retried with
        # fresh keys after the restart; no round is committed twice.
        fed = Federation("sacrash", model="softmax:784-10", settings={
            "rounds.rounds": "4", "rounds.min_fit": "3", "rounds.min_available": "3",
            "rounds.eval_every": "0", "training.epochs": "3"})
        try:
            keys = [fed.add_agent("edge-%d" % i) for i in range(3)]
            fed.start_coordinator(["--exit-when-done"])
            for i, k in enumerate(keys):
                fed.start_agent("edge-%d" % i, k, i, 3)
            for rnd, moment in ((2, r'msg="round started" round=2 '),
                                (3, r'msg="secure aggregation: shares routed" round=3 ')):
                since = fed.log_size("coordinator")
                fed.wait_log("coordinator", moment, 180, since=since, poll=0.01)
                fed.procs["edge-2"].send_signal(signal.SIGSTOP)
                try:
                    st = fed.status()
                    self.assertEqual((st["rounds_done"], st["round"]["number"],
                                      st["round"]["phase"]), (rnd - 1, rnd, "train"), st["round"])
                    self.assertIn(st["round"]["secure_aggregation"]["phase"], ("adv", "shr", "masked"))
                    fed.kill("coordinator", signal.SIGKILL)
                finally:
                    fed.procs["edge-2"].send_signal(signal.SIGCONT)
                fed.start_coordinator(["--exit-when-done"])
            fed.wait_exit("coordinator", 300)
            self.assertEqual(fed.procs["coordinator"].returncode, 0, fed.tail("coordinator"))
            done = fed.query("SELECT round, COUNT(*) FROM rounds WHERE phase = 'done' "
                             "GROUP BY round ORDER BY round")
            self.assertEqual(done, [(r, 1) for r in range(1, 5)])
            failed = fed.query("SELECT round, outcome FROM rounds WHERE phase = 'failed'")
            self.assertEqual(sorted(r for r, o in failed if "restarted" in o), [2, 3], failed)
            hist = fed.status()["history"]
            self.assertEqual([h["round"] for h in hist], [1, 2, 3, 4])
            # the training metrics are decoded from the secure sum: the mean is
            # right, and no agent's own loss or accuracy reached the coordinator
            self.assertGreater(hist[-1]["train_accuracy"], 0.6, hist[-1])
            self.assertLess(hist[-1]["train_loss"], 1.5, hist[-1])
            self.assertLess(hist[-1]["train_loss"], hist[0]["train_loss"], hist)
            self.assertEqual(fed.query("SELECT MAX(loss), MAX(acc) FROM round_agents "
                                       "WHERE status = 'received'"), [(0.0, 0.0)])
            self.assertRegex(fed.log("edge-0"), r'msg="masked update ready" round=4 samples=\d+ '
                                                r'loss=0\.[0-9]+ accuracy=0\.[5-9]')
        finally:
            for p in fed.procs.values():
                if p.poll() is None:
                    p.send_signal(signal.SIGCONT)
            fed.close()

    def test_robust_rule_refused_with_secure_aggregation(self):
        p = run(COORD, "init", "--state", "/tmp/covey-never-created-sa-%d" % os.getpid(),
                "--set", "server.aggregation=median", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("needs secagg.mode = off", p.stderr)


if __name__ == "__main__":
    covey.main()
