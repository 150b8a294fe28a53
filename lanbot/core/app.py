"""The one app runner: every `python -m lanbot.<app>` composes the config, calls one plain function, and
ends by the same rule.

Exit codes, the same for every app:
    0    done
    2    the command, a config file or an input needs fixing: a LanbotError or a config that does not
         compose (unknown option, bad override, a typo'd or mistyped key, bad YAML, a missing value);
         one line on stderr names the file, field or value and the fix, and nothing already written is lost
    130  interrupted (Ctrl-C), 143 terminated (SIGTERM): what was done is kept; run the same command again (an app
         that can say more sets `hint` on the KeyboardInterrupt it lets through: lanbot.evaluate's answers kept)
    1    anything else: a bug, with its traceback

While the job runs, what it prints also goes to the run folder's `<app>.log` (Hydra's job log; core/console_log.py).

Hydra's composition errors are explained from Hydra's and OmegaConf's own exception types (the missing
config file and its options, the override, the key and its full path), never by matching their wording.
`HYDRA_FULL_ERROR=1` in the environment shows Hydra's own traceback instead.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from lanbot.core.config import CONF_DIR, CONFIG_PATH
from lanbot.core.errors import LanbotError

EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 2, 130, 143
RESUME_HINT = "interrupted: run the same command again to resume"

Work = Callable[[DictConfig, Path], Any]


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be, so that the same clean-up runs; exits 143."""


def run_app(app: str, work: Work, argv: Sequence[str] | None = None, positional: str | None = None) -> None:
    """Run `work(cfg, run_dir)` as the Hydra app `lanbot.<app>`, ending by the exit-code rule above.

    `positional`: a list key (`compare.paths`) that collects the arguments that are neither Hydra flags
    nor overrides (`python -m lanbot.compare DIR DIR`).
    """
    import hydra

    args = list(sys.argv[1:] if argv is None else argv)
    if positional:
        args = collect_positional(args, positional)
    sys.argv = [sys.argv[0], *args]
    check_flags(app, args)
    from lanbot.core.help import print_help_if_asked

    print_help_if_asked(app, args)
    show_hydra = "HYDRA_FULL_ERROR" in os.environ
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises its errors, so that they can be explained here

    def job(cfg: DictConfig) -> None:
        from hydra.core.hydra_config import HydraConfig

        hc = HydraConfig.get()
        run_dir = Path(hc.runtime.output_dir)
        sweep = str(hc.mode) == "RunMode.MULTIRUN"
        from lanbot.core.console_log import console_log

        with console_log(app):  # the run folder's <app>.log keeps what the console shows, the error line included
            try:
                check_run_config(run_dir, Path(hc.sweep.dir) if sweep else None)
                check_env_names(cfg)
                check_identity_source(cfg)
                drop_overridden_hints(app, cfg, list(hc.overrides.task))
                work(cfg, run_dir)
            except LanbotError as exc:
                fail(app, identity_hint(exc) or str(exc), run_dir if sweep else None)
            except _omegaconf_errors() as exc:  # a value read during the run: ??? left unset, a bad interpolation
                fail(app, f"config error at {getattr(exc, 'full_key', '?')}: {first_line(exc)}. "
                          f"Set it on the command line ({getattr(exc, 'full_key', 'key')}=...) or in its config file",
                     run_dir if sweep else None)
            except KeyboardInterrupt as exc:  # the console gets the hint once the app unwinds; the log gets it now
                print(getattr(exc, "hint", None) or RESUME_HINT, file=sys.stderr)
                exc.hint_shown = True
                raise

    # Hydra names the job, and so the run folder `<time>_<job>`, after the task function's module: without this,
    # every app would be `app`, after this file. `export.nanochat` becomes `export-nanochat`, as Hydra keeps only
    # what follows a module name's last dot.
    job.__module__ = app.replace(".", "-")
    main = hydra.main(config_path=CONFIG_PATH, config_name="config", version_base="1.3")(job)
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        main()
        if _failed_jobs:  # a sweep whose every job ran, some refused: each named, then the app rule's exit 2
            report_failed_jobs(app)
    except KeyboardInterrupt as exc:
        if not getattr(exc, "hint_shown", False):  # an app may say more (lanbot.evaluate)
            print(getattr(exc, "hint", None) or RESUME_HINT, file=sys.stderr)
        sys.exit(EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED)
    except Exception as exc:
        message = None if show_hydra else explain_config_error(exc, args)
        if message is None:
            raise
        fail(app, message)
    finally:
        signal.signal(signal.SIGTERM, previous)


