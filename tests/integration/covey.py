"""covey.py — harness for Covey's integration tests: real covey-coordinator and
covey-agent processes on 127.0.0.1, real CurveZMQ, a real SQLite file.

Every process a test starts is registered and reaped at the end (also on
failure or timeout); every wait has a generous deadline and fails with the
logs attached rather than hanging. Ports are picked free by the kernel.
"""

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest

BIN = os.environ.get("COVEY_BIN") or os.path.join(os.path.dirname(__file__), "..", "..", "build")
COORD = os.path.join(BIN, "covey-coordinator")
AGENT = os.path.join(BIN, "covey-agent")
# A misbehaving agent built from libcovey (tests/tools/evil_agent.c).
EVIL = os.path.join(BIN, "tools", "evil_agent")
# Forges join tokens and sends single messages (tests/tools/sec_probe.c).
SEC_PROBE = os.path.join(BIN, "tools", "sec_probe")
# Under sanitizers everything is several times slower: stretch every deadline.
SLOW = 4.0 if os.environ.get("COVEY_ASAN") else 1.0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(*args, check=True, timeout=120):
    """Run a covey command to completion; returns CompletedProcess (text)."""
    p = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout * SLOW)
    if check and p.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
    return p


class Federation:
    """A coordinator state directory plus the processes of one test."""

    def __init__(self, name="t", model="softmax:784-10", settings=None):
        self.dir = tempfile.mkdtemp(prefix="covey-it-%s-" % name)
        self.state = os.path.join(self.dir, "state")
        self.port = free_port()
        self.endpoint = "tcp://127.0.0.1:%d" % self.port
        # A free port for enrollment too: the default (*:7701) would make two
        # federations on one machine (parallel test runs) collide.
        self.enroll_port = free_port()
        self.enroll_endpoint = "tcp://127.0.0.1:%d" % self.enroll_port
        self.procs = {}
        self.logs = {}
        self.retired = []  # processes replaced by a restart under the same name
        self.model = model
        sets = {
            "federation.endpoint": self.endpoint,
            "federation.enroll_endpoint": self.enroll_endpoint,
            "federation.name": name,
            "rounds.stale_after": "6",
            "rounds.train_timeout": str(int(60 * SLOW)),
            "rounds.eval_timeout": str(int(60 * SLOW)),
        }
        sets.update(settings or {})
        args = [COORD, "init", "--state", self.state, "--model", model]
        for k, v in sets.items():
            args += ["--set", "%s=%s" % (k, v)]
        run(*args)
        self.server_pub = os.path.join(self.state, "server.key.pub")
        self.sign_pub = os.path.join(self.state, "signing.key.pub")
        self.db = os.path.join(self.state, "covey.db")

    # -- agents -------------------------------------------------------------
    def keygen(self, name):
        key = os.path.join(self.dir, name + ".key")
        pub = run(AGENT, "keygen", "--out", key).stdout.strip()
        return key, pub

    def add_agent(self, name):
        key, pub = self.keygen(name)
        run(COORD, "agents", "add", name, pub, "--state", self.state)
        return key

    def start_agent(self, name, key, index, parts, partition="iid", seed=7, extra=(),
                    endpoint=None):
        """endpoint: where the agent connects (default the coordinator's; e.g. a Relay)."""
        args = [AGENT, "run", "--coordinator", endpoint or self.endpoint,
                "--server-key", self.server_pub,
                "--key", key, "--data", "fashion-mnist", "--partition", partition,
                "--parts", str(parts), "--index", str(index), "--seed", str(seed)] + list(extra)
        return self._spawn(name, args)

    def create_token(self, name, ttl="1h"):
        """A one-time join token for agent `name` (covey-coordinator token create)."""
        return run(COORD, "token", "create", "--name", name, "--ttl", ttl, "--host", "127.0.0.1",
                   "--state", self.state).stdout.strip()

    def enroll_agent(self, name, index=0, parts=1, partition="iid", seed=7, token=None,
                     adir=None, check=True):
        """Enroll an agent with a join token (a new one for `name` unless `token`
        is given) into its own state directory (default <dir>/agent-<name>):
        covey-agent enroll makes its key and agent.ini. The coordinator must be
        running. Returns (adir, CompletedProcess)."""
        adir = adir or os.path.join(self.dir, "agent-" + name)
        tok = token if token is not None else self.create_token(name)
        p = run(AGENT, "enroll", tok, "--state", adir, "--partition", partition,
                "--parts", str(parts), "--index", str(index), "--seed", str(seed),
                check=check, timeout=60)
        return adir, p

    def start_agent_state(self, name, adir, extra=()):
        """Run an enrolled agent from its state directory alone (run --state)."""
        return self._spawn(name, [AGENT, "run", "--state", adir] + list(extra))

    def start_evil(self, name, key, mode, extra=()):
        """A misbehaving agent (tests/tools/evil_agent.c); its stdout reports
        every reply it gets ("reply t=error reason=..."), see that file."""
        args = [EVIL, "--coordinator", self.endpoint, "--server-key", self.server_pub,
                "--key", key, "--mode", mode] + list(extra)
        return self._spawn(name, args)

    # -- coordinator --------------------------------------------------------
    def start_coordinator(self, extra=()):
        return self._spawn("coordinator", [COORD, "run", "--state", self.state] + list(extra))

    def _spawn(self, name, args):
        """Start a process whose stdout and stderr go to <dir>/<name>.log
        (appended to, so a restarted process keeps one log). Restarting a
        name keeps the old process for close() to reap."""
        old = self.procs.get(name)
        if old is not None:
            self.retired.append(old)
        with open(os.path.join(self.dir, name + ".log"), "ab") as log:
            p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL)
        self.procs[name] = p
        self.logs[name] = log.name
        return p

    def kill(self, name, sig=signal.SIGKILL):
        p = self.procs.get(name)
        if p and p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout=30 * SLOW)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def log(self, name):
        with open(self.logs[name], "rb") as f:
            return f.read().decode(errors="replace")

    def log_size(self, name):
        """Bytes in a process's log so far: pass as `since` to wait_log to
        look only at what is written from now on."""
        try:
            return os.path.getsize(self.logs[name])
        except (KeyError, OSError):
            return 0

    def wait_log(self, name, pattern, timeout, since=0, poll=0.05):
        """Wait until the log of `name`, from byte `since` on, matches the
        regular expression `pattern`; returns the match. Fails with the log's
        tail if the process exits first or the deadline (scaled by SLOW)
        passes. Polls every `poll` s, so a test can act right after an event."""
        deadline = time.time() + timeout * SLOW
        rx = re.compile(pattern)
        while True:
            with open(self.logs[name], "rb") as f:
                f.seek(since)
                m = rx.search(f.read().decode(errors="replace"))
            if m:
                return m
            p = self.procs.get(name)
            if p is not None and p.poll() is not None:
                raise AssertionError("%s exited (%s) before its log showed /%s/\n%s"
                                     % (name, p.returncode, pattern, self.tail(name)))
            if time.time() >= deadline:
                raise AssertionError("timed out waiting for /%s/ in the log of %s\n%s"
                                     % (pattern, name, self.tail(name)))
            time.sleep(poll)

    def wait_exit(self, name, timeout):
        """Wait for a process to exit by itself; returns its exit code."""
        p = self.procs[name]
        try:
            return p.wait(timeout=timeout * SLOW)
        except subprocess.TimeoutExpired:
            raise AssertionError("%s did not exit within %ss\n%s"
                                 % (name, timeout * SLOW, self.tail(name)))

    # -- observation ---------------------------------------------------------
    def status(self):
        out = run(COORD, "status", "--state", self.state, "--json", timeout=30).stdout
        return json.loads(out)

    def wait_for(self, what, pred, timeout):
        deadline = time.time() + timeout * SLOW
        last = None
        while time.time() < deadline:
            try:
                last = self.status()
                if pred(last):
                    return last
            except (AssertionError, ValueError, subprocess.TimeoutExpired) as e:
                last = repr(e)
            for n, p in self.procs.items():
                if n == "coordinator" and p.poll() is not None and p.returncode != 0:
                    raise AssertionError("coordinator exited %d while waiting for %s\n%s"
                                         % (p.returncode, what, self.tail("coordinator")))
            time.sleep(0.3)
        raise AssertionError("timed out waiting for %s; last status: %s\n%s"
                             % (what, json.dumps(last, indent=1)[:3000], self.tail("coordinator")))

    def tail(self, name, n=40):
        try:
            return "--- %s log (last %d lines)\n%s" % (name, n, "\n".join(self.log(name).splitlines()[-n:]))
        except (KeyError, OSError):
            return ""

    def checkpoint_digest(self, rnd):
        """The hex BLAKE2b-256 digest of the checkpoint of round rnd, or None."""
        rows = self.query("SELECT lower(hex(digest)) FROM checkpoints WHERE round = ?", (rnd,))
        return rows[0][0] if rows else None

    def agent_rows(self, name):
        """(round, attempt, status, reason) of one agent's round_agents rows."""
        return self.query("SELECT ra.round, ra.attempt, ra.status, ra.reason FROM round_agents ra "
                          "JOIN agents a ON a.id = ra.agent_id WHERE a.name = ? "
                          "ORDER BY ra.round, ra.attempt", (name,))

    def query(self, sql, args=()):
        con = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True, timeout=10)
        try:
            return con.execute(sql, args).fetchall()
        finally:
            con.close()

    def close(self):
        # SIGTERM to all at once (so many processes stop in parallel), then
        # reap each, with SIGKILL for any that does not stop in time.
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for name in list(self.procs):
            self.kill(name, signal.SIGTERM)
        for name in list(self.procs):
            self.kill(name, signal.SIGKILL)
        for p in self.retired:
            if p.poll() is None:
                p.kill()
            p.wait()
        # Under sanitizers a report in any child fails the test that ran it.
        reports = self.sanitizer_reports()
        if os.environ.get("COVEY_KEEP_TMP") or reports:
            print("kept", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        if reports:
            raise AssertionError("sanitizer reports in %s:\n%s" % (self.dir, "\n".join(reports)))

    def sanitizer_reports(self):
        """First lines of AddressSanitizer/LeakSanitizer/UBSan reports in the logs."""
        out = []
        for name, path in self.logs.items():
            try:
                with open(path, "rb") as f:
                    text = f.read().decode(errors="replace")
            except OSError:
                continue
            for m in re.finditer(r"(?m)^.*(ERROR: AddressSanitizer|ERROR: LeakSanitizer|"
                                 r"runtime error:).*$", text):
                out.append("%s: %s" % (name, m.group(0)[:300]))
        return out


class Relay:
    """A TCP relay on 127.0.0.1 between agents and a coordinator, for network
    faults the processes cannot stage themselves. It forwards bytes both ways
    (CurveZMQ passes through untouched) and, with cut_after=n, loses the read
    in which a connection's coordinator-to-agent bytes pass n, then closes that
    connection, as a network failure that drops a reply in flight would (pick
    n inside a model chunk, e.g. 1.5 model sizes: the second download). `cuts`
    counts the connections cut. Threads are daemons; close() stops accepting
    and closes every socket.
    """

    def __init__(self, target_port, cut_after=None):
        self.target_port, self.cut_after = target_port, cut_after
        self.cuts = 0
        self.lock = threading.Lock()
        self.socks = []
        self.closed = False
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(64)
        self.endpoint = "tcp://127.0.0.1:%d" % self.srv.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                down, _ = self.srv.accept()
            except OSError:
                return
            up = socket.socket()
            try:
                up.connect(("127.0.0.1", self.target_port))
            except OSError:
                down.close()  # coordinator down: the agent retries
                up.close()
                continue
            with self.lock:
                self.socks += [down, up]
            threading.Thread(target=self._pump, args=(down, up, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, down, True), daemon=True).start()

    def _pump(self, src, dst, to_agent):
        sent = 0
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                sent += len(data)
                if to_agent and self.cut_after is not None and sent > self.cut_after:
                    with self.lock:
                        self.cuts += 1
                    break  # lost in flight, and the connection with it
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.closed = True
        self.srv.close()
        with self.lock:
            for s in self.socks:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()


class _TimedResult(unittest.TextTestResult):
    """Prints each test's wall time after its verdict."""

    def startTest(self, test):
        self._t0 = time.time()
        super().startTest(test)

    def stopTest(self, test):
        super().stopTest(test)
        self.stream.writeln("    (%.1f s)" % (time.time() - self._t0))


def main():
    """unittest main that prints the plain closing line 'N passed, N failed'."""
    runner = unittest.TextTestRunner(verbosity=2, resultclass=_TimedResult)
    prog = unittest.main(exit=False, testRunner=runner)
    r = prog.result
    failed = len(r.failures) + len(r.errors)
    print("%s: %d passed, %d failed" % (os.path.basename(sys.argv[0]), r.testsRun - failed, failed))
    sys.exit(1 if failed else 0)
