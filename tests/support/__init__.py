"""What the tests share, one module per peer or helper; no test module imports another.

- terminal: run_spd_tty, `spd` on a pseudo-terminal (tables, live progress)
- spd: `spd` subprocesses (run_spd, start_spd, stop_spd), wait_for, read_jsonl, iso, ROOT, SHARED_MODELS
- config: the one write_config (one simulator account, emitters, pollers) and POLLERS
- sim: SimThread, the simulator in a background thread; SimProcess, `spd sim` in its own process
- fixtures: sim_factory, tmpfs, hostile_thread, sandbox (registered by tests/conftest.py)
- recording: RecordingEmitter, an emitter that records and can be told to fail
- state_backends: BACKENDS and open_backend, the state backends the storage tests run against
- runtime: start_runtime/stop_runtime (real pollers in the test's loop) and the simulator's truth
- webhook_receiver, kafka_broker (tansu), aws_peer (STS via moto): real peers on loopback
- hostile: a hostile SP-API stub for the safety tests
- amazon_models: reads Amazon's model files (../shared/sp-api-models), never spd's catalog
- static_sandbox, exec_cases: the models' x-amzn-api-sandbox cases and the exec requests they make
- systemd_sandbox: runs a command under the unit's sandboxing, as systemd would
"""
