"""test_admin.py — remote operators over CURVE: a viewer reads status but may
not revoke, an operator revokes (the agent is refused at once), an unknown
key cannot connect at all, and every remote command is in the audit log."""

import json
import re

import covey
from covey import Federation, run, AGENT, COORD


class AdminTest(covey.unittest.TestCase):
    def test_roles_over_curve(self):
        port = covey.free_port()
        fed = Federation("admin", settings={
            "federation.admin_endpoint": "tcp://127.0.0.1:%d" % port,
            "rounds.rounds": "100", "rounds.min_fit": "1", "rounds.min_available": "1",
            "secagg.mode": "off"})  # one agent: secure aggregation needs two
        try:
            keys = {}
            for n in ("vera", "otto", "mallory"):
                keys[n] = covey.os.path.join(fed.dir, n + ".key")
                pub = run(AGENT, "keygen", "--out", keys[n]).stdout.strip()
                if n != "mallory":
                    run(COORD, "admins", "add", n, pub, "--role",
                        "viewer" if n == "vera" else "operator", "--state", fed.state)
            admins = json.loads(run(COORD, "admins", "--json", "--state", fed.state).stdout)
            self.assertEqual({a["name"]: a["role"] for a in admins},
                             {"vera": "viewer", "otto": "operator"})
            k = fed.add_agent("edge-0")
            fed.start_coordinator()
            fed.start_agent("edge-0", k, 0, 4)
            fed.wait_for("a round", lambda s: s["rounds_done"] >= 1, 120)
            remote = ["--remote", "tcp://127.0.0.1:%d" % port, "--server-key", fed.server_pub]

            st = json.loads(run(COORD, "status", "--json", *remote, "--key", keys["vera"]).stdout)
            self.assertTrue(st["coordinator"]["running"])
            self.assertEqual(st["agents"]["online"], 1)

            p = run(COORD, "agents", "revoke", "edge-0", *remote, "--key", keys["vera"],
                    check=False)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("a viewer may not revoke", p.stderr)

            p = run(COORD, "status", *remote, "--key", keys["mallory"], check=False, timeout=60)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("no answer", p.stderr)
            fed.wait_log("coordinator", r'msg="ZAP refused a client key" domain="covey-admin"', 30)

            run(COORD, "agents", "revoke", "edge-0", *remote, "--key", keys["otto"])
            fed.wait_for("the revoked agent to go offline",
                         lambda s: s["agents"]["online"] == 0 and s["agents"]["revoked"] == 1, 30)

            audit = json.loads(run(COORD, "audit", "--json", "--state", fed.state).stdout)
            acts = [(a["actor"], a["action"]) for a in audit]
            self.assertIn(("admin:vera", "admin.denied"), acts)
            self.assertIn(("admin:otto", "agent.revoke"), acts)
            self.assertTrue(any(a == ("admin:vera", "admin.command") for a in acts))
            self.assertEqual(run(COORD, "audit", "verify", "--state", fed.state).stdout.strip(),
                             "audit log intact")
        finally:
            fed.close()

    def test_keys_beginning_with_dashes_are_arguments(self):
        # Z85 keys may begin with "--" (1 key in 7225): such a key is still
        # the PUBLIC_KEY argument, not an unknown option; a real unknown
        # option is still refused
        fed = Federation("dashkey")
        try:
            key = "--" + "a1B2c3D4e5" * 3 + "f6G7h8I9"
            self.assertEqual(len(key), 40)
            run(COORD, "agents", "add", "edge-d", key, "--state", fed.state)
            run(COORD, "admins", "add", "op-d", "--" + key[2:][::-1], "--role", "viewer",
                "--state", fed.state)
            rows = json.loads(run(COORD, "agents", "--json", "--state", fed.state).stdout)
            self.assertIn(key, [r["public_key"] for r in rows], rows)
            p = run(COORD, "agents", "add", "edge-x", "--bogus", "--state", fed.state,
                    check=False)
            self.assertEqual(p.returncode, 2)
            self.assertIn("unknown option '--bogus'", p.stderr)
        finally:
            fed.close()


if __name__ == "__main__":
    covey.main()
