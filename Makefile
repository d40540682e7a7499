# The two commands: `make demo` runs the main job on the embedded default,
# `make test` runs the checks and the tests. Both install what they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ANVIL_VERSION := 1.7.1
ANVIL_STAMP := .tools/.anvil-$(ANVIL_VERSION)
KAFKA_VERSION := 3.9.0
KAFKA_STAMP := .tools/.kafka-$(KAFKA_VERSION)

.PHONY: install demo test test-kafka lint unit clean kafka browser promtool

install: $(VENV)/.installed $(ANVIL_STAMP)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

# anvil comes from npm, pinned, into a git-ignored folder of the repo.
$(ANVIL_STAMP):
	mkdir -p .tools
	npm install --silent --no-audit --no-fund --prefix .tools @foundry-rs/anvil-linux-amd64@$(ANVIL_VERSION)
	touch $@

# Apache Kafka's jars from Maven Central (deploy/kafka/pom.xml) for the tests' second
# broker (`make test-kafka`; needs Java 17 and Maven). `make demo` and `make test` run on
# Tansu and need neither.
kafka: $(KAFKA_STAMP)

$(KAFKA_STAMP): deploy/kafka/pom.xml
	mkdir -p .tools/kafka
	mvn -q -B -f deploy/kafka/pom.xml dependency:copy-dependencies \
		-DoutputDirectory=$(abspath .tools/kafka/libs) -DincludeScope=runtime
	touch $@

# Debian's Chromium for the status page's browser test (root and apt; CI runs this
# before `make test`; elsewhere that test is skipped, saying how to get it).
browser:
	command -v chromium >/dev/null || apt-get install -y -q chromium || \
		{ apt-get update -q && apt-get install -y -q chromium; }

# promtool (Debian's prometheus package) lints deploy/prometheus in the tests; CI runs
# this before `make test`, elsewhere that check is skipped saying how to get it.
promtool:
	command -v promtool >/dev/null || apt-get install -y -q --no-install-recommends prometheus || \
		{ apt-get update -q && apt-get install -y -q --no-install-recommends prometheus; }

# `make demo BROKER=kafka` runs it on Apache Kafka (needs Java 17 and Maven).
BROKER ?= tansu
demo: install $(if $(filter kafka,$(BROKER)),kafka)
	$(BIN)/xmargin demo --broker $(BROKER)

lint: install
	$(BIN)/ruff check engine proofs wire bus streams relayer devnet xmargin tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -q

# The integration tests on Tansu and again on Apache Kafka (KRaft).
test-kafka: install kafka
	XMARGIN_TEST_BROKERS=tansu,kafka $(BIN)/pytest -q -m integration

unit: install
	$(BIN)/pytest -q -m "not integration"

clean:
	rm -rf $(VENV) .tools .xmargin
