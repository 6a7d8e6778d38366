"""gunicorn settings for the web process: `gunicorn -c python:config.gunicorn config.wsgi`."""

import os

from config.log import GUNICORN_ACCESS_LOG_FORMAT
from config.runtime import freeze_startup_objects

# Loopback unless told otherwise (the Procfile binds all interfaces for a platform router).
bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
# Sync workers serve one request per connection, so requests spread evenly over workers;
# run behind a proxy that buffers slow clients (nginx, a cloud load balancer).
worker_class = os.environ.get("WEB_WORKER_CLASS", "sync")
workers = int(os.environ.get("WEB_CONCURRENCY", str(2 * (os.cpu_count() or 1) + 1)))
threads = int(os.environ.get("WEB_THREADS", "1"))
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
# The application (Django, every view: see config.wsgi) is imported once in the master and
# inherited by each worker at fork: workers are ready at once and their first request is as
# fast as the rest. Code changes need a restart of the master (they always did in production).
preload_app = os.environ.get("WEB_PRELOAD", "1") != "0"
# Off unless asked for (the Procfile's web process asks: `--access-logfile -`, to stdout), so
# benchmarks measure the service, not its log. One line per request: method, path without the
# query string, status, milliseconds; never headers (Authorization) or bodies.
accesslog = os.environ.get("WEB_ACCESS_LOG") or None
access_log_format = GUNICORN_ACCESS_LOG_FORMAT


def post_worker_init(worker) -> None:
    freeze_startup_objects()

# gunicorn 27's control socket is one path per user ($HOME/.gunicorn/gunicorn.ctl): several
# servers on one machine (tests, benchmarks, a second deployment) share it and one server's
# commands reach another. Nothing here uses it.
control_socket_disable = True
