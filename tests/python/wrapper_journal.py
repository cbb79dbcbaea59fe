"""Python half of tests/test_python.sh for djct.wandb_wrapper (run with /usr/bin/python3):
  wrapper_journal.py DIR BUILD   DIR/run is a djct_train run directory (offline journal), BUILD
                                 has bin/djct_sync; tests/wandb_server.py is the loopback server
The journal it writes (new runs, and the djct_train run continued) is uploaded with the real
djct_sync to the loopback server, which must store every row. Prints "N passed, N failed"."""
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
from _common import check, finish, one_line_error  # noqa: E402  (first: djct on the path)
import djct  # noqa: E402
from djct import wandb_wrapper  # noqa: E402
from djct.wandb_tools import process_rank  # noqa: E402

TEST_KEY = "djcttestkey0123456789abcdefghijklmnopqrstuv"  # the fake key of tests/wandb_testlib.h
RANK_ENV = ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID", "LOCAL_RANK")


def rows(journal):
    with open(os.path.join(journal, "history.jsonl")) as f:
        return [json.loads(line) for line in f]


def load(path):
    with open(path) as f:
        return json.load(f)


def files_under(d):
    return [os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs]


def grep_tree(d, needle):
    return any(needle in open(p, errors="replace").read() for p in files_under(d))


def reset_env():
    for v in RANK_ENV + ("WANDB_RUN_ID", "DJCT_LOG_DIR", "WANDB_PROJECT"):
        os.environ.pop(v, None)
    os.environ["WANDB_MODE"] = "offline"


class Server:
    """tests/wandb_server.py on 127.0.0.1 (started here, stopped here by its pid)"""

    def __init__(self, d):
        self.state, self.log, port = (os.path.join(d, n) for n in ("srv-state.json", "srv-log.jsonl", "srv-port"))
        env = dict(os.environ, DJCT_TEST_KEY=TEST_KEY)
        self.proc = subprocess.Popen([sys.executable, os.path.join(here, "..", "wandb_server.py"), "--port-file",
                                      port, "--state", self.state, "--log", self.log, "--lifetime", "300"], env=env)
        t0 = time.monotonic()
        while not os.path.exists(port) and time.monotonic() - t0 < 30:
            time.sleep(0.05)
        self.url = "http://127.0.0.1:" + open(port).read().strip()

    def run(self, run_id, project):
        for k, r in load(self.state)["runs"].items():
            if k.endswith(f"/{project}/{run_id}"):
                return r
        return None

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def sync(build, journal, url, env=None):
    p = subprocess.run([os.path.join(build, "bin", "djct_sync"), "--base-url", url, "--timeout", "60",
                        "--retry-min", "0.1", journal], env=env or dict(os.environ), capture_output=True, text=True)
    if p.returncode != 0:
        print(p.stdout + p.stderr, file=sys.stderr)
    return p.returncode


def history_on(server_run):
    return [json.loads(line) for line in server_run["files"].get("wandb-history.jsonl", [])]


def ranks(d):
    """only rank 0 writes; the rank comes from the launcher's environment"""
    for env, writes in ((("RANK", "1"),), False), ((("OMPI_COMM_WORLD_RANK", "3"),), False), \
                       ((("SLURM_PROCID", "1"),), False), ((("LOCAL_RANK", "1"),), False), \
                       ((("PMI_RANK", "2"),), False), ((("RANK", "0"), ("LOCAL_RANK", "1")), True), \
                       ((("SLURM_PROCID", "0"),), True):
        reset_env()
        for k, v in env:
            os.environ[k] = v
        rd = os.path.join(d, "rank-" + "-".join(f"{k}{v}" for k, v in env))
        wandb_wrapper.init(run_dir=rd, project="ranks")
        wandb_wrapper.log("x", 1.0)
        wandb_wrapper.flush()
        wandb_wrapper.finish()
        made = bool(glob.glob(os.path.join(rd, "wandb", "*", "history.jsonl")))
        check(made == writes and (writes or not os.path.exists(rd)), f"rank env {env}: writes={made}")
    reset_env()
    os.environ["OMPI_COMM_WORLD_RANK"] = "1"
    os.environ["SLURM_PROCID"] = "0"                   # mpirun inside a SLURM batch step
    check(process_rank() == (1, "OMPI_COMM_WORLD_RANK"), "the launcher's rank wins over SLURM_PROCID")
    os.environ["RANK"] = "one"
    one_line_error(lambda: wandb_wrapper.init(run_dir=os.path.join(d, "bad-rank")), ValueError,
                   "$RANK='one' is not a rank number", "a rank variable that is not a number")
    reset_env()


