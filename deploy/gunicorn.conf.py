"""gunicorn's settings for the biobank behind nginx (deploy/nginx/biobank.conf).

``gunicorn -c deploy/gunicorn.conf.py wsgi:app``; ``--bind`` and ``--workers`` on the command
line (or GUNICORN_BIND / GUNICORN_WORKERS) override the values below.
"""

import multiprocessing
import os

# Where nginx finds us: a Unix socket under systemd (RuntimeDirectory=biobank), a loopback
# port for deploy/serve. Never a public address: nginx is the only client.
bind = os.environ.get("GUNICORN_BIND", "unix:/run/biobank/gunicorn.sock")

# Sync workers. nginx buffers every request and answer, so a worker never waits on a
# client; what it waits on is the database (one connection per worker, the pool's) and
# its own CPU. Threads would share one GIL over a CPU-bound app; gevent would need a
# green database driver. Two per core plus one keeps the cores busy while some workers
# wait for PostgreSQL.
worker_class = "sync"
workers = int(os.environ.get("GUNICORN_WORKERS", 2 * multiprocessing.cpu_count() + 1))

# The app is built once, in the master, before the workers are forked: a worker starts
# serving at once (building the app, its OpenAPI document above all, takes seconds on a
# busy machine), and the workers share those pages. No database connection exists before
# the fork (the pool connects on first use), so none is shared between workers.
preload_app = True

# A request still running after 30 s (a stalled database, a runaway query) has its worker
# restarted; nginx answers that client 503 with Retry-After. Reports and exports stream
# in well under that per chunk.
timeout = 30
graceful_timeout = 30
# Sync workers close the connection after each answer; nginx opens a new one per request
# over the socket (microseconds).
keepalive = 2

# A worker is replaced after about 10 000 requests (jittered so they do not all restart
# together): whatever memory a long life accumulates is given back.
max_requests = 10_000
max_requests_jitter = 1_000

# The request line and headers nginx passes on (it refuses bigger ones first).
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190

# gunicorn believes X-Forwarded-* only from nginx on this machine; the app's own ProxyFix
# (BIOBANK_TRUSTED_PROXIES=1) takes the client address from it.
forwarded_allow_ips = "127.0.0.1"

# No control socket (gunicorn 27): deploy/serve may run several stacks side by side, and
# systemd controls the service by signals.
control_socket_disable = True

# Logs to stderr: journald keeps them under systemd, the terminal under deploy/serve.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
