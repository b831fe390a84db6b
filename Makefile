# hv: build, test and demo. `make demo` and `make test` work on a fresh Debian machine with
# Swift installed: they install the Debian packages they need first (once).
SWIFT ?= swift
HV := .build/debug/hv
# Debian packages the build, the tests and the benchmark need.
DEBIAN_PACKAGES := gcc make binutils qemu-system-x86 acpica-tools lz4 zstd xz-utils libpcap-dev iputils-ping
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build guests demo test fetch-kernel bench lab clean

all: build guests

# Installs what is missing; apt-get update runs once, and only when something is missing.
deps:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@[ -d /var/lib/apt/lists ] && ls /var/lib/apt/lists/*Packages* >/dev/null 2>&1 || $(SUDO) apt-get update -q

build: deps
	$(SWIFT) build

guests: deps
	$(MAKE) -C Guests

demo: build guests
	$(HV) run Guests/build/hello.elf --cpus 4

fetch-kernel: deps
	Tests/Fixtures/fetch-debian-kernel.sh

# Unit and integration tests (tier 1, this host's /dev/kvm), then the nested lab (tier 2: real
# Linux guests under hv on nested KVM inside QEMU), which ends with "N passed, N failed".
test: build guests fetch-kernel
	$(MAKE) -C Guests test
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	$(MAKE) --no-print-directory lab

# The benchmark runs the release build with the Swift runtime linked in (no dynamic
# loading of libswiftCore and friends at every start), the way hv is meant to ship.
bench: deps guests
	$(SWIFT) build -c release --static-swift-stdlib --scratch-path .build-static
	.build-static/release/hv bench boot
	.build-static/release/hv bench vmbus

# The nested lab (Tests/Lab/, design.md §3): QEMU TCG with an emulated SVM CPU boots a Debian
# kernel as L1, hv runs inside it on nested KVM and boots L2 guests. `make test` runs it last.
lab: deps guests
	$(SWIFT) build -c release --static-swift-stdlib --scratch-path .build-static
	Tests/Lab/fetch.sh
	Tests/Lab/build-initramfs.sh
	Tests/Lab/selftest.sh
	Tests/Lab/run.sh

clean:
	rm -rf .build .cache
	$(MAKE) -C Guests clean
