"""A worker's call to the chief cut by the chief's death is made again once the chief is back,
and the chief records a repeated end of a trial once (keras-tuner's own gRPC servicer and client
on loopback, a real study oracle behind them)."""

import os
import threading
from concurrent import futures

import grpc
import pytest
from conftest import REPO, free_port
from keras_tuner.src import protos
from keras_tuner.src.distribute import oracle_chief, oracle_client

from tfplaybook import internals

MLP = "experiments/digits_mlp.py"


def _study_oracle(project):
    from tfplaybook import api
    from tfplaybook.search import space as space_lib
    from tfplaybook.study import tuner

    config, _, _ = api.make_config(
        experiment=os.path.join(REPO, MLP), overrides=["study.max_trials=3"]
    )
    oracle = tuner.make_oracle(config, space_lib.SearchSpace.from_config(config))
    oracle._set_project_dir(os.path.dirname(project), os.path.basename(project))
    return oracle


class _DiesDuringFirstEnd:
    """The chief's oracle, seen through the servicer: its first end_trial is recorded, then the
    call hangs until the test has stopped the server (the chief dies before it replies)."""

    def __init__(self, oracle):
        self.oracle, self.ends = oracle, 0
        self.entered, self.release = threading.Event(), threading.Event()

    def end_trial(self, trial):
        self.ends += 1
        self.oracle.end_trial(trial)
        if self.ends == 1:
            self.entered.set()
            self.release.wait(60)


def _serve(oracle, port):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = oracle_chief.OracleServicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    server.add_insecure_port(f"localhost:{port}")
    server.start()
    return server


@pytest.mark.parametrize("retrying", [True, False])
def test_an_end_cut_by_the_chief_s_death_is_sent_again_and_recorded_once(
    tmp_path, monkeypatch, retrying
):
    port = free_port()
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "localhost")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(port))
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "w1")
    oracle = _study_oracle(tmp_path / "study")
    trial = oracle.create_trial("w1")
    trial.status = "FAILED"  # Not retried by keras-tuner: it goes to end_order.
    chief = _DiesDuringFirstEnd(oracle)
    server = _serve(chief, port)
    client = oracle_client.OracleClient(oracle)
    if retrying:
        client.stub = internals.retrying_stub(client.stub)
    errors = []

    def end():
        try:
            client.end_trial(trial)
        except grpc.RpcError as e:
            errors.append(e.code())

    caller = threading.Thread(target=end)
    caller.start()
    assert chief.entered.wait(60)
    server.stop(grace=None)  # The chief dies mid-call: the worker's call fails UNAVAILABLE.
    server.wait_for_termination(timeout=30)
    restarted = _serve(chief, port)  # Same port, same oracle state: the chief is back.
    try:
        caller.join(60)
        assert not caller.is_alive()
    finally:
        chief.release.set()
        restarted.stop(grace=None)
    if retrying:
        assert errors == [] and chief.ends == 2  # Sent again, and answered ...
        assert oracle.end_order.count(trial.trial_id) == 1  # ... but recorded once.
    else:
        assert errors == [grpc.StatusCode.UNAVAILABLE] and chief.ends == 1