def new_run(d, build, server):
    """a new run in a new run directory, with djctools' calls; uploaded by djct_sync"""
    os.environ["WANDB_API_KEY"] = TEST_KEY
    rd = os.path.join(d, "eval")
    wandb_wrapper.log("dropped", 1.0)                  # djctools: a flush before init drops the buffer
    wandb_wrapper.flush()
    check(wandb_wrapper.log_buffer == {}, "flush before init clears the buffer")
    wandb_wrapper.init(run_dir=rd, project="djct-test", name="evaluation", tags=["eval", "py"],
                       config={"lr": 0.01, "model": "djs.pt"})
    check(wandb_wrapper.key_source == "WANDB_API_KEY", f"key source {wandb_wrapper.key_source}")
    run_id = open(os.path.join(rd, "run_id")).read()
    journal = os.path.join(rd, "wandb", run_id)
    check(wandb_wrapper.run_dir == journal and wandb_wrapper.run_id == run_id, "run dir layout as djct_train's")
    wandb_wrapper.log("accuracy", 0.95)
    wandb_wrapper.log("n_events", 300)
    wandb_wrapper.log("mean_t", torch.tensor([1.0, 2.0, 6.0]))
    wandb_wrapper.log("np", np.float32(0.25))
    wandb_wrapper.log("flag", True)
    wandb_wrapper.log("accuracy", 0.96)                # last value wins, as in djctools
    wandb_wrapper.flush(prefix="eval_")
    wandb_wrapper.deactivate()
    wandb_wrapper.log("ignored", 1.0)
    wandb_wrapper.flush()
    wandb_wrapper.activate()
    wandb_wrapper.flush()                              # nothing buffered: no row
    wandb_wrapper.log("nan", float("nan"))
    wandb_wrapper.log("inf", float("inf"))
    wandb_wrapper.flush(step=10)
    one_line_error(lambda: wandb_wrapper.log("s", "text"), TypeError, "'s' is a str", "a string metric")
    one_line_error(lambda: wandb_wrapper.log("_step", 1), ValueError, "reserved", "a reserved name")
    wandb_wrapper.log("late", 1)
    one_line_error(lambda: wandb_wrapper.flush(step=10), ValueError, "not after the run's last step 10",
                   "a step that does not increase")
    wandb_wrapper.finish()
    h = rows(journal)
    check(len(h) == 2, f"two rows: {h}")
    r0 = h[0] if h else {}
    check(r0.get("eval_accuracy") == 0.96 and r0.get("eval_n_events") == 300 and r0.get("eval_mean_t") == 3.0
          and r0.get("eval_np") == 0.25 and r0.get("eval_flag") == 1 and r0.get("_step") == 0
          and "ignored" not in r0 and "eval_ignored" not in r0, f"first row {r0}")
    r1 = h[1] if len(h) > 1 else {}
    check(r1.get("_step") == 10 and r1.get("nan") != r1.get("nan") and r1.get("inf") == float("inf")
          and r1.get("_runtime", -1) >= r0.get("_runtime", 0) and r1.get("_timestamp", 0) > 1.6e9,
          f"second row {r1}")
    run = load(os.path.join(journal, "run.json"))
    check(run["run_id"] == run_id and run["project"] == "djct-test" and run["name"] == "evaluation"
          and run["tags"] == ["eval", "py"] and run["finished"] is True and run["exit_code"] == 0
          and run["jobs"] == 1 and run["mode"] == "offline", f"run.json {run}")
    check(load(os.path.join(journal, "config.json")) == {"lr": 0.01, "model": "djs.pt"}, "config.json")
    s = load(os.path.join(journal, "summary.json"))
    check(s.get("eval_accuracy") == 0.96 and s.get("_step") == 10 and "runtime" in s.get("_wandb", {}),
          f"summary.json {s}")
    check(not grep_tree(rd, TEST_KEY), "the API key is in no file of the run directory")
    check(sync(build, journal, server.url) == 0, "djct_sync uploads the new run")
    srv = server.run(run_id, "djct-test") or {"files": {}, "upserts": [{}]}
    got = history_on(srv)
    check(len(got) == 2 and got[0].get("eval_accuracy") == 0.96 and got[1].get("_step") == 10,
          f"the server has the rows: {got}")
    cfg = json.loads(srv["upserts"][-1].get("config") or "{}")
    check(srv.get("complete") is True and srv.get("exitcode") == 0 and cfg.get("lr", {}).get("value") == 0.01
          and srv["upserts"][-1].get("displayName") == "evaluation", f"server run {srv.get('upserts')}")


