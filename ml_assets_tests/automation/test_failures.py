"""The run-failure sensor writes a record and posts it to a real webhook on loopback."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import dagster as dg

from ml_assets.automation.failures import run_failure_records
from ml_assets.resources.notifications import FailureNotifier


@dg.asset
def broken():
    raise RuntimeError("tracking server unreachable")


def failed_run_context(instance):
    result = dg.materialize(
        [broken], instance=instance, raise_on_error=False, tags={"dagster/partition": "2013-01-02"}
    )
    run = instance.get_run_by_id(result.run_id)
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
    return dg.build_run_status_sensor_context(
        sensor_name="run_failure_records", dagster_event=failure, dagster_instance=instance, dagster_run=run
    ).for_run_failure()


def test_failure_record_and_webhook(tmp_path):
    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        notifier = FailureNotifier(
            records_dir=str(tmp_path), webhook_url=f"http://127.0.0.1:{server.server_port}/hook"
        )
        with dg.instance_for_test() as instance:
            context = failed_run_context(instance)
            run_failure_records(context, failures=notifier)
    finally:
        server.shutdown()
    (path,) = tmp_path.glob("*.json")
    record = json.loads(path.read_text())
    assert record["failed_steps"] == ["broken"]
    assert record["partition"] == "2013-01-02"
    assert "broken" in record["message"]
    assert received == [record]


def test_dead_webhook_still_leaves_the_record(tmp_path):
    notifier = FailureNotifier(
        records_dir=str(tmp_path), webhook_url="http://127.0.0.1:9/none", webhook_timeout_seconds=1
    )
    with dg.instance_for_test() as instance:
        run_failure_records(failed_run_context(instance), failures=notifier)
    assert len(list(tmp_path.glob("*.json"))) == 1
