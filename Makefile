# The two commands: `make demo` runs the main job on the embedded default,
# `make test` runs the checks and the tests. Both install what they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ANVIL_VERSION := 1.7.1
ANVIL_STAMP := .tools/.anvil-$(ANVIL_VERSION)

.PHONY: install demo test lint unit clean

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

demo: install
	$(BIN)/xmargin demo

lint: install
	$(BIN)/ruff check engine proofs wire bus streams relayer devnet xmargin tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -q

unit: install
	$(BIN)/pytest -q -m "not integration"

clean:
	rm -rf $(VENV) .tools .xmargin
