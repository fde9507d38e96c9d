# The two commands a new user needs:
#   make local   run the whole system on this machine (no AWS account)
#   make test    run every test (as root for the real sshguard tests)
# Both first install what they need: Debian packages (as root, only those
# missing), npm packages and Go modules. .ci/run is `make test` plus a few
# extra awk/sh implementations for the host scripts' portability tests.

SHELL := /bin/bash
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 1
export AWS_REGION ?= ap-northeast-1
# Node 22 from the npm registry (package.json) for the ASL interpreter, CDK
# and the browser driver.
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)

GO_FILES := $(shell git ls-files '*.go' 2>/dev/null)
LAMBDA_FLAGS := -tags lambda.norpc -trimpath -buildvcs=false -ldflags='-s -w'

.PHONY: all deps system-deps local test check vet fmt-check synth bench latency lambda fuzz clean

# What the real sshguard hosts (tests and local mode) need, and the browser
# the page tests drive (local/browser: Debian's chromium, not Playwright's
# download), with a Japanese font so the README's screenshot is legible.
SYSTEM_PACKAGES := sshguard nftables iptables ipset iproute2 shellcheck chromium fonts-ipafont-gothic
EXTRA_PACKAGES ?=

all: test

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

deps: node_modules/.package-lock.json
	go mod download

# Installing sshguard must not start it in this machine's own network
# namespace (policy-rc.d refuses service starts during the install, and its
# service stays disabled): it only ever runs inside the throw-away namespaces
# of the tests and the local mode.
system-deps:
	@missing=$$(for p in $(SYSTEM_PACKAGES) $(EXTRA_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
	  echo "note: not root, so not installing:" $$missing "(the local mode uses simulated hosts; the real-sshguard and browser tests skip)"; exit 0; fi; \
	set -e; added=; \
	if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; added=1; fi; \
	trap '[ -z "$$added" ] || rm -f /usr/sbin/policy-rc.d' EXIT; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get update -qq; apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	echo "installed:" $$missing; \
	case " $$missing " in *" sshguard "*) \
	  ! command -v systemctl >/dev/null || systemctl disable sshguard >/dev/null 2>&1 || true; \
	  echo "sshguard's own service is left disabled on this machine";; esac

# make local ARGS='--locale en --latency aws' passes flags on (README).
local: deps system-deps
	go run ./cmd/unbanbot local $(ARGS)

test: deps system-deps check
	go test -count=1 ./...
	$(MAKE) synth

check: vet fmt-check

vet:
	go vet ./...

fmt-check:
	@out=$$(gofmt -l $(GO_FILES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Offline, no credentials: the CDK CLI synthesizes the Go app.
synth: deps
	rm -rf cdk.out
	cdk synth --no-notices --no-version-reporting --quiet -c nag=true
	@n=$$(grep -c '"AWS::StepFunctions::StateMachine"' cdk.out/SshguardUnban.template.json); \
	  if [ "$$n" != 2 ]; then echo "cdk synth: want 2 state machines in the template, found $$n"; exit 1; fi
	@echo "cdk synth: ok (offline, no credentials, cdk-nag AwsSolutions clean)"

# The numbers in the README come from here.
bench: deps
	go test -run '^$$' -bench . -benchmem ./...

# Message → reply under the production latency model, with the floor of
# one SSM round trip + one Chatwork post measured in the same run (a few
# minutes; real sshguard hosts as root). The last line is for scripts.
latency: deps system-deps
	mkdir -p build
	set -o pipefail; go test ./local/system -run '^$$' -bench RequestLatency -benchtime 1x -timeout 30m | tee build/latency.txt | grep -E 'hosts=|^floor|^breakdown|^LATENCY'

lambda:
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build $(LAMBDA_FLAGS) -o build/lambda/bootstrap ./lambdas/bootstrap

fuzz:
	go test -run '^$$' -fuzz FuzzParse -fuzztime 60s ./shared/message
	go test -run '^$$' -fuzz FuzzVerify -fuzztime 30s ./shared/signature

clean:
	rm -rf build cdk.out
