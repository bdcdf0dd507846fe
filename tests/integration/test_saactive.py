"""test_saactive.py — secure aggregation in the active-server model (SECAGG.md
1.4 R0/R3, 1.5), end to end with real processes: an operator identity CA made
with `covey-coordinator ca init`, agents' identity keys shown by `covey-agent
identity` and certified with `covey-coordinator ca sign`, a coordinator with
secagg.identity_ca set, and agents that sign their round keys and take part
in the consistency round (sa.chk -> sa.sig) before revealing any share.

- scripted participants (tests/tools/sa_agent.c, KNOWN updates): one dies
  before its masked input, one after it but before signing U3 (its input
  counts, it is simply not in U4), one first sends an unsigned sa.adv and one
  a forged sa.sig (both refused and counted), and an agent whose certificate
  comes from another CA (a Sybil the coordinator could have minted) is never
  selected: the committed model is the exact weighted mean over U3;
- real covey-agent processes, certified through the CLI, train two rounds;
- an agent given an identity CA refuses a round without signed keys (a
  coordinator cannot switch the protection off), and the coordinator refuses
  the identity CA together with a semi-honest threat model.
"""

import os
import re
import shutil
import tempfile

import covey
from covey import AGENT, COORD, run
# (the module, not its names: its TestCase must not run again from here)
import test_secagg as sa


class CA:
    """An operator identity CA in `d` (covey-coordinator ca init)."""

    def __init__(self, d, name="ca"):
        self.key = os.path.join(d, name + ".key")
        out = run(COORD, "ca", "init", "--out", self.key).stdout
        self.pub = self.key + ".pub"
        self.hex = re.search(r"\b[0-9a-f]{64}\b", out).group(0)

    def certify(self, key):
        """Certify the agent whose key pair is `key`: its identity key as
        `covey-agent identity` shows it, signed by `ca sign`. Returns the
        certificate file."""
        out = run(AGENT, "identity", "--key", key).stdout
        ident = re.search(r"--identity ([0-9a-f]{64})", out).group(1)
        cert = key + ".cert"
        run(COORD, "ca", "sign", "--ca", self.key, "--agent-key", key + ".pub",
            "--identity", ident, "--out", cert)
        return cert


class ActiveFederation(sa.SecAggFederation):
    def __init__(self, name, n, settings=None, ca_dir=None):
        self.ca = None
        sets = {"secagg.threat": "semi-malicious"}
        sets.update(settings or {})
        if ca_dir is not None:
            self.ca = CA(ca_dir)
            sets["secagg.identity_ca"] = self.ca.hex
        super().__init__(name, n, sets)


