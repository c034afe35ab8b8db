# One command runs the main job, one command passes the tests; both do their own set-up.
.PHONY: run test test-fast setup kafka-up kafka-down bench clean

run: setup            ## evaluate the built-in simulator's stream (embedded runtime, no broker)
	.venv/bin/stream-lis run $(ARGS)

test:                 ## set-up, start a local Kafka broker, run every test, stop the broker
	scripts/test.sh $(ARGS)

test-fast: setup      ## the tests that need no broker and finish quickly
	STREAM_LIS_SKIP_KAFKA=1 scripts/test.sh -m "not kafka and not slow" $(ARGS)

setup:
	scripts/setup.sh

kafka-up:
	scripts/kafka-broker.sh start

kafka-down:
	scripts/kafka-broker.sh stop

bench: setup          ## engine vs naive per-event River loop on the same stream
	.venv/bin/python benchmarks/bench_engine.py $(ARGS)

clean:
	rm -rf .venv .pytest_cache build *.egg-info
