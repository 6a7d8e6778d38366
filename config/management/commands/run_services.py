"""Run every Procfile process of the services profile under supervisord.

``make run-services`` calls this: create the databases if missing, migrate them, seed the
demo catalog, then hand over to supervisord, which starts each Procfile process and restarts
one that exits (a crashed worker does not stop the web server, nor the others). Its output,
one stream for all processes, goes to the terminal; Ctrl-C stops everything.
"""

from __future__ import annotations

import getpass
import os
import secrets
import shlex
import shutil
import sys
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from config.procfile import read_procfile

ROOT = Path(settings.BASE_DIR)


class Command(BaseCommand):
    help = "Create and migrate the databases, then run every Procfile process under supervisord (restarting crashes)."

    def add_arguments(self, parser):
        parser.add_argument("--only", default="", help="Comma-separated Procfile process names to run (default: all)")
        parser.add_argument("--config-only", action="store_true", help="Write supervisord.conf, print its path, stop")
        parser.add_argument("--skip-setup", action="store_true", help="Do not create, migrate or seed the databases")

    def handle(self, *args, only, config_only, skip_setup, **options):
        if settings.PROFILE != "services":
            raise CommandError(
                "run_services runs the services profile: set DATABASE_URL, SHARD_DATABASE_URLS, REDIS_URL and "
                "SECRET_KEY (`make run-services` does it from var/services.env)."
            )
        processes = read_procfile()
        if only:
            wanted = {name.strip() for name in only.split(",") if name.strip()}
            unknown = wanted - {p.name for p in processes}
            if unknown:
                raise CommandError(f"no such Procfile process: {', '.join(sorted(unknown))}")
            processes = [p for p in processes if p.name in wanted]
        run_dir = Path(settings.VAR_DIR) / "services"
        run_dir.mkdir(parents=True, exist_ok=True)
        conf = run_dir / "supervisord.conf"
        conf.touch(mode=0o600)
        conf.chmod(0o600)
        conf.write_text(supervisord_conf(processes, run_dir))
        if config_only:
            self.stdout.write(str(conf))
            return
        if not skip_setup:
            self.stderr.write("Preparing the databases (create if missing, migrate, demo catalog)...")
            call_command("create_databases", verbosity=options["verbosity"])
            call_command("migrate", verbosity=0, interactive=False)
            call_command("seed_demo", catalog_only=True, verbosity=0)
        supervisord = shutil.which("supervisord", path=str(Path(sys.executable).parent)) or shutil.which("supervisord")
        if supervisord is None:
            raise CommandError("supervisord is not installed (pip install -r requirements.txt)")
        self.stderr.write(banner(processes, conf))
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(supervisord, [supervisord, "--nodaemon", "--configuration", str(conf)])


def supervisord_conf(processes, run_dir: Path) -> str:
    bin_dir = Path(sys.executable).parent
    # The control socket is private (0700) and the file holding these is written 0600; a new
    # pair each start keeps supervisord from warning that it runs unauthenticated.
    credentials = ("notify", secrets.token_urlsafe(16))
    lines = [
        "; Written by `manage.py run_services` from the Procfile; rewritten at every start.",
        "[supervisord]",
        "nodaemon=true",
        # In the foreground supervisord echoes its log to the terminal already.
        "logfile=/dev/null",
        "logfile_maxbytes=0",
        "loglevel=info",
        f"user={getpass.getuser()}",
        f"pidfile={run_dir / 'supervisord.pid'}",
        f"childlogdir={run_dir}",
        "",
        "[unix_http_server]",
        f"file={run_dir / 'supervisor.sock'}",
        "chmod=0700",
        f"username={credentials[0]}",
        f"password={credentials[1]}",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{run_dir / 'supervisor.sock'}",
        f"username={credentials[0]}",
        f"password={credentials[1]}",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
    ]
    for process in processes:
        # bash expands the Procfile's ${VAR:-default}; env applies its VAR=value prefixes; exec
        # hands the process itself to supervisord, so signals reach it. '%' is supervisord's escape.
        command = "/bin/bash -c " + shlex.quote(f"exec env {process.command}")
        lines += [
            "",
            f"[program:{process.name}]",
            f"command={command.replace('%', '%%')}",
            f"directory={ROOT}",
            f'environment=PATH="{bin_dir}:%(ENV_PATH)s",NOTIFY_PROCESS="{process.name}"',
            "autostart=true",
            "autorestart=true",
            "startsecs=3",
            # Linear back-off between restarts; a process that keeps failing (a database still
            # down at start-up) keeps being retried rather than given up on.
            "startretries=1000",
            "stopasgroup=true",
            "killasgroup=true",
            "stopsignal=TERM",
            "stopwaitsecs=30",
            "redirect_stderr=true",
            "stdout_logfile=/dev/stdout",
            "stdout_logfile_maxbytes=0",
        ]
    return "\n".join(lines) + "\n"


def banner(processes, conf: Path) -> str:
    host = os.environ.get("HOST", "0.0.0.0")
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    port, ws_port = os.environ.get("PORT", "8000"), os.environ.get("WS_PORT", "8001")
    ctl = f"{Path(sys.executable).parent / 'supervisorctl'} -c {conf}"
    return "\n".join(
        [
            "",
            f"Starting {len(processes)} processes under supervisord: {', '.join(p.name for p in processes)}.",
            "A process that exits is started again; Ctrl-C stops them all.",
            f"  API            http://{shown}:{port}/api/v1/   (docs http://{shown}:{port}/api/docs/)",
            f"  Admin          http://{shown}:{port}/admin/",
            f"  Readiness      http://{shown}:{port}/readyz",
            f"  WebSockets     ws://{shown}:{ws_port}/",
            f"  Status         {ctl} status",
            "No demo credentials in this profile: create them with",
            "  .venv/bin/python manage.py createsuperuser",
            "  .venv/bin/python manage.py create_api_client my-service",
            "(with the variables of var/services.env exported, e.g. `set -a; . var/services.env; set +a`).",
            "",
        ]
    )