class ActiveModelTest(covey.unittest.TestCase):
    def ca_dir(self):
        d = tempfile.mkdtemp(prefix="covey-it-ca-")
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def test_signed_keys_consistency_round_and_sybil(self):
        d = self.ca_dir()
        n = 10  # the full graph: t = floor(2n/3) + 1 = 7
        fed = ActiveFederation("saactive", n, ca_dir=d)
        try:
            other = CA(d, "other-ca")
            fed.start_coordinator(["--exit-when-done"])
            included, roles = [], {}
            plan = [("die-masked", ["--die-at", "masked"], False),
                    ("die-sig", ["--die-at", "sig"], True),
                    ("unsigned-adv", ["--forge", "unsigned-adv"], True),
                    ("forged-sig", ["--forge", "forged-sig"], True)]
            plan += [("ok-%d" % i, [], True) for i in range(n - len(plan))]
            for i, (name, extra, counts) in enumerate(plan):
                v, s = 0.015 * (i - 4), 800 + 170 * i
                if name == "die-masked":
                    v = 0.9  # must not be in the result
                self.start_certified_sa(fed, fed.ca, name, v, s, extra)
                if counts:
                    included.append((v, s))
            # a Sybil: a well-formed certificate, but from a CA the agents do
            # not trust; it is online, yet never selected
            self.start_certified_sa(fed, other, "sybil", 0.9, 5000, [])

            st = fed.wait_for("the consistency round in status", lambda s: (
                (s["round"].get("secure_aggregation") or {}).get("phase") in ("chk", "unmask")),
                180)
            info = st["round"]["secure_aggregation"]
            self.assertEqual((info["model"], info["graph"], info["k"], info["t"]),
                             ("active", "full", n - 1, 7), info)
            self.assertEqual(info["participants"]["selected"], n)

            fed.wait_exit("coordinator", 240)
            self.assertEqual(fed.procs["coordinator"].returncode, 0, fed.tail("coordinator"))
            worst = fed.check_delta(self, sa.export(fed, 0), sa.export(fed, 1),
                                    sa.expected_mean(included))
            print("active model, full graph k=%d t=7: exact sum over U3 (%d of %d), worst "
                  "coordinate error %.2e" % (n - 1, len(included), n, worst))
            log = fed.log("coordinator")
            self.assertRegex(log, r'msg="secure aggregation set up" .* model=active')
            self.assertRegex(log, r'msg="secure aggregation: consistency check" round=1 u3=9\b')
            self.assertRegex(log, r'msg="secure aggregation: unmasking" round=1 u3=9 u4=8\b')
            self.assertRegex(log, r'msg="round committed" round=1 attempt=1 updates=9 ')
            self.assertRegex(log, r'msg="agent has no valid identity certificate.*agent=sybil')
            self.assertNotIn("reply t=train", fed.log("sybil"))
            for name in ("unsigned-adv", "forged-sig"):
                self.assertIn("sent forged " + name, fed.log(name))
                self.assertRegex(log, r'msg="invalid message rejected" agent=%s ' % name)
            self.assertIn("dying at sig", fed.log("die-sig"))
            self.assertIn("sent sa.sig", fed.log("ok-0"))
        finally:
            fed.close()

    def start_certified_sa(self, fed, ca, name, value, samples, extra):
        key = fed.add_agent(name)
        cert = ca.certify(key)
        args = [sa.SA_AGENT, "--coordinator",
                fed.endpoint, "--server-key", fed.server_pub, "--key", key, "--value",
                repr(value), "--samples", str(samples), "--identity-ca", ca.pub,
                "--identity-cert", cert] + list(extra)
        return fed._spawn(name, args)

    def test_real_agents_train_in_the_active_model(self):
        d = self.ca_dir()
        fed = ActiveFederation("sareal", 3, {"rounds.rounds": "2", "rounds.min_fit": "3",
                                             "training.epochs": "1"}, ca_dir=d)
        try:
            fed.start_coordinator(["--exit-when-done"])
            for i in range(3):
                key = fed.add_agent("edge-%d" % i)
                cert = fed.ca.certify(key)
                fed.start_agent("edge-%d" % i, key, i, 3, extra=[
                    "--identity-ca", fed.ca.hex, "--identity-cert", cert])
            fed.wait_exit("coordinator", 300)
            self.assertEqual(fed.procs["coordinator"].returncode, 0, fed.tail("coordinator"))
            log = fed.log("coordinator")
            self.assertRegex(log, r'msg="round committed" round=2 attempt=\d+ updates=3 ')
            self.assertRegex(log, r'msg="secure aggregation: unmasking" round=2 u3=3 u4=3\b')
            hist = fed.status()["history"]
            self.assertEqual([h["round"] for h in hist], [1, 2])
            self.assertGreater(hist[-1]["train_accuracy"], 0.5, hist[-1])
            self.assertIn("identity certificate loaded", fed.log("edge-0"))
        finally:
            fed.close()

    def test_agent_refuses_round_without_signed_keys(self):
        # the coordinator runs the semi-honest model (no identity_ca); an agent
        # given an identity CA refuses to take part: the protection it was
        # configured with cannot be switched off from the coordinator's side
        d = self.ca_dir()
        ca = CA(d)
        fed = sa.SecAggFederation("sadown", 3)
        try:
            fed.start_coordinator()
            key = fed.add_agent("edge-0")
            cert = ca.certify(key)
            fed.start_agent("edge-0", key, 0, 1, extra=["--identity-ca", ca.pub,
                                                       "--identity-cert", cert])
            for i in range(2):
                fed.start_sa("plain-%d" % i, 0.1, 1000)
            fed.wait_log("edge-0", r"secure aggregation setup refused: this agent has an "
                                   r"identity CA", 180)
            fed.wait_log("coordinator", r'agent=edge-0 .*takes part only in the active-server '
                                        r'model', 60)
        finally:
            fed.close()

    def test_config_refusals(self):
        d = self.ca_dir()
        ca = CA(d)
        state = os.path.join(d, "never")
        p = run(COORD, "init", "--state", state, "--set", "secagg.identity_ca=" + ca.hex,
                check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("secagg.identity_ca needs secagg.threat = semi-malicious", p.stderr)
        p = run(COORD, "init", "--state", state, "--set", "secagg.threat=semi-malicious",
                "--set", "secagg.identity_ca=nothex", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("secagg.identity_ca", p.stderr)
        # an agent whose certificate is not the CA's, or not its own, is refused at start
        other = CA(d, "other")
        key = os.path.join(d, "a.key")
        run(AGENT, "keygen", "--out", key)
        cert = other.certify(key)
        p = run(AGENT, "run", "--coordinator", "tcp://127.0.0.1:9", "--server-key",
                key + ".pub", "--key", key, "--identity-ca", ca.pub, "--identity-cert", cert,
                check=False, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("not signed by the identity CA", p.stderr)


if __name__ == "__main__":
    covey.main()
