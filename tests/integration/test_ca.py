"""test_ca.py — the identity CA of secure aggregation from the command line,
on real files and real processes: `covey-coordinator ca init|sign|show`,
`covey-agent identity` and the identity options of `covey-agent enroll`.

- ca init: the CA key is mode 0600 and its .pub 0644 with the printed public
  key; an existing key is never replaced (exit 1, file unchanged); --json.
- covey-agent identity: the identity key is the one fl_identity.h defines,
  recomputed here independently (Z85, keyed BLAKE2b-256, Ed25519 with
  Python's `cryptography` when installed); the command it prints runs as
  printed (the Z85 key is quoted for the shell).
- ca sign: the certificate file holds the printed text; its signature is
  checked here independently over "covey-cert-v1" 0x00 || curve || identity.
- ca show: verifies against the right CA (exit 0), fails against another
  (exit 1, naming the CA); a tampered or cut certificate text is refused
  with a clear reason; --json output parses.
- enroll: --identity-ca at enrolment, the certificate added afterwards
  without a token (agent.ini: identity_ca hex, identity_cert absolute path);
  a certificate of another CA or of another agent is refused and nothing is
  written; --identity-cert with a token is refused before the token is spent.
- --help works on every command; usage errors exit 2.
"""

import base64
import hashlib
import json
import os
import re
import shlex
import shutil
import stat
import tempfile
import unittest

import covey
from covey import AGENT, COORD, Federation, run

try:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (Ed25519PrivateKey,
                                                                   Ed25519PublicKey)
    from cryptography.hazmat.primitives import serialization
except ImportError:  # the checks that need Ed25519 are skipped
    Ed25519PrivateKey = Ed25519PublicKey = None

Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
HEX64 = r"\b[0-9a-f]{64}\b"


def z85_decode(s):
    out = b""
    for i in range(0, len(s), 5):
        v = 0
        for c in s[i:i + 5]:
            v = v * 85 + Z85.index(c)
        out += v.to_bytes(4, "big")
    return out


def key_fields(path):
    """The `name = value` lines of a covey key file."""
    with open(path) as f:
        return dict(l.split(" = ", 1) for l in f.read().splitlines() if " = " in l)


def cert_bytes(text):
    b64 = text.strip()[len("covey-cert1."):]
    return base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))


def ini_values(path):
    with open(path) as f:
        return dict(re.findall(r"(?m)^(\w+) = ?(.*)$", f.read()))


class CaTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="covey-it-ca-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def ca_init(self, name="ca.key"):
        """A fresh CA key; returns (path, public key hex)."""
        p = run(COORD, "ca", "init", "--out", self.path(name))
        return self.path(name), p.stdout.strip()

    def agent_key(self, name="agent.key"):
        run(AGENT, "keygen", "--out", self.path(name))
        return self.path(name)

    def identity(self, *args):
        return json.loads(run(AGENT, "identity", "--json", *args).stdout)

    def sign(self, ca, key, out, identity=None):
        ident = identity or self.identity("--key", key)["identity_public_key"]
        return run(COORD, "ca", "sign", "--ca", ca, "--agent-key", key + ".pub", "--identity",
                   ident, "--out", out)

    # ------------------------------------------------------------------
    def test_init(self):
        key, hexkey = self.ca_init()
        self.assertRegex(hexkey, "^[0-9a-f]{64}$")
        self.assertEqual(stat.S_IMODE(os.stat(key).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(key + ".pub").st_mode), 0o644)
        with open(key) as f:
            self.assertIn("identity CA", f.readline())
        self.assertEqual(key_fields(key)["public"], hexkey)
        self.assertEqual(key_fields(key + ".pub"), {"public": hexkey})
        if Ed25519PrivateKey:  # the stored seed is the printed key's
            sk = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(key_fields(key)["secret"]))
            raw = sk.public_key().public_bytes(serialization.Encoding.Raw,
                                               serialization.PublicFormat.Raw)
            self.assertEqual(raw.hex(), hexkey)

        # never replaced
        with open(key, "rb") as f:
            before = f.read()
        p = run(COORD, "ca", "init", "--out", key, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("already exists", p.stderr)
        with open(key, "rb") as f:
            self.assertEqual(f.read(), before)

        j = json.loads(run(COORD, "ca", "init", "--out", self.path("ca2.key"), "--json").stdout)
        self.assertEqual(j["ca_key"], self.path("ca2.key"))
        self.assertEqual(j["ca_public_file"], self.path("ca2.key.pub"))
        self.assertEqual(j["public_key"], key_fields(self.path("ca2.key.pub"))["public"])
        self.assertNotEqual(j["public_key"], hexkey)

    def test_identity_sign_show(self):
        ca, ca_hex = self.ca_init()
        other_ca, other_hex = self.ca_init("other.key")
        key = self.agent_key()
        secret = key_fields(key)["secret"]
        curve_pub = key_fields(key + ".pub")["public"]

        out = run(AGENT, "identity", "--key", key).stdout
        j = self.identity("--key", key)
        self.assertEqual(j["curve_public_key"], curve_pub)
        self.assertIn(curve_pub, out)
        self.assertIn(j["identity_public_key"], out)
        # fl_identity.h's derivation, independently
        seed = hashlib.blake2b(b"covey-identity-v1", key=z85_decode(secret),
                               digest_size=32).digest()
        if Ed25519PrivateKey:
            raw = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            self.assertEqual(j["identity_public_key"], raw.hex())
        # deterministic, and another key is another identity
        self.assertEqual(self.identity("--key", key), j)
        self.assertNotEqual(self.identity("--key", self.agent_key("b.key"))["identity_public_key"],
                            j["identity_public_key"])

        # the printed command runs as printed (the shell's reading of it)
        cmd = shlex.split(j["sign_command"])
        self.assertEqual(cmd[:7], ["covey-coordinator", "ca", "sign", "--ca", "CA.key",
                                   "--agent-key", curve_pub])
        cmd[cmd.index("CA.key")] = ca
        cmd[cmd.index("NAME.cert")] = self.path("by-command.cert")
        run(COORD, *cmd[1:])

        cert = self.path("agent.cert")
        p = self.sign(ca, key, cert)
        text = p.stdout.strip()
        self.assertTrue(text.startswith("covey-cert1."))
        self.assertEqual(len(text), 183)
        with open(cert) as f:
            self.assertEqual(f.read(), text + "\n")
        self.assertEqual(stat.S_IMODE(os.stat(cert).st_mode), 0o644)
        b = cert_bytes(text)
        self.assertEqual(len(b), 128)
        self.assertEqual(b[:32], z85_decode(curve_pub))
        self.assertEqual(b[32:64].hex(), j["identity_public_key"])
        if Ed25519PublicKey:  # raises if the CA's signature is not what the format says
            Ed25519PublicKey.from_public_bytes(bytes.fromhex(ca_hex)).verify(
                b[64:], b"covey-cert-v1\0" + b[:64])
        sj = json.loads(run(COORD, "ca", "sign", "--ca", ca, "--agent-key", curve_pub,
                            "--identity", j["identity_public_key"], "--out",
                            self.path("j.cert"), "--json").stdout)
        self.assertEqual(sj["certificate"], text)  # Ed25519 is deterministic
        self.assertEqual((sj["curve_public_key"], sj["identity_public_key"], sj["ca_public_key"]),
                         (curve_pub, j["identity_public_key"], ca_hex))

        # show: unchecked, then against the right CA (hex and .pub), the text or the file
        out = run(COORD, "ca", "show", cert).stdout
        self.assertIn(curve_pub, out)
        self.assertIn(j["identity_public_key"], out)
        self.assertIn("not checked", out)
        for ca_arg in (ca_hex, ca + ".pub"):
            for c in (cert, text):
                out = run(COORD, "ca", "show", "--ca-pub", ca_arg, c).stdout
                self.assertIn("valid, issued by identity CA " + ca_hex, out)
        v = json.loads(run(COORD, "ca", "show", "--ca-pub", ca_hex, cert, "--json").stdout)
        self.assertEqual(v, {"curve_public_key": curve_pub,
                             "identity_public_key": j["identity_public_key"],
                             "ca_public_key": ca_hex, "signature_valid": True})
        v = json.loads(run(COORD, "ca", "show", cert, "--json").stdout)
        self.assertIsNone(v["signature_valid"])

        # another CA: exit 1, naming it
        p = run(COORD, "ca", "show", "--ca-pub", other_hex, cert, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("INVALID", p.stdout)
        self.assertIn("not signed by the identity CA %s" % other_hex[:16], p.stderr)
        p = run(COORD, "ca", "show", "--ca-pub", other_ca + ".pub", cert, "--json", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertFalse(json.loads(p.stdout)["signature_valid"])

        # tampered: a character of the identity key, of the signature; cut short
        for pos in (12 + 50, 12 + 120):
            c = text[pos]
            bad = text[:pos] + ("A" if c != "A" else "B") + text[pos + 1:]
            p = run(COORD, "ca", "show", "--ca-pub", ca_hex, bad, check=False)
            self.assertEqual(p.returncode, 1, p.stdout)
            self.assertIn("not signed by the identity CA", p.stderr)
            self.assertIn("modified", p.stderr)
        for bad, why in ((text[:-5], "expected 171"), (text + "xy", "expected 171"),
                         (text.replace("covey-cert1.", "covey-cert2."), "should start with"),
                         (text[:100] + "*" + text[101:], "not valid base64url")):
            p = run(COORD, "ca", "show", "--ca-pub", ca_hex, bad, check=False)
            self.assertEqual(p.returncode, 1)
            self.assertIn(why, p.stderr)
        with open(self.path("bad.cert"), "w") as f:
            f.write(text[:-5] + "\n")
        p = run(COORD, "ca", "show", self.path("bad.cert"), check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("bad.cert", p.stderr)

        # sign refuses what is not an identity key, and the CA's public half as --ca
        p = run(COORD, "ca", "sign", "--ca", ca, "--agent-key", curve_pub, "--identity",
                "01" + "00" * 31, "--out", self.path("x.cert"), check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("not a valid Ed25519 public key", p.stderr)
        p = run(COORD, "ca", "sign", "--ca", ca + ".pub", "--agent-key", curve_pub, "--identity",
                j["identity_public_key"], "--out", self.path("x.cert"), check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("is a public key", p.stderr)
        self.assertFalse(os.path.exists(self.path("x.cert")))

    def test_help_and_usage(self):
        for args in (["ca", "--help"], ["ca", "init", "--help"], ["ca", "sign", "--help"],
                     ["ca", "show", "--help"]):
            p = run(COORD, *args)
            self.assertTrue(p.stdout.startswith("usage: covey-coordinator ca"), args)
        self.assertIn("--identity-cert", run(AGENT, "enroll", "--help").stdout)
        self.assertIn("usage: covey-agent identity", run(AGENT, "identity", "--help").stdout)
        self.assertIn(" ca ", run(COORD, "--help").stdout)
        self.assertIn(" identity ", run(AGENT, "--help").stdout)
        for args in (["ca"], ["ca", "nope"], ["ca", "init"], ["ca", "init", "--out"],
                     ["ca", "init", "--out", "a", "--bogus"], ["ca", "sign", "--ca", "x"],
                     ["ca", "sign", "--ca", "x", "--agent-key", "y", "--identity", "zz",
                      "--out", "c"], ["ca", "show"], ["ca", "show", "a", "b"]):
            p = run(COORD, *args, check=False)
            self.assertEqual(p.returncode, 2, args)
            self.assertRegex(p.stderr, r"^covey-coordinator ca", args)
        for args in ([], ["--key", "a", "--state", "b"], ["--key", "a", "extra"]):
            self.assertEqual(run(AGENT, "identity", *args, check=False).returncode, 2, args)
        p = run(AGENT, "identity", "--key", self.path("missing.key"), check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("missing.key", p.stderr)

    def test_enroll_with_identity(self):
        fed = Federation("ca")
        try:
            fed.start_coordinator()
            fed.wait_log("coordinator", r'msg="coordinator started"', 60)
            ca, ca_hex = self.ca_init()
            other_ca, _ = self.ca_init("other.key")

            # --identity-cert with a token: refused before the token is spent
            tok = fed.create_token("edge-0")
            adir = os.path.join(fed.dir, "agent-edge-0")
            p = run(AGENT, "enroll", tok, "--state", adir, "--identity-ca", ca_hex,
                    "--identity-cert", self.path("none.cert"), check=False)
            self.assertEqual(p.returncode, 2)
            self.assertIn("covey-agent identity --state", p.stderr)
            # a bad CA key: refused, token not spent either
            p = run(AGENT, "enroll", tok, "--state", adir, "--identity-ca", "abc", check=False)
            self.assertEqual(p.returncode, 1)
            self.assertIn("--identity-ca", p.stderr)
            p = run(AGENT, "enroll", tok, "--state", adir, "--identity-ca", ca + ".pub",
                    timeout=60)
            self.assertIn("covey-agent identity --state", p.stdout)
            ini = os.path.join(adir, "agent.ini")
            vals = ini_values(ini)
            self.assertEqual(vals["identity_ca"], ca_hex)
            self.assertEqual(vals["identity_cert"], "")

            # identity from the state directory names the agent in the command
            j = self.identity("--state", adir)
            jk = self.identity("--key", os.path.join(adir, "agent.key"))
            self.assertEqual((j["curve_public_key"], j["identity_public_key"]),
                             (jk["curve_public_key"], jk["identity_public_key"]))
            self.assertTrue(j["sign_command"].endswith("--out edge-0.cert"))

            key = os.path.join(adir, "agent.key")
            cert = self.path("edge-0.cert")
            self.sign(ca, key, cert)
            # another CA's certificate, another agent's: refused, agent.ini unchanged
            with open(ini) as f:
                before = f.read()
            self.sign(other_ca, key, self.path("other-ca.cert"))
            p = run(AGENT, "enroll", "--state", adir, "--identity-cert",
                    self.path("other-ca.cert"), check=False)
            self.assertEqual(p.returncode, 1)
            self.assertIn("not signed by the identity CA", p.stderr)
            other_key = self.agent_key("other-agent.key")
            self.sign(ca, other_key, self.path("other-agent.cert"))
            p = run(AGENT, "enroll", "--state", adir, "--identity-cert",
                    self.path("other-agent.cert"), check=False)
            self.assertEqual(p.returncode, 1)
            self.assertIn("another agent's key", p.stderr)
            # the right identity key for another CURVE key is refused too
            self.sign(ca, other_key, self.path("mixed.cert"), identity=j["identity_public_key"])
            p = run(AGENT, "enroll", "--state", adir, "--identity-cert", self.path("mixed.cert"),
                    check=False)
            self.assertEqual(p.returncode, 1)
            # only identity options without a token
            p = run(AGENT, "enroll", "--state", adir, "--identity-cert", cert, "--parts", "2",
                    check=False)
            self.assertEqual(p.returncode, 2)
            with open(ini) as f:
                self.assertEqual(f.read(), before)

            # the right one, by a relative path: recorded absolute
            p = covey.subprocess.run([AGENT, "enroll", "--state", adir, "--identity-cert",
                                      "edge-0.cert"], cwd=self.dir, capture_output=True,
                                     text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            vals = ini_values(ini)
            self.assertEqual(vals["identity_cert"], cert)
            self.assertEqual(vals["identity_ca"], ca_hex)
            self.assertEqual(vals["name"], "edge-0")  # the rest kept
            self.assertEqual(stat.S_IMODE(os.stat(ini).st_mode), 0o600)
            out = run(AGENT, "identity", "--state", adir).stdout
            self.assertIn("certificate          %s: valid" % cert, out)

            # a new CA alone: the installed certificate is not its own
            p = run(AGENT, "enroll", "--state", adir, "--identity-ca", other_ca + ".pub",
                    check=False)
            self.assertEqual(p.returncode, 1)
            self.assertIn("not signed by the identity CA", p.stderr)
            self.assertEqual(ini_values(ini)["identity_ca"], ca_hex)

            # the enrolled agent still runs from its state (agent.ini reads back)
            fed.start_agent_state("edge-0", adir)
            fed.wait_log("coordinator", r'msg="agent connected" agent=edge-0 ', 60)
        finally:
            fed.close()


if __name__ == "__main__":
    covey.main()
