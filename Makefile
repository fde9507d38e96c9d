# The two commands a new user needs:
#   make local   run the whole system on this machine (no AWS account)
#   make test    run every test (as root for the real sshguard tests)
# .ci/run installs the system packages first, then runs `make test`.

SHELL := /bin/bash
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 1
export AWS_REGION ?= ap-northeast-1
# Node 22 from the npm registry (package.json) for the ASL interpreter and CDK.
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)

GO_FILES := $(shell git ls-files '*.go' 2>/dev/null)
LAMBDA_FLAGS := -tags lambda.norpc -trimpath -buildvcs=false -ldflags='-s -w'

.PHONY: all deps local test check vet fmt-check synth bench lambda fuzz clean

all: test

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

deps: node_modules/.package-lock.json
	go mod download

local: deps
	go run ./cmd/unbanbot local

test: deps check
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

lambda:
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build $(LAMBDA_FLAGS) -o build/lambda/bootstrap ./lambdas/bootstrap

fuzz:
	go test -run '^$$' -fuzz FuzzParse -fuzztime 60s ./shared/message
	go test -run '^$$' -fuzz FuzzVerify -fuzztime 30s ./shared/signature

clean:
	rm -rf build cdk.out
