"""A real PostgreSQL server of the test suite's own: `initdb` into a temporary folder,
listening on a Unix socket in that folder only (no TCP), password authentication, stopped
at the end of the session. Debian's `postgresql` package (.ci/run installs it) puts the
server programs in /usr/lib/postgresql/<version>/bin, off PATH.

PostgreSQL refuses to run as root (CI runs as root): there the server runs as `nobody`,
its folder handed to that user.
"""

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time

USER = "costhook"
PASSWORD = "s3cret-pw"  # reaches the client through PGPASSWORD only, never a URL or argv


def server_bin() -> str | None:
    """The folder holding initdb and pg_ctl, or None when no server is installed."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return os.path.dirname(os.path.realpath(found))
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                      key=lambda p: int(p.split("/")[-3]) if p.split("/")[-3].isdigit() else 0)
    return os.path.dirname(versions[-1]) if versions else None


class Server:
    def __init__(self, root: str, bindir: str):
        self.root, self.bindir = root, bindir
        self.data = os.path.join(root, "data")
        self.socket_dir = root
        self.port = 5432  # the socket's name only (.s.PGSQL.5432 in its own folder): no TCP
        self.as_nobody = os.geteuid() == 0

    def url(self, dbname: str = "postgres", **params) -> str:
        """A libpq URL without a password (it comes from PGPASSWORD)."""
        from urllib.parse import quote

        extra = "".join(f"&{k}={quote(str(v))}" for k, v in params.items())
        return f"postgresql://{USER}@/{dbname}?host={quote(self.socket_dir, safe='')}&port={self.port}{extra}"

    def _run(self, args: list, **kwargs):
        if self.as_nobody:
            args = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *args]
        return subprocess.run(args, check=True, capture_output=True, cwd="/", **kwargs)

    def init(self) -> None:
        pwfile = os.path.join(self.root, "pw")
        with open(pwfile, "w") as f:
            f.write(PASSWORD + "\n")
        if self.as_nobody:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.root, nobody.pw_uid, nobody.pw_gid)
            os.chown(pwfile, nobody.pw_uid, nobody.pw_gid)
        os.chmod(self.root, 0o700)
        self._run([os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", USER, "--pwfile", pwfile,
                   "--auth=scram-sha-256", "-E", "UTF8", "--no-sync", "--locale=C"])
        os.unlink(pwfile)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(f"listen_addresses = ''\nunix_socket_directories = '{self.socket_dir}'\nport = {self.port}\n"
                    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 60\n"
                    "shared_buffers = 128MB\n")
        if self.as_nobody:
            nobody = pwd.getpwnam("nobody")
            os.chown(os.path.join(self.data, "postgresql.conf"), nobody.pw_uid, nobody.pw_gid)

    def start(self) -> None:
        self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-l", os.path.join(self.root, "log"),
                   "-w", "-t", "60", "start"])

    def stop(self, mode: str = "fast") -> None:
        self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", mode, "-w", "stop"])

    def running(self) -> bool:
        return os.path.exists(os.path.join(self.data, "postmaster.pid"))

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), password=PASSWORD, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def start() -> Server:
    """A new server, running. Raises RuntimeError when no server programs are installed."""
    bindir = server_bin()
    if bindir is None:
        raise RuntimeError("no PostgreSQL server programs (initdb, pg_ctl): apt-get install postgresql")
    root = tempfile.mkdtemp(prefix="costhook-pg-")
    server = Server(root, bindir)
    server.init()
    server.start()
    return server


def finish(server: Server) -> None:
    try:
        if server.running():
            server.stop("immediate")
    finally:
        time.sleep(0.1)
        shutil.rmtree(server.root, ignore_errors=True)
