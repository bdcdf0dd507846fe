"""test_privacy.py — central differential privacy and robust aggregation in a real
federation: the privacy accountant's epsilon in status matches an independent
computation, the epsilon budget stops the federation before a round would
exceed it (and says so), and a robust rule (coordinate median) aggregates.
"""

import math

import covey
from covey import Federation

ORDERS = list(range(2, 64)) + [128, 256, 512, 1024]


def epsilon_full_participation(rounds, z, delta):
    """epsilon of `rounds` Gaussian steps with q = 1 (every agent every round):
    RDP(a) = rounds * a / (2 z^2), converted as in SECAGG.md 2.4."""
    best = math.inf
    for a in ORDERS:
        rdp = rounds * a / (2 * z * z)
        if delta ** 2 + math.expm1(-rdp) >= 0:
            return 0.0
        eps = rdp + math.log1p(-1.0 / a) - (math.log(delta) + math.log(a)) / (a - 1)
        best = min(best, eps)
    return max(0.0, best)


class PrivacyTest(covey.unittest.TestCase):
    def test_dp_central_accounting_and_budget(self):
        z, delta = 2.0, 1e-5
        # with q = 1, epsilon after r rounds is known in closed form: pick a budget
        # that allows exactly 3 rounds
        budget = (epsilon_full_participation(3, z, delta) + epsilon_full_participation(4, z, delta)) / 2
        fed = Federation("dp", model="softmax:784-10", settings={
            "rounds.rounds": "10", "rounds.min_fit": "3", "rounds.min_available": "3",
            "rounds.eval_every": "0", "training.epochs": "1",
            "privacy.dp": "central", "privacy.clip_norm": "0.5",
            "privacy.noise_multiplier": str(z), "privacy.delta": str(delta),
            "privacy.epsilon_budget": "%.6f" % budget})
        try:
            keys = [fed.add_agent("edge-%d" % i) for i in range(3)]
            fed.start_coordinator()
            for i, k in enumerate(keys):
                fed.start_agent("edge-%d" % i, k, i, 3, "iid")
            st = fed.wait_for("the budget to stop the federation",
                              lambda s: s["round"].get("phase") == "complete", 240)
            self.assertEqual(st["rounds_done"], 3, st)
            self.assertIn("privacy budget", st["round"]["stop_reason"])
            priv = st["privacy"]
            self.assertEqual(priv["dp"], "central")
            self.assertEqual(priv["rounds_accounted"], 3)
            want = epsilon_full_participation(3, z, delta)
            self.assertAlmostEqual(priv["epsilon"], want, delta=1e-6 * want)
            self.assertLessEqual(priv["epsilon"], budget)
            self.assertIn("refusing to start a round that would exceed the privacy budget",
                          fed.log("coordinator"))
            # the per-round epsilon history is committed with the rounds
            eps = [e for (_, e) in fed.query(
                "SELECT round, value FROM metrics WHERE name='epsilon' ORDER BY round")]
            self.assertEqual(len(eps), 3)
            self.assertTrue(eps[0] < eps[1] < eps[2])
            # a restarted coordinator keeps the spent budget: still refuses
            fed.kill("coordinator", covey.signal.SIGTERM)
            fed.start_coordinator()
            st = fed.wait_for("the restarted coordinator to refuse again",
                              lambda s: s["coordinator"]["running"] and
                              s["round"].get("phase") == "complete", 120)
            self.assertEqual(st["rounds_done"], 3)
            self.assertAlmostEqual(st["privacy"]["epsilon"], want, delta=1e-6 * want)
        finally:
            fed.close()

    def test_adaptive_clipping_shrinks_an_oversized_bound(self):
        # every update fits easily under C0 = 100: the estimated unclipped
        # fraction exceeds the 0.5 target, so C must come down (Andrew et al.;
        # Flower's sign error would push it up). The value noise is kept tiny
        # (it scales with C) and the count noise small (sigma_b = 0.3 against
        # a count of 3 halves: a wrong-way step needs a 5-sigma draw).
        fed = Federation("adaclip", model="softmax:784-10", settings={
            "rounds.rounds": "3", "rounds.min_fit": "3", "rounds.min_available": "3",
            "rounds.eval_every": "0", "privacy.dp": "central", "privacy.clip_norm": "100",
            "privacy.noise_multiplier": "0.0002", "privacy.adaptive_clipping": "on",
            "privacy.clip_count_stddev": "0.3"})
        try:
            keys = [fed.add_agent("edge-%d" % i) for i in range(3)]
            fed.start_coordinator(["--exit-when-done"])
            for i, k in enumerate(keys):
                fed.start_agent("edge-%d" % i, k, i, 3, "iid")
            p = fed.procs["coordinator"]
            p.wait(timeout=300 * covey.SLOW)
            self.assertEqual(p.returncode, 0, fed.tail("coordinator"))
            clips = [c for (_, c) in fed.query(
                "SELECT round, value FROM metrics WHERE name='clip_norm' ORDER BY round")]
            self.assertEqual(len(clips), 3)
            # each round C *= exp(-0.2 (b~ - 0.5)) with b~ = clamp(1 + noise/3) in
            # (0.5, 1]: C shrinks, by at most exp(-0.1) per round
            prev = 100.0
            for c in clips:
                self.assertLess(c, prev)
                self.assertGreaterEqual(c, prev * math.exp(-0.1) * (1 - 1e-9))
                prev = c
            st = fed.status()
            self.assertTrue(st["privacy"]["adaptive_clipping"])
            self.assertAlmostEqual(st["privacy"]["clip_norm"], clips[-1], delta=1e-5 * clips[-1])
        finally:
            fed.close()

    def test_robust_median_aggregates(self):
        fed = Federation("median", model="softmax:784-10", settings={
            "rounds.rounds": "3", "rounds.min_fit": "3", "rounds.min_available": "3",
            "server.aggregation": "median", "rounds.keep_checkpoints": "2",
            "secagg.mode": "off"})
        try:
            keys = [fed.add_agent("edge-%d" % i) for i in range(3)]
            fed.start_coordinator(["--exit-when-done"])
            for i, k in enumerate(keys):
                fed.start_agent("edge-%d" % i, k, i, 3, "iid")
            p = fed.procs["coordinator"]
            p.wait(timeout=300 * covey.SLOW)
            self.assertEqual(p.returncode, 0, fed.tail("coordinator"))
            st = fed.status()
            self.assertEqual(st["privacy"]["aggregation"], "median")
            self.assertEqual(st["rounds_done"], 3)
            self.assertGreater(st["history"][-1]["eval_accuracy"], 0.70)
            # rounds.keep_checkpoints = 2: older checkpoints were pruned with each commit
            ck = [r for (r,) in fed.query("SELECT round FROM checkpoints ORDER BY round")]
            self.assertEqual(ck, [2, 3])
        finally:
            fed.close()

    def test_robust_rule_refused_with_dp(self):
        p = covey.run(covey.COORD, "init", "--state", "/tmp/covey-never-created-%d" % covey.os.getpid(),
                      "--set", "privacy.dp=central", "--set", "server.aggregation=median",
                      check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("sensitivity", p.stderr)


if __name__ == "__main__":
    covey.main()
