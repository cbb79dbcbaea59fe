"""djct.wandb_wrapper: djctools' wandb_wrapper singleton (init, activate, deactivate, log,
flush(prefix), finish, the API key file) for the user's own Python scripts (evaluation, plots).

It never opens a network connection: it writes a run journal in djct's format (the layout of
src/log.c and src/journal.c, docs/logging.md), which `djct_sync RUN_DIR` uploads to wandb. The
journal can be a new run or the run of a djct_train run directory, continued (its _step and
_runtime go on), so the Python metrics land in the same wandb run as the training metrics.

Rank-aware like djctools' wrapper: only the process of rank 0 writes. Without MPI in Python the
rank comes from the launcher's environment: $RANK, $OMPI_COMM_WORLD_RANK, $PMI_RANK,
$PMIX_RANK, $SLURM_PROCID (the first one set), else $LOCAL_RANK, else 0. On other ranks every
call is a no-op.
"""
import atexit
import csv
import io
import json
import math
import numbers
import os
import secrets
import socket
import stat
import string
import sys
import time
import warnings

__all__ = ["wandb_wrapper", "WandbWrapper", "process_rank"]

DEFAULT_BASE_URL = "https://api.wandb.ai"  # as WB_DEFAULT_BASE_URL in src/wandb_int.h
HISTORY, SUMMARY, CONFIG, RUN, CSV = "history.jsonl", "summary.json", "config.json", "run.json", "history.csv"
RESERVED = ("_step", "_runtime", "_timestamp")
RANK_VARS = ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID")
KEY_FILE = "~/private/wandb_api.sh"
# wandb.init's keywords that mean something for a journal; any other one is refused
INIT_KEYS = ("project", "entity", "name", "group", "job_type", "tags", "notes", "config", "id", "dir",
             "mode", "resume")
# the run.json fields a keyword (or its environment variable) sets
RUN_FIELDS = (("project", "WANDB_PROJECT"), ("entity", "WANDB_ENTITY"), ("name", "WANDB_NAME"),
              ("group", "WANDB_RUN_GROUP"), ("job_type", "WANDB_JOB_TYPE"), ("notes", "WANDB_NOTES"))


def process_rank():
    """(rank, variable it came from): the first of RANK_VARS that is set, else $LOCAL_RANK (a
    one-node launcher), else (0, None). A value that is not a whole number is an error."""
    for var in RANK_VARS + ("LOCAL_RANK",):
        v = os.environ.get(var, "").strip()
        if v:
            try:
                return int(v), var
            except ValueError:
                raise ValueError(f"djct.wandb_wrapper: ${var}='{v}' is not a rank number; unset it or "
                                 "set it to the process's rank") from None
    return 0, None


def fmt_number(v: float) -> str:
    """The journal's number text, as jr_fmt_double in src/journal.c writes it (NaN and
    +-Infinity as bare tokens, like the wandb SDK)."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    if v == math.floor(v) and abs(v) < 1e15:
        return "%.0f" % v
    s = "%.15g" % v
    return s if float(s) == v else "%.17g" % v


def _number(name: str, value) -> float:
    """A metric value as a float: a plain number, a numpy number or array, a tensor (its mean)."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, numbers.Real):
        return float(value)
    if hasattr(value, "detach") and hasattr(value, "numel"):  # a torch tensor, any device
        t = value.detach()
        if t.numel() == 0:
            raise ValueError(f"djct.wandb_wrapper.log: '{name}' is an empty tensor; log a number")
        if t.is_complex():
            raise TypeError(f"djct.wandb_wrapper.log: '{name}' is a complex tensor; log a real number")
        return float(t.double().mean()) if t.numel() > 1 else float(t.item())
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    if isinstance(kind, str) and len(kind) == 1 and kind in "biuf" and hasattr(value, "mean"):
        if getattr(value, "size", 1) == 0:
            raise ValueError(f"djct.wandb_wrapper.log: '{name}' is an empty array; log a number")
        return float(value.mean())
    raise TypeError(f"djct.wandb_wrapper.log: '{name}' is a {type(value).__name__}; djct's journal holds "
                    "numbers (a Python or numpy number, a tensor)")


def _json_text(v) -> str:
    """Compact JSON with the journal's number text (integral floats without '.0', NaN bare)."""
    if isinstance(v, float):
        return fmt_number(v)
    if isinstance(v, dict):
        return "{" + ",".join(json.dumps(str(k)) + ":" + _json_text(x) for k, x in v.items()) + "}"
    return json.dumps(v)


