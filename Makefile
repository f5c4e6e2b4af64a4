# iservdesk: `make run` starts a local portal, `make test` installs what is missing and
# runs every test. Both need root on a Debian 12/13 machine (apt-get, dockerd).

PYTHON := /usr/bin/python3
DEMO_IMAGE := $(shell scripts/build-demo-desktop --print-tag)

# Debian packages: what the portal imports, then what tests and tools need.
RUNTIME_DEBS := python3 python3-bottle python3-authlib python3-docker python3-peewee \
	python3-gevent python3-gevent-websocket python3-requests python3-dotenv python3-cheroot
TEST_DEBS := python3-pytest python3-websocket python3-cryptography python3-selenium pyflakes3 docker-registry \
	chromium chromium-driver \
	docker.io mmdebstrap curl ca-certificates openssl nginx systemd iproute2 iptables util-linux
# Building the Debian package (make deb): debhelper, pybuild and lintian.
DEB_BUILD_DEBS := build-essential dpkg-dev debhelper dh-python pybuild-plugin-pyproject python3-all python3-setuptools lintian
DEBS := $(RUNTIME_DEBS) $(TEST_DEBS) $(DEB_BUILD_DEBS)

.PHONY: deps dockerd demo-image test run bench lint docs screenshots help deb test-deb

help:
	@echo "make run         portal + development identity provider + demo desktop, all local"
	@echo "make test        install what is missing, start dockerd, run every test"
	@echo "make deps        apt-get install the Debian packages for running and testing"
	@echo "make demo-image  build $(DEMO_IMAGE) from Debian packages"
	@echo "make bench       benchmarks against a baseline measured in the same run"
	@echo "make lint        pyflakes over the code"
	@echo "make docs        regenerate .env.example and README's settings table"
	@echo "make deb         build/iservdesk_<version>_all.deb with Debian's tools, checked by lintian"
	@echo "make test-deb    build the package, install/upgrade/purge it in clean Debian 12 and 13"

# Installs only what is missing, so a repeated run costs one dpkg query per package.
deps:
	@missing=$$(for package in $(DEBS); do \
		dpkg-query -W -f='$${db:Status-Abbrev}' $$package 2>/dev/null | grep -q '^ii' || echo $$package; done); \
	if [ -n "$$missing" ]; then \
		echo "deps: installing" $$missing; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

dockerd: deps
	scripts/ensure-docker

demo-image: dockerd
	scripts/build-demo-desktop --if-missing --tag $(DEMO_IMAGE)

test: demo-image
	$(PYTHON) -m pytest

run: demo-image
	scripts/run-dev

bench: demo-image
	$(PYTHON) scripts/bench.py
	$(PYTHON) scripts/bench_proxy.py
	$(PYTHON) scripts/bench_classroom.py
	$(PYTHON) scripts/bench_lesson.py
	$(PYTHON) scripts/bench_files.py
	$(PYTHON) scripts/bench_swarm.py

lint:
	$(PYTHON) -m pyflakes iservdesk tests scripts/*.py

# The README's screenshots, from the newest browser test run.
screenshots:
	@latest=$$(ls -d test-screenshots/*/ | sort | tail -n 1); \
	mkdir -p packaging/screenshots && cp -v $$latest/dashboard-de.png $$latest/dashboard-running-de.png \
		$$latest/dashboard-en.png $$latest/admin-de.png $$latest/admin-en.png packaging/screenshots/

docs:
	$(PYTHON) -m iservdesk settings > .env.example
	$(PYTHON) scripts/update-readme-settings

# The Debian package: build/iservdesk_<version>_all.deb (packaging/debian, scripts/build-deb).
deb: deps
	scripts/build-deb

# Installs, configures, serves, upgrades, removes and purges it in clean bookworm and trixie
# root file systems (mmdebstrap, cached per day in the engine): scripts/test-deb.
test-deb: demo-image
	$(PYTHON) -m pytest tests/test_deb.py
	scripts/test-deb
