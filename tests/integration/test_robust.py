"""test_robust.py — model poisoning with secure aggregation off: one agent in
five (20%) sends a valid, finite, large update (+-3 per coordinate) in every
round. Plain FedAvg is dragged off by it; the robust rules (coordinate
median, trimmed mean, Krum) keep the federated accuracy within 2 points of a
clean run without the attacker."""

import covey
from covey import Federation

ROUNDS = 3


def run_federation(name, aggregation, poison):
    n_honest = 4
    total = n_honest + (1 if poison else 0)
    fed = Federation(name, model="softmax:784-10", settings={
        "rounds.rounds": str(ROUNDS), "rounds.min_fit": str(total),
        "rounds.min_available": str(total), "server.aggregation": aggregation,
        "secagg.mode": "off",  # robust rules must see each update
        "training.epochs": "1"})
    try:
        keys = [fed.add_agent("honest-%d" % i) for i in range(n_honest)]
        evil = fed.add_agent("evil") if poison else None
        fed.start_coordinator(["--exit-when-done"])
        for i, k in enumerate(keys):
            fed.start_agent("honest-%d" % i, k, i, n_honest, "iid")
        if poison:
            fed.start_evil("evil", evil, "poison", ["--samples", "15000"])
        p = fed.procs["coordinator"]
        p.wait(timeout=300 * covey.SLOW)
        assert p.returncode == 0, fed.tail("coordinator")
        st = fed.status()
        assert st["rounds_done"] == ROUNDS, st
        got = fed.query("SELECT COUNT(*) FROM round_agents ra JOIN agents a ON a.id = ra.agent_id "
                        "WHERE a.name = 'evil' AND ra.status = 'received'")[0][0]
        return st["history"][-1]["eval_accuracy"], got
    finally:
        fed.close()


class RobustTest(covey.unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.clean, _ = run_federation("clean", "fedavg", False)
        print("clean FedAvg (4 honest agents): accuracy %.4f" % cls.clean)

    def check(self, aggregation, robust):
        acc, evil_received = run_federation(aggregation.split(":")[0], aggregation, True)
        print("%-18s with 1 poisoner in 5: accuracy %.4f (clean %.4f)" % (aggregation, acc, self.clean))
        # the poisoned updates were accepted every round: it is the rule that resists
        self.assertEqual(evil_received, ROUNDS)
        if robust:
            self.assertGreaterEqual(acc, self.clean - 0.02)
        else:
            self.assertLess(acc, self.clean - 0.02)

    def test_fedavg_is_poisoned(self):
        self.check("fedavg", False)

    def test_median_resists(self):
        self.check("median", True)

    def test_trimmed_mean_resists(self):
        self.check("trimmed_mean:0.2", True)

    def test_krum_resists(self):
        self.check("krum:1", True)


if __name__ == "__main__":
    covey.main()
