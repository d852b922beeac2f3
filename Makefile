# OR1 Lab. The two commands are `make demo` and `make test`; the other targets are what they are made of.
# Every target that needs Python brings the virtualenv up to date first, and does nothing when it already
# is: the install stamp is named after a hash of pyproject.toml and the installer, so editing either (or
# choosing other EXTRAS or another TORCH_SPEC) reinstalls, and nothing else does.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
# train,cpu,dev on a CPU machine; train,gpu,dev with TORCH_SPEC=torch==2.13.0 on an NVIDIA host.
EXTRAS ?= train,cpu,dev
TORCH_SPEC ?= torch==2.13.0+cpu
TORCH_INDEX_URL ?= https://download.pytorch.org/whl/cpu
# Where the service scripts write URLs and credentials; `make test` reads it when it exists.
ENV_FILE ?= var/services.env
# `make test` starts the services first in CI, or when asked with SERVICES=1.
SERVICES ?= $(if $(filter true 1,$(CI)),1,0)
PYTEST_ARGS ?=

PY := $(VENV)/bin/python
INSTALL_KEY := $(shell { cat pyproject.toml deploy/install_venv.sh deploy/pins_satisfied.py; \
                         echo "$(EXTRAS) $(TORCH_SPEC) $(PYTHON)"; } | sha256sum | cut -c1-16)
STAMP := $(VENV)/.or1-installed-$(INSTALL_KEY)

export VENV PYTHON EXTRAS TORCH_SPEC TORCH_INDEX_URL
export OR1_SERVICES_ENV := $(abspath $(ENV_FILE))

.PHONY: help install demo test lint services services-down

help:
	@echo "make demo           install, then run the platform with a worker on the embedded defaults"
	@echo "make test           install, start the services in CI (or with SERVICES=1), run pytest"
	@echo "make install        create or update $(VENV) (EXTRAS=$(EXTRAS), $(TORCH_SPEC))"
	@echo "make lint           ruff check"
	@echo "make services       PostgreSQL + Redis, Slurm + slurmrestd (JWT), Chromium; writes $(ENV_FILE)"
	@echo "make services-down  stop the Slurm daemons that 'make services' started"

install: $(STAMP)

$(STAMP):
	bash deploy/install_venv.sh
	rm -f $(VENV)/.or1-installed-*
	touch $@

demo: install
	$(PY) manage.py demo

test: install
	@if [ "$(SERVICES)" = 1 ]; then $(MAKE) --no-print-directory services; fi
	@set -a; if [ -f "$(ENV_FILE)" ]; then . "$(ENV_FILE)"; fi; set +a; \
	rc=0; $(VENV)/bin/pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc = 5 ]; then echo "make test: pytest collected no tests, which counts as a failure" >&2; fi; \
	exit $$rc

lint: install
	$(VENV)/bin/ruff check .

services:
	bash deploy/services/pg_redis_up.sh
	bash deploy/services/slurm_up.sh
	bash deploy/services/chromium_install.sh

services-down:
	bash deploy/services/slurm_down.sh