def check_flags(app: str, argv: Sequence[str]) -> None:
    """Hydra takes one mode at a time: `-m` with --cfg/--info/-sc is one line naming the fix, not its traceback."""
    from hydra._internal.utils import get_args_parser

    known, _ = get_args_parser().parse_known_args(list(argv))
    if known.multirun and (known.cfg or known.info or known.shell_completion):
        flag = "--cfg" if known.cfg else "--info" if known.info else "--shell-completion"
        fail(app, f"-m (a sweep) and {flag} cannot go together: {flag} shows one job, so drop -m and give one value "
                  "per key (e.g. identity=sage, not identity=lanbot,sage)")


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


def _omegaconf_errors() -> tuple[type[BaseException], ...]:
    from omegaconf.errors import OmegaConfBaseException

    return (OmegaConfBaseException,)


_failed_jobs: list[tuple[Path, str]] = []  # sweep jobs of this process that stopped on something to fix


def fail(app: str, message: str, job_dir: Path | None = None) -> None:
    """One line (soft-wrapped) on stderr, then exit 2; in a sweep (`job_dir`), the line is also kept in the job's
    folder (error.txt, which compare shows) and the sweep goes on to its next job, as Hydra runs every job."""
    from rich.console import Console
    from rich.markup import escape

    from lanbot.core.secrets import mask  # a server may have echoed the key into the message

    message = mask(message)
    where = f" [{mask(job_dir.name)}]" if job_dir is not None else ""
    Console(stderr=True, highlight=False).print(f"[bold red]error[/bold red] lanbot.{app}{escape(where)}: "
                                                f"{escape(message)}", soft_wrap=True)
    if job_dir is None:
        sys.exit(EXIT_USAGE)
    from lanbot.core.files import write_text_atomic
    from lanbot.core.layout import ERROR_FILE

    write_text_atomic(job_dir / ERROR_FILE, message + "\n")
    _failed_jobs.append((job_dir, message))


def report_failed_jobs(app: str) -> None:
    """The sweep's end: which jobs stopped and why, one line each, then exit 2 (the others ran to the end)."""
    from rich.console import Console
    from rich.markup import escape

    sweep = _failed_jobs[0][0].parent
    jobs = len([d for d in sweep.iterdir() if (d / ".hydra").is_dir()]) if sweep.is_dir() else len(_failed_jobs)
    console = Console(stderr=True, highlight=False)
    console.print(f"[bold red]error[/bold red] lanbot.{app}: {len(_failed_jobs)} of {jobs} sweep jobs stopped "
                  f"({sweep}); the others ran. Fix what each says and run the sweep again:", soft_wrap=True)
    for job_dir, message in _failed_jobs:
        console.print(f"  {escape(job_dir.name)}: {escape(message)}", soft_wrap=True)
    sys.exit(EXIT_USAGE)


def identity_file() -> Path:
    """The identity file this run composed (Hydra's choice, found in its search path)."""
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    name = hc.runtime.choices.get("identity")
    dirs = [Path(s.path) for s in hc.runtime.config_sources if s.schema == "file"]
    return find_config_file(dirs, "identity", str(name)) or Path("conf") / "identity" / f"{name}.yaml"