def continue_training_run(d, build, server):
    """metrics of the trained model, evaluated here, appended to djct_train's run: one wandb run"""
    rd = os.path.join(d, "run")
    run_id = open(os.path.join(rd, "run_id")).read().strip()
    journal = os.path.join(rd, "wandb", run_id)
    project = load(os.path.join(journal, "run.json"))["project"]
    train_rows = rows(journal)
    n, last = len(train_rows), train_rows[-1]
    # upload the training journal first (the usual order: djct_sync after the job)
    check(sync(build, journal, server.url) == 0, "djct_sync uploads the training run")
    srv = server.run(run_id, project) or {"files": {}}
    check(len(history_on(srv)) == n, "the server has the training rows")
    # a job killed mid-write leaves a torn line: continuing cuts it, as djct_train does
    with open(os.path.join(journal, "history.jsonl"), "a") as f:
        f.write('{"torn":1,"_st')
    # the API key file, as djctools reads it
    home = os.path.join(d, "home")
    os.makedirs(os.path.join(home, "private"), exist_ok=True)
    kf = os.path.join(home, "private", "wandb_api.sh")
    with open(kf, "w") as f:
        f.write(f'export WANDB_API_KEY="{TEST_KEY}"\n')
    os.chmod(kf, 0o600)
    os.environ.pop("WANDB_API_KEY", None)
    old_home, os.environ["HOME"] = os.environ.get("HOME"), home
    wandb_wrapper.init(run_dir=rd, config={"eval_batch": 7})
    os.environ["HOME"] = old_home or "/"
    check(wandb_wrapper.key_source == "~/private/wandb_api.sh" and os.environ.get("WANDB_API_KEY") == TEST_KEY,
          f"key read from the key file: {wandb_wrapper.key_source}")
    check(wandb_wrapper.run_id == run_id and wandb_wrapper.run_dir == journal, "continues djct_train's run")
    # the trained model, evaluated in Python with its LoggingModules on
    m = torch.jit.load(os.path.join(rd, "model.pt"))
    djct.LoggingModule.switch_all_logging(m, logging_active=True)
    djct.LossModule.switch_all_losses(m, loss_active=True)
    m.eval()
    sys.path.insert(0, here)
    from djctools_style import batch
    feats, tgts = batch(20, seed=9)
    with torch.no_grad():
        m(feats, tgts)
    metrics = djct.collect_metrics(m)
    for k, v in metrics.items():
        wandb_wrapper.log(k, v)
    wandb_wrapper.flush(prefix="eval_")
    wandb_wrapper.log("plots_made", 2)
    wandb_wrapper.finish()
    h = rows(journal)
    new = h[n:]
    check(len(h) == n + 2, f"two rows appended after the {n} training rows (torn line cut): {len(h)}")
    check(all(h[i]["_step"] < h[i + 1]["_step"] for i in range(len(h) - 1)) and new
          and new[0]["_step"] == last["_step"] + 1 and new[0]["_runtime"] >= last["_runtime"],
          f"_step and _runtime continue: last training {last['_step']}, new {[r['_step'] for r in new]}")
    check(bool(new) and new[0].get("eval_shower_batches") == 1 and new[0].get("eval_acc_events") == 20
          and "eval_LoggingModule1_example_metric" in new[0] and new[-1].get("plots_made") == 2,
          f"the model's metrics in the journal: {new}")
    run = load(os.path.join(journal, "run.json"))
    check(run["project"] == project and run["jobs"] == 2 and run["finished"] is True and run["exit_code"] == 0,
          f"run.json continued: {run}")
    s = load(os.path.join(journal, "summary.json"))
    check("val_loss" in s and "eval_shower_loss" in s and s.get("_step") == new[-1]["_step"] if new else False,
          "summary keeps the training keys and adds the new ones")
    cfg = load(os.path.join(journal, "config.json"))
    check(cfg.get("eval_batch") == 7 and len(cfg) > 1, "config keeps djct_train's entries")
    csv_lines = open(os.path.join(journal, "history.csv")).read().splitlines()
    check(len(csv_lines) == n + 3 and "eval_acc_events" in csv_lines[0].split(",")
          and "plots_made" in csv_lines[0].split(","), "history.csv rewritten with the new columns")
    check(not grep_tree(rd, TEST_KEY), "the API key is in no file of the run directory")
    # the key file is what djct_sync reads too: no WANDB_API_KEY in its environment
    env = {k: v for k, v in os.environ.items() if k != "WANDB_API_KEY"}
    env["HOME"] = home
    check(sync(build, journal, server.url, env) == 0, "djct_sync uploads the continued run")
    srv = server.run(run_id, project) or {"files": {}}
    got = history_on(srv)
    check(len(got) == n + 2 and got == h, f"the server holds all {n + 2} rows, in order: {len(got)}")
    check(srv.get("complete") is True and srv.get("exitcode") == 0, "the run is complete on the server")


