# DICOM Vault — developer entry points. `make run` and `make test` are all a fresh machine needs.
SHELL := /bin/bash
# The interpreter the venv is made from: the distribution's CPython when it is new enough
# (scripts/pick-python.sh says why), else python3 on PATH. PYTHON=... chooses another.
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell scripts/pick-python.sh)
endif
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
EXTRAS ?= test,k8s,media,transcode,s3
DATA_DIR ?= ./var
OHIF_DIR ?= .ohif
export TCP_NODELAY := 1

.PHONY: FORCE help run test test-fast lint proto proto-check peers venv viewer chart-tools s3-tools bench bench-query fuzz clean

help:
	@echo "make run        start the embedded archive (broker, catalogue on SQLite, all services)"
	@echo "                with the OHIF viewer at http://127.0.0.1:8080/viewer/"
	@echo "make viewer     install the prebuilt OHIF viewer (npm @ohif/app, pinned) into $(OHIF_DIR)"
	@echo "make test       install what the tests need (pip + Debian peers) and run them all"
	@echo "make lint       ruff + import-linter (services never import each other)"
	@echo "make proto      regenerate Python from proto/ ; make proto-check verifies it is current"
	@echo "make bench      run the benchmarks under benchmarks/ and print their figures"
	@echo "make bench-query  only the query benchmark (1M instances in PostgreSQL, filled once)"
	@echo "make fuzz       the long fuzz run (FUZZ_EXAMPLES=10000 inputs per door) with counts"

# The venv is made again when PYTHON names another interpreter than the one it was made from
# (the stamp changes only then, so nothing is reinstalled otherwise).
$(VENV)/.interpreter: FORCE
	@want="$$(readlink -f "$$(command -v $(PYTHON))")"; \
	if [ "$$(cat $@ 2>/dev/null)" != "$$want" ]; then \
		if [ -e $(VENV) ]; then \
			echo "$(VENV) was made from $$(cat $@ 2>/dev/null || echo another interpreter): making it again from $$want"; \
			rm -rf $(VENV); \
		fi; \
		mkdir -p $(VENV) && echo "$$want" > $@; \
	fi

FORCE:

$(VENV)/.installed: pyproject.toml $(VENV)/.interpreter
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e ".[$(EXTRAS)]"
	touch $@

venv: $(VENV)/.installed

# The Helm SDK is large (~250 MB): only the chart tests need it, so it is a separate step.
$(VENV)/.chart-tools: $(VENV)/.installed
	$(PIP) install -q -e ".[$(EXTRAS),chart]"
	touch $@

chart-tools: $(VENV)/.chart-tools

# moto's S3 server for the S3 cache-tier tests. Installed on its own: resolving it together
# with everything else makes pip backtrack for minutes.
$(VENV)/.s3-tools: $(VENV)/.installed
	$(PIP) install -q "moto[s3,server]>=5"
	touch $@

s3-tools: $(VENV)/.s3-tools

peers:
	scripts/install-peers.sh

# The OHIF viewer the gateway serves at /viewer: the npm package's prebuilt dist/, never
# committed (.gitignore); scripts/install-ohif.sh pins the version and is idempotent.
viewer:
	scripts/install-ohif.sh $(OHIF_DIR)

run: venv viewer
	DICOMVAULT_VIEWER__DIST_DIR=$(abspath $(OHIF_DIR))/dist $(VENV)/bin/dicomvault up --data-dir $(DATA_DIR)

proto: venv
	$(PY) -m grpc_tools.protoc -Iproto --python_out=libs --pyi_out=libs $$(find proto -name '*.proto' | sort)

proto-check: venv
	scripts/proto-check.sh $(PY)

lint: venv
	$(VENV)/bin/ruff check libs services cli tests benchmarks
	$(VENV)/bin/lint-imports

# The suite in TEST_WORKERS pytest-xdist processes, a test file per process at a time
# (`--dist loadfile`: a file's module fixtures are set up once). Its tests mostly wait on real
# services and peers (the machine ~45 % busy in a serial run), so two processes halve the time
# on 2 cores: ~12 min against ~25 serial. Each process has its own broker and PostgreSQL
# database (session fixtures); every port is a free one. TEST_WORKERS=0 runs it serially.
TEST_WORKERS ?= 2
test: venv chart-tools s3-tools peers viewer proto-check lint
	$(VENV)/bin/pytest -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile

test-fast: venv
	$(VENV)/bin/pytest -x -q -p no:cacheprovider $(ARGS)

# The long fuzz run: FUZZ_EXAMPLES inputs per door (DIMSE C-STORE, STOW-RS, QIDO-RS, Exporter
# CR), fixed seeds; prints the answers counted per door. `make test` runs the same with ~100.
# The Exporter CR door takes all of them through the operator's reconcile code in process and
# the first 100 through the API emulator and kopf (~0.75 s each that way, slower as it goes).
FUZZ_EXAMPLES ?= 10000
fuzz: venv peers
	DICOMVAULT_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(VENV)/bin/pytest -p no:cacheprovider -q -s -o timeout=0 \
		-k "fuzz and not item4" tests/fuzz tests/operator/test_fuzz_exporters.py \
		tests/operator/test_fuzz_exporters_in_process.py

bench: venv peers
	$(PY) -m benchmarks.ingest
	$(PY) -m benchmarks.catalogue_drain
	$(PY) -m benchmarks.catalogue_live
	$(PY) -m benchmarks.query

bench-query: venv peers
	$(PY) -m benchmarks.query

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
