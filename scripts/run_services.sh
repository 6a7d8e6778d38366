#!/usr/bin/env bash
# `make run-services`: the services profile on this machine. Settings come from
# var/services.env (written on first use with local defaults and a random SECRET_KEY; edit it
# freely), then `manage.py run_services` creates and migrates the databases and runs every
# Procfile process under supervisord.
set -euo pipefail
cd "$(dirname "$0")/.."
ENV_FILE="${SERVICES_ENV_FILE:-var/services.env}"
if [ ! -f "$ENV_FILE" ]; then
  mkdir -p "$(dirname "$ENV_FILE")"
  secret="$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(50))')"
  umask 077
  cat > "$ENV_FILE" <<CONF
# Settings for \`make run-services\` (the services profile on this machine). Edit freely;
# every variable is documented in README.md and config/settings.py.
DATABASE_URL=postgres://postgres@127.0.0.1:5432/notify
SHARD_DATABASE_URLS=postgres://postgres@127.0.0.1:5432/notify_shard_0,postgres://postgres@127.0.0.1:5432/notify_shard_1
REDIS_URL=redis://127.0.0.1:6379/0
SECRET_KEY=$secret
# Loopback only on a workstation; a server behind a load balancer binds 0.0.0.0.
HOST=127.0.0.1
PORT=8000
WS_PORT=8001
CONF
  echo "Wrote $ENV_FILE (local PostgreSQL and Redis, a new SECRET_KEY)."
fi
set -a
# shellcheck disable=SC1090
. "$ENV_FILE"
set +a
export NOTIFY_PROFILE=services PATH="$PWD/.venv/bin:$PATH"
exec .venv/bin/python manage.py run_services "$@"
