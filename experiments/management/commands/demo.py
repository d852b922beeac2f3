"""``manage.py demo``: the whole platform on one machine with nothing installed but Python.

Steps, in order (``handle`` reads as this list):
1. migrate the database (SQLite under ``var/`` by default);
2. load the example specs as experiments (``load_examples``);
3. create or refresh the demo user, owner of the Demo team, and print its login;
4. start the web server, a Celery worker and Celery beat as child processes (the broker is the filesystem
   one from the settings unless REDIS_URL or CELERY_BROKER_URL says otherwise);
5. once the web server answers: launch the CPU demo run (the ``cpu-demo`` example) through ``launch_run``,
   as the Launch button does, unless one is already active or ``--no-launch`` is given; then print the
   URL, the login and the run's page. The worker starts the trainer, which builds the demo model on first
   use (a few minutes on a laptop CPU) and then trains; the run page follows it live;
6. supervise: Ctrl-C or SIGTERM stops every child (SIGTERM, then SIGKILL of its process group after
   ``--stop-timeout``); if a child dies on its own the others are stopped and the command fails. Trainers
   run detached from the worker (so a worker restart never kills a run), so the demo stops the runs on this
   host first, while the web server can still take their last reports: each is asked to checkpoint and
   stop (SIGTERM), SIGKILLed after ``OR1_CANCEL_GRACE_S``, and recorded as cancelled.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from experiments.actions import add_member, launch_run
from experiments.management.commands.load_examples import demo_project
from experiments.models import Experiment, InvalidTransition, Membership, Run, RunStatus

DEMO_USERNAME = "demo"
DEMO_EXPERIMENT = "cpu-demo"


@dataclass
class Child:
    name: str
    process: subprocess.Popen

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


def ensure_demo_user(password: str):
    """The demo user (a superuser, so the admin is open too) with ``password``, owner of the Demo team."""
    user, _ = get_user_model().objects.get_or_create(username=DEMO_USERNAME)
    user.is_staff = user.is_superuser = True
    user.set_password(password)
    user.save()
    add_member(demo_project().team, user, Membership.Role.OWNER)
    return user


def launch_demo_run(user) -> tuple[Run, bool]:
    """The active run of the CPU demo experiment, or a new one launched now; True when launched now."""
    experiment = Experiment.objects.filter(project=demo_project(), name=DEMO_EXPERIMENT).first()
    if experiment is None:
        raise CommandError(f"there is no {DEMO_EXPERIMENT!r} example to launch (examples/cpu-demo.yaml)")
    active = Run.objects.active().filter(experiment=experiment).first()
    if active is not None:
        return active, False
    return launch_run(experiment, user), True


def stop_local_runs(grace_s: float, log) -> None:
    """Stop the trainers of this host's active local runs: SIGTERM, SIGKILL after ``grace_s``, record it."""
    from workers.launchers import local
    from workers.reconcile import active_local_runs, reconcile_run

    for run in Run.objects.active().filter(launcher=Run.Launcher.LOCAL, status=RunStatus.QUEUED):
        try:
            run.transition_to(RunStatus.CANCELLED, reason="the demo was stopped before the run started")
        except InvalidTransition:
            pass
    for run in active_local_runs(socket.gethostname()):
        try:
            if run.status != RunStatus.CANCELLING:
                run.transition_to(RunStatus.CANCELLING, reason="the demo is stopping")
        except InvalidTransition:
            continue
        run_dir = Path(run.run_dir)
        if local.terminate(run_dir, run.pid):
            log(f"stopping run {run.pk} (SIGTERM: checkpoint and stop)")
            if not local.wait_until_stopped(run_dir, run.pid, grace_s):
                log(f"run {run.pk} did not stop within {grace_s:g}s; killing it")
                local.kill(run_dir)
        run.refresh_from_db()
        try:
            reconcile_run(run)
        except InvalidTransition:
            pass  # the worker's reconciler recorded it first
        log(f"run {run.pk}: {Run.objects.get(pk=run.pk).status}")


