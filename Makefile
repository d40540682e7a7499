# The two commands: `make demo` runs the main job on the embedded default,
# `make test` runs the checks and the tests. Both install what they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ANVIL_VERSION := 1.7.1
ANVIL_STAMP := .tools/.anvil-$(ANVIL_VERSION)
KAFKA_VERSION := 3.9.0
KAFKA_STAMP := .tools/.kafka-$(KAFKA_VERSION)

.PHONY: install demo test test-kafka lint unit clean kafka kafka-if-java browser promtool

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
# broker (needs Java 17 and Maven). `make test` fetches them where both are on the
# machine; without them its Kafka half is skipped, saying how to get them (under CI=true
# that skip fails). `make demo` runs on Tansu and needs neither.
kafka: $(KAFKA_STAMP)

kafka-if-java:
	@if command -v java >/dev/null && command -v mvn >/dev/null; then $(MAKE) -s kafka; \
	else echo "no Java 17 or Maven here: the tests' Kafka half will be skipped"; fi

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
	$(BIN)/ruff check engine proofs wire bus streams relayer attester devnet xmargin tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

# Every integration test runs on Tansu and again on Apache Kafka (KRaft). Two pytest
# processes, one test file at a time each (module fixtures stay whole): the integration
# tests mostly wait on blocks and brokers, so two share the two cores.
test: lint kafka-if-java
	$(BIN)/pytest -q -n 2 --dist loadfile

# The integration tests only, on Kafka alone (the three-broker kill test among them).
test-kafka: install kafka
	XMARGIN_TEST_BROKERS=kafka $(BIN)/pytest -q -m integration

unit: install
	$(BIN)/pytest -q -m "not integration"

clean:
	rm -rf $(VENV) .tools .xmargin