def _write_atomic(path: str, text: str) -> None:
    """Whole-file write through a temporary file, fsync and rename (as jr_write_atomic)."""
    d, base = os.path.split(path)
    tmp = os.path.join(d, "." + base + ".tmp")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise OSError(f"djct.wandb_wrapper: cannot write '{path}': {e.strerror}; is the disk full?") from None


def _read_json(path: str):
    """The parsed file, or None when it does not exist."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise ValueError(f"djct.wandb_wrapper: '{path}' is not valid JSON; restore it or delete it") from None


def _valid_run_id(i: str) -> bool:
    ok = set(string.ascii_letters + string.digits + "-_.")
    return 0 < len(i) <= 63 and i[0] != "." and all(c in ok for c in i)


def _key_from_file(path: str):
    """The key of a `WANDB_API_KEY="..."` line (`export ` and quotes allowed), else None."""
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("export "):
                line = line[7:].lstrip()
            if line.startswith("WANDB_API_KEY="):
                v = line.split("=", 1)[1].strip().strip('"').strip("'")
                if v:
                    return v
    return None


class _Journal:
    """One run directory <log dir>/<run id>/ held open by rank 0: history.jsonl (appended),
    summary.json, config.json and run.json (rewritten whole), history.csv (if the run has one)."""

    def __init__(self, path: str, run_id: str):
        self.dir, self.run_id = path, run_id
        self.history = os.path.join(path, HISTORY)
        self.rows = 0
        self.last_step, self.runtime_base = -1, 0.0
        self.t0 = time.monotonic()
        self.summary = {}
        self.csv_cols = None

    def open_history(self) -> None:
        """Line count and last _step/_runtime of an existing history (a torn last line, from a
        job killed mid-write, is cut first so line offsets stay exact, as jr_history_open does)."""
        try:
            with open(self.history, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data = b""
        keep = data.rfind(b"\n") + 1
        if keep != len(data):
            os.truncate(self.history, keep)
            data = data[:keep]
        lines = data.split(b"\n")[:-1]
        self.rows = len(lines)
        if lines:
            try:
                last = json.loads(lines[-1])
                self.last_step = int(last["_step"])
                self.runtime_base = float(last.get("_runtime", 0.0))
            except (ValueError, KeyError, TypeError):
                raise ValueError(f"djct.wandb_wrapper: line {len(lines)} of '{self.history}' is not a "
                                 "journal row with a _step; restore the file or start a new run") from None
        s = _read_json(os.path.join(self.dir, SUMMARY))
        self.summary = s if isinstance(s, dict) else {}
        csv_path = os.path.join(self.dir, CSV)
        if os.path.exists(csv_path):
            with open(csv_path, newline="") as f:
                self.csv_cols = next(csv.reader(f), [])

    def runtime(self) -> float:
        return self.runtime_base + (time.monotonic() - self.t0)

    def append(self, values: dict, prefix: str, step: int) -> None:
        runtime, ts = self.runtime(), time.time()
        row = {prefix + k: v for k, v in values.items()}
        keys = sorted(row)
        fields = [json.dumps(k) + ":" + fmt_number(row[k]) for k in keys]
        fields += ['"_step":%d' % step, '"_runtime":' + fmt_number(runtime), '"_timestamp":' + fmt_number(ts)]
        line = "{" + ",".join(fields) + "}\n"
        try:
            fd = os.open(self.history, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode())  # one write: a reader never sees half a row
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            raise OSError(f"djct.wandb_wrapper: cannot append to '{self.history}': {e.strerror}; is the "
                          "disk full?") from None
        self.rows += 1
        self.last_step = step
        # summary.json: last value per key + _step, _runtime, _timestamp, _wandb.runtime (as src/log.c)
        self.summary.update(row)
        self.summary.update({"_step": step, "_runtime": runtime, "_timestamp": ts,
                             "_wandb": {"runtime": math.floor(runtime)}})
        self.write_summary()
        if self.csv_cols is not None:
            self.csv_row(dict(row, _step=step, _runtime=runtime, _timestamp=ts))

    def write_summary(self) -> None:
        _write_atomic(os.path.join(self.dir, SUMMARY), _json_text(self.summary))

    def csv_row(self, row: dict) -> None:
        """history.csv, where djct_train wrote one (--csv): a row appended, or the whole file
        rewritten from history.jsonl when a new column appears (as src/log.c does)."""
        path = os.path.join(self.dir, CSV)
        new = [k for k in row if k not in self.csv_cols]
        if not new:
            with open(path, "a", newline="") as f:
                csv.writer(f, lineterminator="\n").writerow(
                    [fmt_number(row[c]) if c in row else "" for c in self.csv_cols])
            return
        rows = []
        with open(self.history) as f:
            for line in f:
                r = json.loads(line)
                rows.append(r)
                self.csv_cols += [k for k in r if k not in self.csv_cols and isinstance(r[k], (int, float))]
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(self.csv_cols)
        for r in rows:
            w.writerow([fmt_number(float(r[c])) if isinstance(r.get(c), (int, float)) else ""
                        for c in self.csv_cols])
        _write_atomic(path, out.getvalue())


class WandbWrapper:
    """djctools' wandb_wrapper API over a djct run journal (see the module's docstring).

    Attributes as in djctools: log_buffer (dict, cleared by flush), active, initialized; and
    rank, run_id, run_dir (the journal directory, None on other ranks and before init),
    key_source (where the API key came from: 'argument', 'WANDB_API_KEY', the key file, or None).
    """
    _instance = None

    def __new__(cls, *args, **kwargs):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __init__(self):
        if not hasattr(self, "initialized"):
            self.log_buffer = {}
            self.active = True
            self.initialized = False
            self.rank = 0
            self.run_id = None
            self.run_dir = None
            self.key_source = None
            self._journal = None
            self._atexit = False
            self._failed = False

    def activate(self) -> None:
        """Enable logging: log() buffers metrics."""
        self.active = True

    def deactivate(self) -> None:
        """Disable logging: log(), flush() and init() do nothing."""
        self.active = False

    # ---- init --------------------------------------------------------------------------------
    def init(self, *args, wandb_api_key=None, run_dir=None, **kwargs):
        """Open a run journal (rank 0 only; a no-op while inactive or once initialized).

        Where: run_dir=DIR, a djct_train run directory (DIR/run_id names the run, the journal is
        DIR/wandb/<run id>/: continued if it exists, else created, and a new DIR gets a run_id
        file that a later `djct_train --run-dir DIR` continues), or a journal directory itself
        (one with a run.json). Without run_dir: <dir or $DJCT_LOG_DIR or ./djct-runs>/<id>/,
        id = id= or $WANDB_RUN_ID or a random one; an existing one is continued.
        wandb.init's keywords: project, entity, name, group, job_type, tags, notes, config (a
        dict), id, dir, mode ('disabled' writes nothing; otherwise the journal is offline),
        resume (None/'allow'/True: continue or create, 'must': continue, 'never': create).
        wandb_api_key: as in djctools, put into $WANDB_API_KEY (else the key file
        ~/private/wandb_api.sh is read into it) for djct_sync run from this process; the key
        is never written into the run directory.
        """
        if args:
            raise TypeError("djct.wandb_wrapper.init() takes keyword arguments only (project=..., ...)")
        bad = [k for k in kwargs if k not in INIT_KEYS]
        if bad:
            raise TypeError(f"djct.wandb_wrapper.init() got an unsupported keyword '{bad[0]}'; djct writes "
                            f"a journal for djct_sync and takes run_dir, wandb_api_key, {', '.join(INIT_KEYS)}")
        if not self.active or self.initialized:
            return None
        self.rank, _ = process_rank()
        mode = kwargs.get("mode") or os.environ.get("WANDB_MODE") or "offline"
        if mode not in ("online", "offline", "dryrun", "run", "shared", "disabled"):
            raise ValueError(f"djct.wandb_wrapper.init: mode '{mode}' is not a mode; use offline or disabled")
        self._resolve_key(wandb_api_key)
        if self.rank != 0 or mode == "disabled":
            self.initialized = True
            return None
        path, run_id, fresh_run_dir = self._locate(run_dir, kwargs)
        existed = os.path.exists(os.path.join(path, RUN))
        resume = kwargs.get("resume")
        if resume == "must" and not existed:
            raise ValueError(f"djct.wandb_wrapper.init: resume='must' but '{path}' holds no run")
        if resume == "never" and existed:
            raise ValueError(f"djct.wandb_wrapper.init: resume='never' but '{path}' already holds run "
                             f"'{run_id}'; give another id or run_dir")
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as e:
            raise OSError(f"djct.wandb_wrapper.init: cannot create '{path}': {e.strerror}; check run_dir, "
                          "dir or $DJCT_LOG_DIR") from None
        if fresh_run_dir:
            _write_atomic(os.path.join(fresh_run_dir, "run_id"), run_id)
        j = _Journal(path, run_id)
        j.open_history()
        self._write_run_json(j, kwargs)
        self._write_config(j, kwargs.get("config"))
        self._journal, self.run_id, self.run_dir = j, run_id, path
        self.initialized = True
        if not self._atexit:
            self._atexit = True
            atexit.register(self._at_exit)
            hook = sys.excepthook

            def note_failure(*exc):
                self._failed = True
                hook(*exc)
            sys.excepthook = note_failure
        return None

    def _resolve_key(self, key) -> None:
        """djctools' key handling: an explicit key, else $WANDB_API_KEY, else the key file, which
        is read into $WANDB_API_KEY (djct_sync reads the same places itself)."""
        self.key_source = None
        if key:
            os.environ["WANDB_API_KEY"] = key
            self.key_source = "argument"
        elif os.environ.get("WANDB_API_KEY"):
            self.key_source = "WANDB_API_KEY"
        else:
            path = os.path.expanduser(KEY_FILE)
            if os.path.isfile(path):
                if os.stat(path).st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                    warnings.warn(f"djct.wandb_wrapper: {path} is readable by group or others; "
                                  f"run chmod 600 {path}", stacklevel=3)
                found = _key_from_file(path)
                if found:
                    os.environ["WANDB_API_KEY"] = found
                    self.key_source = KEY_FILE

    def _locate(self, run_dir, kw):
        """(journal directory, run id, a new djct_train-style run dir that needs its run_id file)"""
        want = kw.get("id") or os.environ.get("WANDB_RUN_ID")
        if want is not None and not _valid_run_id(str(want)):
            raise ValueError(f"djct.wandb_wrapper.init: run id '{want}' is not valid; use up to 63 of "
                             "[A-Za-z0-9._-], not starting with '.'")
        if run_dir is None:
            root = kw.get("dir") or os.environ.get("DJCT_LOG_DIR") or "djct-runs"
            run_id = str(want) if want else self._random_id(8)
            return os.path.join(root, run_id), run_id, None
        run_dir = os.fspath(run_dir)
        if os.path.exists(os.path.join(run_dir, RUN)):  # a journal directory itself
            run = _read_json(os.path.join(run_dir, RUN)) or {}
            run_id = str(run.get("run_id") or os.path.basename(os.path.normpath(run_dir)))
            if want and str(want) != run_id:
                raise ValueError(f"djct.wandb_wrapper.init: '{run_dir}' holds run '{run_id}', not '{want}'")
            return run_dir, run_id, None
        id_file = os.path.join(run_dir, "run_id")
        if os.path.exists(id_file):  # a djct_train run directory
            with open(id_file) as f:
                run_id = f.read().strip()
            if not _valid_run_id(run_id):
                raise ValueError(f"djct.wandb_wrapper.init: '{id_file}' holds no valid run id; restore it")
            if want and str(want) != run_id:
                raise ValueError(f"djct.wandb_wrapper.init: '{run_dir}' is run '{run_id}', not '{want}'; "
                                 "leave id out to continue it, or use another run_dir")
            return os.path.join(run_dir, "wandb", run_id), run_id, None
        run_id = str(want) if want else self._random_id(9)
        return os.path.join(run_dir, "wandb", run_id), run_id, run_dir

    @staticmethod
    def _random_id(n: int) -> str:
        al = string.ascii_lowercase + string.digits
        return "".join(secrets.choice(al) for _ in range(n))

    def _write_run_json(self, j: _Journal, kw) -> None:
        """run.json as src/log.c writes it; a continued run keeps its fields unless given."""
        path = os.path.join(j.dir, RUN)
        old = _read_json(path)
        run = old if isinstance(old, dict) else {}
        continued = bool(run)
        for field in ("project", "entity"):
            if continued and kw.get(field) and run.get(field) and kw[field] != run[field]:
                raise ValueError(f"djct.wandb_wrapper.init: run '{j.run_id}' is in {field} '{run[field]}', "
                                 f"not '{kw[field]}'; leave {field} out to continue it, or start a new run")
        run["run_id"] = j.run_id
        for field, env in RUN_FIELDS:
            v = kw.get(field) or run.get(field) or os.environ.get(env) or None
            run[field] = v if v is not None or field != "project" else "uncategorized"
        tags = kw.get("tags")
        if tags is None and not run.get("tags") and os.environ.get("WANDB_TAGS"):
            tags = os.environ["WANDB_TAGS"]
        if isinstance(tags, str):
            tags = [t.strip() for t in tags.split(",") if t.strip()]
        if tags is not None:
            run["tags"] = [str(t) for t in tags]
        run.setdefault("tags", [])
        run["mode"] = "offline"
        base = run.get("base_url") or os.environ.get("WANDB_BASE_URL") or DEFAULT_BASE_URL
        run["base_url"] = base.rstrip("/")
        run["host"] = socket.gethostname()
        run.setdefault("start_time", time.time())
        jobs = run.get("jobs")  # a count; a continued run.json without one had at least one job
        run["jobs"] = (int(jobs) if isinstance(jobs, (int, float)) else int(continued)) + 1
        if "world_size" not in run:
            run["world_size"] = 1
        run.update(finished=False, preempted=False, exit_code=None)
        _write_atomic(path, json.dumps(run, indent=1) + "\n")

    @staticmethod
    def _write_config(j: _Journal, config) -> None:
        path = os.path.join(j.dir, CONFIG)
        old = _read_json(path)
        cfg = old if isinstance(old, dict) else {}
        if config is not None:
            if not isinstance(config, dict):
                if not hasattr(config, "__dict__"):
                    raise TypeError("djct.wandb_wrapper.init: config must be a dict (or an argparse "
                                    f"Namespace), not a {type(config).__name__}")
                config = vars(config)
            cfg.update(config)
        _write_atomic(path, json.dumps(cfg, default=str, indent=1) + "\n")

    # ---- log / flush / finish ------------------------------------------------------------------
    def log(self, metric_name: str, value) -> None:
        """Buffer a metric (a number, numpy number or tensor; a tensor with several elements
        gives its mean) until flush(). A name logged again before the flush keeps the last value."""
        if not self.active:
            return
        if not isinstance(metric_name, str) or not metric_name:
            raise TypeError(f"djct.wandb_wrapper.log: the metric name must be a non-empty string, "
                            f"got {metric_name!r}")
        if metric_name in RESERVED:
            raise ValueError(f"djct.wandb_wrapper.log: '{metric_name}' is reserved for the journal; "
                             "use another name")
        self.log_buffer[metric_name] = _number(metric_name, value)

    def flush(self, prefix: str = "", step=None) -> None:
        """Write the buffered metrics as one journal row, each name prefixed with `prefix`, at
        `step` (default: the run's last step + 1; an explicit one must be larger), and clear
        the buffer. Nothing buffered: no row. Not initialized or inactive: the buffer is dropped."""
        buf = dict(self.log_buffer)
        self.log_buffer.clear()
        j = self._journal
        if not (self.active and self.initialized and j is not None and buf):
            return
        if step is None:
            step = j.last_step + 1
        elif int(step) != step or step <= j.last_step:
            raise ValueError(f"djct.wandb_wrapper.flush: step {step} is not after the run's last step "
                             f"{j.last_step}; the row was dropped")
        for k in buf:
            if prefix + k in RESERVED:
                raise ValueError(f"djct.wandb_wrapper.flush: '{prefix + k}' is reserved for the journal")
        j.append(buf, prefix, int(step))

    def finish(self, exit_code: int = 0) -> None:
        """Write what is still buffered, mark the run finished with `exit_code` in run.json, and
        print (stderr) the djct_sync command that uploads it. A later init() opens a run again."""
        if not self.initialized:
            return
        j = self._journal
        if j is not None:
            if self.active:
                self.flush()
            j.write_summary()
            path = os.path.join(j.dir, RUN)
            run = _read_json(path) or {}
            run.update(finished=True, preempted=False, exit_code=int(exit_code), runtime=j.runtime())
            _write_atomic(path, json.dumps(run, indent=1) + "\n")
            where = "" if self.key_source else " (it needs WANDB_API_KEY, ~/private/wandb_api.sh or ~/.netrc)"
            print(f"djct.wandb_wrapper: run {j.run_id}: {j.rows} rows in {j.dir}; upload with: "
                  f"djct_sync {j.dir}{where}", file=sys.stderr)
        self._journal = None
        self.run_dir = None
        self.initialized = False

    def _at_exit(self) -> None:
        if self.initialized and self._journal is not None:
            self.finish(1 if self._failed else 0)


wandb_wrapper = WandbWrapper()
