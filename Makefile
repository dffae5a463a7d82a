# Two commands on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test test-fast demo bench lint clean system-deps
.PHONY: k8s-templates images

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[all,test,bench]'
	@touch $(STAMP)

install: $(STAMP)

# Debian packages some tests use (promtool for alert rules). Installed only where apt-get works.
system-deps:
	@if ! command -v promtool >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 \
	   && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus \
	   >/dev/null) || echo "warning: could not install Debian's prometheus (promtool)"; \
	fi

test: install system-deps
	$(PY) -m pytest -q -ra

# Without the slow integration tests (real brokers, bentoml serve, end-to-end).
test-fast: install
	$(PY) -m pytest -q -ra -m "not slow"

demo: install
	$(VENV)/bin/bcistream demo

bench: install
	$(PY) benchmarks/run_all.py

lint: install
	$(VENV)/bin/ruff check bcistream tests benchmarks

clean:
	rm -rf bench-results .pytest_cache build *.egg-info

# Launcher Job templates (bcistream/k8s_templates/*.yaml) rendered from k8s/overlays; a test checks them.
k8s-templates: install
	$(PY) k8s/tools/render_templates.py

# Role images (docs/kubernetes.md); needs docker. TAG=0.1.0 REGISTRY=europe-west4-docker.pkg.dev/P/bcistream
TAG ?= 0.1.0
REGISTRY ?= bcistream
images:
	docker build --build-arg EXTRAS=kafka,lsl,tracking,gcs -t $(REGISTRY)/engine:$(TAG) .
	docker build --build-arg EXTRAS=serving,tracking,gcs -t $(REGISTRY)/serving:$(TAG) .
	docker build --build-arg EXTRAS=tracking,gcs,kafka,postgres -t $(REGISTRY)/batch:$(TAG) .
	docker build --build-arg EXTRAS=tracking,gcs,postgres -t $(REGISTRY)/mlflow:$(TAG) .