def check_run_config(run_dir: Path, sweep_dir: Path | None = None) -> None:
    """Hydra has saved the composed config in <run_dir>/.hydra (and a sweep's in <sweep>/multirun.yaml) before
    lanbot runs: a secret's value or a key-shaped value typed into the config (an identity field, an override)
    is masked in every copy and the run refused, before it is copied on."""
    from lanbot.core.secrets import SecretLeakError, find_secret, known_secrets, redact

    secrets = known_secrets()
    files = sorted((run_dir / ".hydra").glob("*.yaml"))
    if sweep_dir is not None and (sweep_dir / "multirun.yaml").is_file():
        files.append(sweep_dir / "multirun.yaml")
    found, masked = None, []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        name = find_secret(text, secrets, shapes=True)
        if name is not None:
            path.write_text(redact(text, "MASKED"), encoding="utf-8")  # still YAML: *** would be an alias
            found, masked = found or name, [*masked, path]
    if found is not None:
        what = found if found.startswith("a ") else f"the value of ${found}, a secret"
        names = [p.relative_to(run_dir).as_posix() if p.is_relative_to(run_dir) else str(p) for p in masked]
        raise SecretLeakError(
            f"the config holds {what} (masked now in {', '.join(names)} of {run_dir}): refusing to run, as every output would "
            "copy it; remove it from where it came from (an identity field, a config value or an override that "
            "holds the key itself, where a variable's name belongs) and run again")


