# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
NEWSLETTER_TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
export NEWSLETTER_TEST_POSTGRES_URL
DEMO_DIR ?= demo-data

.PHONY: venv demo test lint typecheck pytest bench bench-week bench-ceiling bench-hosts mutation architecture chromium spamassassin iproute2 clean check-all check-all-quick

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

## The whole weekly job on the embedded default (SQLite + outbox) in ./$(DEMO_DIR).
demo: venv
	@if [ -e $(DEMO_DIR) ]; then echo "make demo: re-creating ./$(DEMO_DIR) from scratch: its database, with the staff accounts made by the last demo, is replaced; new accounts and passwords are printed below."; fi
	rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR)
	cd $(DEMO_DIR) && env -u SENDGRID_API_KEY -u NEWSLETTER_TRANSPORT \
		DATABASE_URL=sqlite:///newsletter.db NEWSLETTER_OUTBOX_DIR=outbox NEWSLETTER_INBOX_DIR=inbox \
		NEWSLETTER_EDITOR_EMAILS=editor@example.com \
		../$(BIN)/newsletter demo

## Lint, type-check and the full suite (SQLite and PostgreSQL, real Chromium).
test: venv chromium spamassassin iproute2 lint typecheck architecture pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

## Two workers (pytest-xdist): each has its own SQLite files and its own PostgreSQL database.
PYTEST_WORKERS ?= 2
pytest: venv
	$(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

## Debian's Chromium for the browser tests (Playwright drives it; it never downloads one).
chromium:
	@command -v chromium >/dev/null || { \
		echo "installing Debian's chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core; }

## SpamAssassin, run offline on a sent issue by the tests (only installed when missing).
spamassassin:
	@command -v spamassassin >/dev/null || { \
		echo "installing Debian's spamassassin for the email tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq spamassassin; }

## iproute2's `ip` for the separate-hosts test (tests/prove/test_separate_hosts.py: network
## namespaces and veth pairs, as root; in CI a machine that cannot make them fails the test).
iproute2:
	@command -v ip >/dev/null || { \
		echo "installing Debian's iproute2 for the separate-hosts test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2; }

bench: venv
	$(BIN)/python -m bench

## A whole week on PostgreSQL through the real doors (import, send with two workers, 6·N webhook
## events, 0.4·N pixel and click hits, the stats, an erasure, the exports), each step's time and
## peak memory: `make bench-week N=200000`. Drops and creates the database bench_week.
N ?= 1000000
BENCH_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/postgres
bench-week: venv
	$(BIN)/python -m bench.week --subscribers $(N) --postgres $(BENCH_POSTGRES_URL)

## `newsletter issue send` beside its ceiling (the same requests prebuilt, posted with no
## database), SQLite and PostgreSQL: `make bench-ceiling CEILING_N=100000`. Makes and drops
## the database bench_ceiling.
CEILING_N ?= 100000
bench-ceiling: venv
	$(BIN)/python -m bench.send_ceiling --subscribers $(CEILING_N) --postgres $(BENCH_POSTGRES_URL)

## Workers on three hosts (network, UTS and PID namespaces, as root) against one PostgreSQL, one
## host SIGKILLed mid-send: `make bench-hosts HOSTS_N=20000` (what the separate-hosts test runs).
HOSTS_N ?= 20000
bench-hosts: venv iproute2
	$(BIN)/python -m bench.hosts --subscribers $(HOSTS_N)

## Mutation testing on SQLite (outside CI; minutes per module): `make mutation MODULES=sending/worker`
## for one (`python -m bench.mutation --list` names them); prints killed/total and the score.
MODULES ?=
MUTATION_ARGS ?=
mutation: venv
	$(BIN)/python -m bench.mutation $(MUTATION_ARGS) $(MODULES)

## The layer contract (pyproject.toml, [tool.importlinter]): fails, naming each import, when a
## module imports from a layer above its own. Part of `make test`.
architecture: venv
	$(BIN)/lint-imports

## The proving suite (a few minutes): a 20,000-subscriber send under SendGrid faults and worker
## SIGKILLs on SQLite and PostgreSQL that heals with no operator action (and once resolved by
## an operator), the abuse tests with deeper fuzzing, the tracking endpoints and the webhook
## under load from a second process, bounded in count and time, and (in tests/prove) workers
## on three separate hosts with one SIGKILLed mid-send (needs root: network namespaces).
check-all: venv iproute2
	HYPOTHESIS_PROFILE=deep $(BIN)/pytest -q tests/prove
	$(BIN)/python -m bench.faults
	$(BIN)/python -m bench.faults --postgres
	$(BIN)/python -m bench.faults --operator
	$(BIN)/python -m bench.tracking_load --requests 10000 --connections 8 --seconds 60
	$(BIN)/python -m bench.webhook --batches 20

## The same, short enough for CI on every push.
check-all-quick: venv iproute2
	$(BIN)/pytest -q tests/prove
	$(BIN)/python -m bench.faults --subscribers 5000 --kills 3
	$(BIN)/python -m bench.tracking_load --requests 2000 --connections 4 --seconds 20
	$(BIN)/python -m bench.webhook --batches 5

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache tests/artifacts .mutation