def wait_for_port(host: str, port: int, timeout: float, alive) -> bool:
    """Whether something accepts TCP connections on host:port within ``timeout`` while ``alive()`` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.2)
    return False


class Command(BaseCommand):
    help = "Run OR1 Lab locally: migrate, load the examples, create the demo user, start web + worker + beat."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--addr", default="127.0.0.1:8000", help="host:port for the web server")
        parser.add_argument(
            "--password", default=None, help="demo user's password (default: 'demo' in DEBUG)"
        )
        parser.add_argument(
            "--stop-timeout", type=float, default=20.0, help="seconds to wait for a clean stop"
        )
        parser.add_argument(
            "--no-launch", action="store_true", help="do not launch the CPU demo run (serve the platform only)"
        )

    def handle(self, *args, **options) -> None:
        host, _, port = options["addr"].rpartition(":")
        if not host or not port.isdigit():
            raise CommandError(f"--addr must be host:port, not {options['addr']!r}")
        self.stop_timeout = options["stop_timeout"]

        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("database migrated")
        call_command("load_examples", stdout=self.stdout)
        password = options["password"] or ("demo" if settings.DEBUG else secrets.token_urlsafe(12))
        user = ensure_demo_user(password)

        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        children = self.start_services(host, int(port))
        try:
            if not wait_for_port(
                host, int(port), 60.0, lambda: not stop.is_set() and all(c.alive for c in children)
            ):
                if stop.is_set():
                    return
                raise CommandError("the web server did not start; see its output above")
            url = f"http://{host}:{port}/"
            run = None
            if not options["no_launch"]:
                run, launched = launch_demo_run(user)
                state = "launched" if launched else f"already {run.status}:"
                self.stdout.write(f"{state} the CPU demo run {run.pk} ({run.total_steps} steps) on this worker")
            self.stdout.write(self.style.SUCCESS(f"OR1 Lab is running at {url}"))
            self.stdout.write(f"log in as {DEMO_USERNAME} / {password}  (admin: {url}admin/)")
            if run is not None:
                self.stdout.write(f"watch the demo run at {url}runs/{run.pk}/ (trainer log: {run.run_dir}/trainer.log)")
            self.stdout.write("press Ctrl-C to stop")
            self.supervise(children, stop)
        finally:
            stop_local_runs(settings.OR1_CANCEL_GRACE_S, self.stdout.write)
            self.stop_all(children)

    def start_services(self, host: str, port: int) -> list[Child]:
        python = sys.executable
        celery = [python, "-m", "celery", "-A", "or1platform"]
        commands = {
            "web": [
                python,
                str(settings.BASE_DIR / "manage.py"),
                "runserver",
                f"{host}:{port}",
                "--noreload",
            ],
            "worker": [
                *celery,
                "worker",
                "--pool=prefork",
                "--concurrency=1",
                "--queues",
                ",".join(settings.OR1_WORKER_QUEUES),
                "--hostname",
                "demo@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel=INFO",
            ],
            "beat": [*celery, "beat", "--loglevel=INFO"],
        }
        env = os.environ | {
            "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "or1platform.settings"),
            # The trainers the worker starts report to this web server.
            "OR1_PUBLIC_URL": os.environ.get("OR1_PUBLIC_URL") or f"http://{host}:{port}",
        }
        children = []
        for name, command in commands.items():
            # A process group of its own: Ctrl-C reaches only this command, which then stops each child once
            # and in order, and a stubborn child can be killed together with its own children.
            process = subprocess.Popen(command, cwd=settings.BASE_DIR, env=env, process_group=0)
            children.append(Child(name, process))
            self.stdout.write(f"started {name} (pid {process.pid})")
        return children

    def supervise(self, children: list[Child], stop: threading.Event) -> None:
        while not stop.wait(0.5):
            dead = [c for c in children if not c.alive]
            if dead:
                raise CommandError(
                    ", ".join(f"{c.name} exited with code {c.process.returncode}" for c in dead)
                )
        self.stdout.write("stopping")

    def stop_all(self, children: list[Child]) -> None:
        for child in children:
            if child.alive:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for child in children:
            try:
                child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{child.name} did not stop within {self.stop_timeout:g}s; killing it")
            try:  # the child's own children (the worker's pool) too, if any were left behind
                os.killpg(child.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            child.process.wait()
            self.stdout.write(f"stopped {child.name}")