def check_env_names(cfg: DictConfig) -> None:
    """Every `*_env` field names a variable: a key given there would be echoed in `export <key>=...` hints."""
    from omegaconf import OmegaConf

    from lanbot.core.secrets import check_env_name

    def walk(node: Any, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            elif str(key).endswith("_env") and not (isinstance(value, str) and value.startswith("${")):
                check_env_name(f"{prefix}{key}", value)

    walk(OmegaConf.to_container(cfg, resolve=False, throw_on_missing=False), "")


def check_identity_source(cfg: DictConfig) -> None:
    """Before any work: the identity file within its size limit, and no field that reads the environment
    (`${oc.env:...}`) or calls another resolver, whatever the app (train and upload copy the identity out too)."""
    from lanbot.core.identity import check_file, check_interpolations

    if cfg.get("identity") is None:
        return
    path = identity_file()
    if path.is_file():
        check_file(path)
    check_interpolations(cfg.identity)


def drop_overridden_hints(app: str, cfg: DictConfig, overrides: list[str]) -> None:
    """`identity.quirks=[...]` on the command line drops the hints of the quirks it left out, in one info line."""
    from lanbot.core.identity import drop_unlisted_hints

    if cfg.get("identity") is None:
        return
    dropped = drop_unlisted_hints(cfg.identity, overrides)
    if dropped:
        print(f"lanbot.{app}: identity.quirks was set on the command line, so the identity's quirk_hints for "
              f"{', '.join(map(repr, dropped))} (no longer listed) were dropped", file=sys.stderr)


def identity_hint(exc: LanbotError) -> str | None:
    """An IdentityError names the identity file it came from (the config was composed, so Hydra knows it)."""
    from lanbot.core.identity import IdentityError, ModelIdentity

    if not isinstance(exc, IdentityError):
        return None
    path = identity_file()
    if str(exc).startswith(str(path)):
        return str(exc)
    if not str(exc).startswith("bad field"):
        return f"{path}: {exc}"
    return (f"{path}: {exc}. Start the file as conf/identity/yourbot.yaml does (defaults: [identity_schema, "
            f"_self_]); the identity fields are: {', '.join(ModelIdentity.__dataclass_fields__)}.")


def explain_config_error(exc: BaseException, argv: Sequence[str]) -> str | None:
    """One line for an error raised before the job ran (composition, run folder); None if it is not one."""
    import yaml
    from hydra.errors import (
        ConfigCompositionException,
        HydraException,
        MissingConfigException,
        OverrideParseException,
    )
    from omegaconf.errors import OmegaConfBaseException

    dirs = config_dirs(argv)
    if in_chain(exc, UnicodeDecodeError) is not None:
        return undecodable_config(dirs)
    bad_yaml = in_chain(exc, yaml.YAMLError)
    if bad_yaml is not None:
        # A structure left open (an unclosed [ or quote) is named where it opened (the context); a well-formed
        # file with wrong content (a duplicate key) where the wrong part is: the context would be the mapping's
        # first line, often line 1.
        marks = ("problem_mark", "context_mark") if isinstance(bad_yaml, yaml.constructor.ConstructorError) \
            else ("context_mark", "problem_mark")
        mark = getattr(bad_yaml, marks[0], None) or getattr(bad_yaml, marks[1], None)
        where = f"{mark.name}, line {mark.line + 1}" if mark else "a config file"
        problem = getattr(bad_yaml, "problem", None) or first_line(bad_yaml)
        return (f"{where}: not valid YAML ({problem}). Fix that line; conf/identity/yourbot.yaml shows the form "
                "(lists as `- item` lines or [a, b]).")
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file and "/" in exc.missing_cfg_file:
        group, name = exc.missing_cfg_file.rsplit("/", 1)
        options = sorted(o for o in (exc.options or []) if not o.endswith("_schema"))
        fix = (f" Make a new identity by copying conf/identity/yourbot.yaml to conf/identity/{name}.yaml."
               if group == "identity" else f" Or add conf/{group}/{name}.yaml.")
        return f"unknown {group} {name!r}. The {group} options are: {', '.join(options)} (files in {CONF_DIR / group}).{fix}"
    if isinstance(exc, OverrideParseException):
        return (f"cannot read the override {exc.override!r}: {first_line(exc.message)}. Overrides are key=value, "
                "+key=value (add) or ~key (remove); quote values with spaces or brackets")
    if isinstance(exc, ConfigCompositionException):
        key_error = in_chain(exc, OmegaConfBaseException)
        if key_error is not None:
            return explain_key_error(key_error, argv, dirs)
    if isinstance(exc, OSError) and not isinstance(exc, HydraException):
        return (f"creating the run folder {exc.filename or '(hydra.run.dir)'}: {exc.strerror or exc}. "
                "Point paths.root (or hydra.run.dir) at a folder you can write, with free space.")
    if isinstance(exc, HydraException | OmegaConfBaseException):
        cause = f": {first_line(exc.__cause__)}" if exc.__cause__ else ""
        return f"config error: {first_line(exc)}{cause}"
    return None


def undecodable_config(dirs: list[Path]) -> str:
    """The config file that is not UTF-8 (Hydra's UnicodeDecodeError does not say which), with its line."""
    from lanbot.core.identity import IdentityError, check_file

    for d in [*dirs, CONF_DIR]:
        for path in sorted(Path(d).rglob("*.yaml")):
            try:
                path.read_bytes().decode("utf-8")
            except UnicodeDecodeError:
                try:
                    check_file(path)
                except IdentityError as exc:
                    return str(exc)
            except OSError:
                continue
    return "a config file is not UTF-8; save it as UTF-8"


def explain_key_error(error: Any, argv: Sequence[str], dirs: list[Path]) -> str:
    """A bad key or value: in an override (name it and the allowed keys) or in a config file (name the file)."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    full_key = str(getattr(error, "full_key", "") or "")
    group = full_key.split(".", 1)[0]
    overridden = [a for a in argv if a.lstrip("+~").split("=", 1)[0] == full_key]
    detail = first_line(error).rstrip(".")
    hint = " (it must be a list: `- item` lines or [a, b])" if "ListConfig" in detail else ""
    if overridden:
        fix = ("; check its spelling against `--cfg job`" if isinstance(error, ConfigAttributeError | ConfigKeyError)
               else "; give a value of the right type")
        return f"{overridden[0]}: {detail}{hint}{fix}"
    option = chosen_option(argv, group)
    path = find_config_file(dirs, group, option) if option else None
    where = str(path) if path else f"the {group} config"
    fields = ""
    if group == "identity":
        from lanbot.core.identity import ModelIdentity

        fields = f" The identity fields are: {', '.join(ModelIdentity.__dataclass_fields__)}."
    if path is not None and group == "identity" and not _has_schema(path):
        fields += " Start the file with `defaults: [identity_schema, _self_]` as conf/identity/yourbot.yaml does."
    return f"{where}: bad field {full_key}: {detail}{hint}. Fix or remove that line of {where}.{fields}"


def _has_schema(path: Path) -> bool:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return True
    return "identity_schema" in (data.get("defaults") or []) if isinstance(data, dict) else True


def chosen_option(argv: Sequence[str], group: str) -> str | None:
    """The option of `group` this command chose: its override (parsed by Hydra) or config.yaml's default."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for arg in argv:
        if arg.startswith("-"):
            continue
        try:
            override = parser.parse_override(arg)
        except Exception:  # noqa: BLE001 (a positional argument or a flag's value, not an override)
            continue
        if override.key_or_group == group and override.value_type is not None:
            return str(override.value())
    from omegaconf import OmegaConf

    for entry in OmegaConf.load(CONF_DIR / "config.yaml").get("defaults", []):
        if isinstance(entry, dict | DictConfig) and group in entry:
            return str(entry[group])
    return None


def find_config_file(dirs: list[Path], group: str, option: str) -> Path | None:
    """The first `<dir>/<group>/<option>.yaml` in Hydra's search order (user folders first, lanbot's last)."""
    for d in [*dirs, CONF_DIR]:
        path = Path(d) / group / f"{option}.yaml"
        if path.is_file():
            return path
    return None


def config_dirs(argv: Sequence[str]) -> list[Path]:
    """Folders given with --config-dir/-cd (Hydra's own argument parser) and the `file://` folders of a
    `hydra.searchpath=[...]` override (Hydra's grammar), where a user's own identity files live."""
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser

    known, _ = get_args_parser().parse_known_args(list(argv))
    dirs = [Path(known.config_dir)] if known.config_dir else []
    parser = OverridesParser.create()
    for arg in known.overrides:
        if not arg.lstrip("+").startswith("hydra.searchpath="):
            continue
        try:
            value = parser.parse_override(arg).value()
        except Exception:  # noqa: BLE001 (Hydra names a broken override itself)
            continue
        entries = value if isinstance(value, list) else [value]
        dirs += [Path(str(e)[len("file://"):]) for e in entries if str(e).startswith("file://")]
    return dirs


def collect_positional(argv: list[str], key: str) -> list[str]:
    """Arguments that are neither Hydra flags (Hydra's parser) nor overrides (Hydra's grammar) -> `key=[...]`.

    An existing path is always a path; a `key=value` Hydra cannot parse stays an override, so that Hydra
    names its syntax error.
    """
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser

    known, _ = get_args_parser().parse_known_args(argv)
    parser = OverridesParser.create()
    loose = []
    for arg in known.overrides:
        if Path(arg).exists():  # a sweep job folder is named `0_identity=lanbot,mix=default`: a path first
            loose.append(arg)
            continue
        try:
            parser.parse_override(arg)
        except Exception:  # noqa: BLE001 (not an override: a path, unless it is a broken key=value)
            if "=" not in arg:
                loose.append(arg)
    if not loose:
        return argv
    rest = [a for a in argv if a not in loose]
    quoted = ",".join("'" + p.replace("\\", "\\\\").replace("'", "\\'") + "'" for p in loose)
    return [*rest, f"{key}=[{quoted}]"]


def in_chain(exc: BaseException | None, kind: type | tuple[type, ...]) -> Any:
    """The first exception of `kind` in `exc`'s cause/context chain (Hydra wraps what it raises)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, kind):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def first_line(exc: BaseException | str | None) -> str:
    """A message without OmegaConf's `full_key:` / `object_type=` trailer lines, on one line."""
    text = str(getattr(exc, "msg", None) or exc or "")
    return " ".join(line.strip() for line in text.strip().splitlines()
                    if not line.strip().startswith(("full_key:", "object_type", "reference_type")))