def other_paths(d):
    reset_env()
    # without run_dir: <dir>/<id>/, the same id continues
    logs = os.path.join(d, "logs")
    for i in range(2):
        wandb_wrapper.init(dir=logs, id="fixed-id", project="p")
        wandb_wrapper.log("i", i)
        wandb_wrapper.flush()
        wandb_wrapper.finish()
    h = rows(os.path.join(logs, "fixed-id"))
    check([r["_step"] for r in h] == [0, 1] and [r["i"] for r in h] == [0, 1], f"dir= and id= continue: {h}")
    os.environ["DJCT_LOG_DIR"] = logs
    os.environ["WANDB_RUN_ID"] = "env-id"
    wandb_wrapper.init()
    wandb_wrapper.log("a", 1)
    wandb_wrapper.finish()
    check(os.path.exists(os.path.join(logs, "env-id", "history.jsonl")), "$DJCT_LOG_DIR and $WANDB_RUN_ID")
    reset_env()
    # a journal directory itself as run_dir
    wandb_wrapper.init(run_dir=os.path.join(logs, "fixed-id"))
    wandb_wrapper.log("i", 2)
    wandb_wrapper.finish()
    check(rows(os.path.join(logs, "fixed-id"))[-1]["_step"] == 2, "run_dir = a journal directory")
    one_line_error(lambda: wandb_wrapper.init(dir=logs, id="fixed-id", resume="never"), ValueError,
                   "already holds run 'fixed-id'", "resume='never' on an existing run")
    one_line_error(lambda: wandb_wrapper.init(dir=logs, id="none-yet", resume="must"), ValueError,
                   "holds no run", "resume='must' without a run")
    one_line_error(lambda: wandb_wrapper.init(run_dir=os.path.join(d, "must-new"), resume="must"), ValueError,
                   "holds no run", "resume='must' with a new run_dir")
    check(not os.path.exists(os.path.join(d, "must-new")), "a refused init creates no directory")
    one_line_error(lambda: wandb_wrapper.init(run_dir=os.path.join(d, "run"), id="other"), ValueError,
                   "not 'other'", "an id that is not the run dir's")
    one_line_error(lambda: wandb_wrapper.init(run_dir=os.path.join(d, "run"), project="elsewhere"), ValueError,
                   "leave project out", "moving a run to another project")
    one_line_error(lambda: wandb_wrapper.init(id="a/b"), ValueError, "run id 'a/b' is not valid", "a bad id")
    one_line_error(lambda: wandb_wrapper.init(reinit=True), TypeError, "unsupported keyword 'reinit'",
                   "a wandb.init keyword djct does not take")
    one_line_error(lambda: wandb_wrapper.init("proj"), TypeError, "keyword arguments only", "positional arguments")
    check(not wandb_wrapper.initialized, "failed inits leave the wrapper uninitialized")
    # a key file others can read: a warning naming the fix
    home = os.path.join(d, "home-open")
    os.makedirs(os.path.join(home, "private"), exist_ok=True)
    kf = os.path.join(home, "private", "wandb_api.sh")
    with open(kf, "w") as f:
        f.write("WANDB_API_KEY='k-open'\n")
    os.chmod(kf, 0o644)
    os.environ.pop("WANDB_API_KEY", None)
    old_home, os.environ["HOME"] = os.environ["HOME"], home
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wandb_wrapper.init(dir=logs, id="key-open")
    os.environ["HOME"] = old_home
    wandb_wrapper.finish()
    check(any("chmod 600" in str(w.message) for w in caught) and os.environ.get("WANDB_API_KEY") == "k-open",
          f"a key file readable by others: {[str(w.message) for w in caught]}")
    os.environ.pop("WANDB_API_KEY", None)
    # inactive: init does nothing (djctools)
    wandb_wrapper.deactivate()
    wandb_wrapper.init(run_dir=os.path.join(d, "inactive"))
    wandb_wrapper.activate()
    check(not wandb_wrapper.initialized and not os.path.exists(os.path.join(d, "inactive")), "init while inactive")
    # WANDB_MODE=disabled writes nothing
    os.environ["WANDB_MODE"] = "disabled"
    wandb_wrapper.init(run_dir=os.path.join(d, "disabled"))
    wandb_wrapper.log("a", 1)
    wandb_wrapper.finish()
    check(not os.path.exists(os.path.join(d, "disabled")), "WANDB_MODE=disabled writes nothing")
    reset_env()
    # a script that forgets finish(): the run is finished at exit, exit code 1 after an exception
    for name, tail, code in (("atexit-ok", "", 0), ("atexit-fail", "1 / 0", 1)):
        rd = os.path.join(d, name)
        src = (f"import sys; sys.path.insert(0, {os.path.join(here, '..', '..', 'python')!r})\n"
               f"from djct import wandb_wrapper\nwandb_wrapper.init(run_dir={rd!r})\n"
               f"wandb_wrapper.log('a', 1)\n{tail}\n")
        p = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True)
        j = glob.glob(os.path.join(rd, "wandb", "*"))
        run = load(os.path.join(j[0], "run.json")) if j else {}
        check(run.get("finished") is True and run.get("exit_code") == code and len(rows(j[0])) == 1
              and f"djct_sync {j[0]}" in p.stderr, f"{name}: run.json {run}, stderr {p.stderr[-300:]!r}")


def main(d, build):
    reset_env()
    ranks(d)
    server = Server(d)
    try:
        new_run(d, build, server)
        continue_training_run(d, build, server)
    finally:
        server.stop()
    other_paths(d)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["HOME"] = scratch  # never the user's own key file
        main(sys.argv[1], sys.argv[2])
    finish()
