"""test_federation.py — a whole federation converges: real coordinator and agent
processes on 127.0.0.1 over CurveZMQ, a real SQLite file, Fashion-MNIST.

Checks the IID target (4 agents, >= 0.86 federated accuracy within 10 rounds),
that status --json follows the true state through the phases, that the
database holds exactly one committed row and one checkpoint per round, that
the exported model evaluates to the same accuracy locally, and that status
still answers, read-only, once the coordinator is gone.
"""

import json
import os
import signal

import covey
from covey import Federation, run, AGENT, COORD


class FederationTest(covey.unittest.TestCase):
    def test_iid_converges_and_status_follows(self):
        rounds = 10
        fed = Federation("iid", model="mlp:784-256-10", settings={
            "rounds.rounds": str(rounds), "rounds.min_fit": "4", "rounds.min_available": "4"})
        try:
            # status works before the coordinator ever ran: read-only, says so
            st = fed.status()
            self.assertFalse(st["coordinator"]["running"])
            self.assertEqual(st["rounds_done"], 0)
            self.assertEqual(st["checkpoint"]["round"], 0)

            keys = [fed.add_agent("edge-%d" % i) for i in range(4)]
            fed.start_coordinator(["--exit-when-done"])
            st = fed.wait_for("the coordinator to answer", lambda s: s["coordinator"]["running"], 60)
            self.assertEqual(st["round"]["phase"], "waiting")
            self.assertEqual(st["agents"]["enrolled"], 4)
            self.assertEqual(st["agents"]["online"], 0)
            for i, k in enumerate(keys):
                fed.start_agent("edge-%d" % i, k, i, 4, "iid")

            # follow the phases: every training observation must be consistent
            seen = set()
            def progress(s):
                r = s["round"]
                seen.add(r["phase"])
                if r["phase"] == "train":
                    self.assertEqual(r["expected"], 4)
                    self.assertLessEqual(r["received"], r["expected"])
                    self.assertEqual(s["agents"]["online"], 4)
                    self.assertGreater(r["deadline_ms"], 0)
                return s["rounds_done"] >= 3
            fed.wait_for("round 3", progress, 300)
            self.assertIn("train", seen)

            p = fed.procs["coordinator"]
            p.wait(timeout=600 * covey.SLOW)
            self.assertEqual(p.returncode, 0, fed.tail("coordinator"))

            st = fed.status()
            self.assertFalse(st["coordinator"]["running"])
            self.assertEqual(st["rounds_done"], rounds)
            hist = st["history"]
            self.assertEqual([h["round"] for h in hist], list(range(1, rounds + 1)))
            final = hist[-1]["eval_accuracy"]
            print("IID 4 agents: federated accuracy by round:",
                  " ".join("%.4f" % h.get("eval_accuracy", 0) for h in hist))
            self.assertGreaterEqual(final, 0.86, "target: >= 0.86 within 10 rounds (IID, 4 agents)")

            # the database: one done row and one checkpoint per round, no duplicates
            done = fed.query("SELECT round, COUNT(*) FROM rounds WHERE phase='done' GROUP BY round")
            self.assertEqual(sorted(done), [(r, 1) for r in range(1, rounds + 1)])
            ck = fed.query("SELECT round FROM checkpoints ORDER BY round")
            self.assertEqual([r for (r,) in ck], list(range(0, rounds + 1)))

            # every selected agent's update was received in every round
            got = fed.query("SELECT COUNT(*) FROM round_agents WHERE status='received'")
            self.assertEqual(got[0][0], 4 * rounds)

            # the exported model is the committed global model and evaluates the same
            out = os.path.join(fed.dir, "final.safetensors")
            run(COORD, "export", "--state", fed.state, "--out", out)
            ev = json.loads(run(AGENT, "eval", "--model", "mlp:784-256-10", "--load", out,
                                "--json").stdout)
            self.assertAlmostEqual(ev["test_accuracy"], final, places=3)

            # rounds and agents listings, in both forms
            rj = json.loads(run(COORD, "rounds", "--state", fed.state, "--json").stdout)
            self.assertEqual(len([r for r in rj if r["phase"] == "done"]), rounds)
            self.assertIn("ROUND", run(COORD, "rounds", "--state", fed.state).stdout)
            aj = json.loads(run(COORD, "agents", "--state", fed.state, "--json").stdout)
            self.assertEqual(sorted(a["name"] for a in aj), ["edge-%d" % i for i in range(4)])
            self.assertTrue(all(a["n_train"] == 15000 for a in aj))
            text = run(COORD, "status", "--state", fed.state).stdout
            self.assertIn("NOT RUNNING", text)
            self.assertIn("%d done of %d" % (rounds, rounds), text)
        finally:
            fed.close()

    def test_downloads_take_turns_with_the_smallest_window(self):
        # transfer.window = 1 byte: one agent at a time holds a download slot
        # (the credit window always gives one), so every other agent's gets
        # wait in the coordinator's queue, and pulls wait for the window too.
        # Six agents, two secure rounds of the 0.2M model (4 chunks each):
        # every download completes, every round commits all six updates, and
        # nothing an agent sent was refused.
        fed = Federation("window", model="mlp:784-256-10", settings={
            "rounds.rounds": "2", "rounds.min_fit": "6", "rounds.min_available": "6",
            "rounds.eval_every": "0", "training.epochs": "1", "transfer.window": "1"})
        try:
            keys = [fed.add_agent("edge-%d" % i) for i in range(6)]
            fed.start_coordinator(["--exit-when-done"])
            for i, k in enumerate(keys):
                fed.start_agent("edge-%d" % i, k, i, 6, "iid")
            fed.wait_exit("coordinator", 300)
            self.assertEqual(fed.procs["coordinator"].returncode, 0, fed.tail("coordinator"))
            log = fed.log("coordinator")
            for rnd in (1, 2):
                self.assertRegex(log, r'msg="round committed" round=%d attempt=\d+ updates=6 ' % rnd)
            self.assertNotIn("invalid message rejected", log)
            for i in range(6):
                self.assertEqual(fed.log("edge-%d" % i).count('msg="global model received"'), 2,
                                 fed.tail("edge-%d" % i))
            self.assertEqual(fed.query("SELECT COUNT(*) FROM rounds WHERE phase = 'done'"), [(2,)])
        finally:
            fed.close()


if __name__ == "__main__":
    covey.main()
