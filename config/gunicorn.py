"""gunicorn settings for the web process: `gunicorn -c python:config.gunicorn config.wsgi`."""

import os

from config.runtime import freeze_startup_objects

# Loopback unless told otherwise (the Procfile binds all interfaces for a platform router).
bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
# Sync workers serve one request per connection, so requests spread evenly over workers;
# run behind a proxy that buffers slow clients (nginx, a cloud load balancer).
worker_class = os.environ.get("WEB_WORKER_CLASS", "sync")
workers = int(os.environ.get("WEB_CONCURRENCY", str(2 * (os.cpu_count() or 1) + 1)))
threads = int(os.environ.get("WEB_THREADS", "1"))
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
accesslog = os.environ.get("WEB_ACCESS_LOG") or None


def post_worker_init(worker) -> None:
    freeze_startup_objects()
