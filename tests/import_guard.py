"""Which packages a rule's script imports, checked against its conda env,
without running the job (tests/unit/test_rule_envs.py).

Reads a JSON job list on stdin, ``{"preload": [...], "jobs": [{"rule", "script",
"allowed"}]}``, and prints one JSON result per job. For each job a forked
child

1. installs an import guard: a wrapper of ``builtins.__import__`` that fails
   any import *written in nrf or in the script* of a top-level package that is
   neither nrf, the standard library nor in ``allowed`` (the env's import
   names). It wraps ``__import__`` rather than adding a ``sys.meta_path``
   finder because a finder is asked only on a package's first load: a package
   that an allowed one already loaded (matplotlib loads PIL) would slip
   through. Imports inside allowed third-party packages are theirs to resolve
   (conda installs their dependencies), so they are not checked;
2. executes only the script's import statements (the job is never run, no
   ``snakemake`` object is needed);
3. follows what the script imported from nrf through nrf's functions (every
   nrf function or class a visited function names, directly or in a dict,
   list or tuple such as a dispatch table: an over-approximation of the
   calls) and lists the imports written *inside* those functions, which
   the job would run later: a table job that reaches ``import torch`` in a
   function fails at job time just as surely.

The parent imports ``preload`` (heavy third-party packages, never nrf) once
before forking, so each child starts in a fraction of a second; the guard
still sees every import statement of nrf, loaded or not.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import json
import os
import sys
import textwrap
import traceback
import types

STDLIB = set(sys.stdlib_module_names)


def _top(name: str) -> str:
    return name.partition(".")[0]


def _checked(importer: str) -> bool:
    return _top(importer) in ("nrf", "__main__")


def _foreign(package: str, allowed: set[str]) -> bool:
    return package != "nrf" and package not in STDLIB and package not in allowed


def _install_guard(allowed: set[str], found: list) -> None:
    real = builtins.__import__

    def guarded(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and globals is not None:
            importer = globals.get("__name__") or ""
            package = _top(name)
            if _checked(importer) and _foreign(package, allowed):
                found.append([importer, package])
                raise ModuleNotFoundError(
                    f"import guard: {importer} imports {package!r}, which the rule's env does not list",
                    name=package,
                )
        return real(name, globals, locals, fromlist, level)

    builtins.__import__ = guarded


def _script_imports(path: str) -> types.CodeType:
    tree = ast.parse(open(path).read(), path)
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    return compile(ast.Module(body=imports, type_ignores=[]), path, "exec")


def _unwrap(obj):
    """The function behind a decorator that keeps ``__wrapped__`` (functools.lru_cache, wraps)."""
    try:
        return inspect.unwrap(obj) if callable(obj) and hasattr(obj, "__wrapped__") else obj
    except ValueError:
        return obj


def _is_nrf(obj) -> bool:
    obj = _unwrap(obj)
    if isinstance(obj, types.ModuleType):
        return _top(obj.__name__) == "nrf"
    module = getattr(obj, "__module__", None)
    return isinstance(module, str) and _top(module) == "nrf" and (inspect.isfunction(obj) or inspect.isclass(obj))


def _functions_of(obj):
    """The plain functions behind an nrf function, class or module."""
    obj = _unwrap(obj)
    if inspect.isfunction(obj):
        yield obj
    elif inspect.isclass(obj):
        for value in vars(obj).values():
            value = getattr(value, "__func__", value)  # staticmethod, classmethod
            if isinstance(value, property):
                yield from (f for f in (value.fget, value.fset) if f is not None)
            elif inspect.isfunction(_unwrap(value)):
                yield _unwrap(value)
    elif isinstance(obj, types.ModuleType):
        for value in vars(obj).values():
            if _is_nrf(value) and not isinstance(value, types.ModuleType) and _unwrap(value).__module__ == obj.__name__:
                yield from _functions_of(value)


def _resolve(node, scope: dict):
    """The object an ast Name / Attribute chain names, if every link is nrf."""
    if isinstance(node, ast.Name):
        return scope.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _resolve(node.value, scope)
        if base is not None and _is_nrf(base):
            return getattr(base, node.attr, None)
    return None


def _lazy_imports(roots, allowed: set[str]) -> list[list[str]]:
    """Imports written inside the nrf functions reachable from ``roots``."""
    seen, found = set(), []
    stack = [f for root in roots for f in _functions_of(root)]
    while stack:
        func = stack.pop()
        if func in seen:
            continue
        seen.add(func)
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
        except (OSError, TypeError, SyntaxError):
            continue  # generated (dataclass) methods have no source
        scope = dict(func.__globals__)
        where = f"{func.__module__}.{func.__qualname__}"
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                names = []
            for name in names:
                if _foreign(_top(name), allowed):
                    found.append([where, _top(name)])
                elif _top(name) == "nrf":
                    module = importlib.import_module(node.module if isinstance(node, ast.ImportFrom) else name)
                    stack.extend(_functions_of(module))
            if isinstance(node, (ast.Name, ast.Attribute)) and isinstance(getattr(node, "ctx", None), ast.Load):
                obj = _resolve(node, scope)
                # a dispatch table ({"clip": _build_clip}) counts as naming its functions
                values = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple)) else [obj]
                for value in values:
                    if value is not None and _is_nrf(value) and not isinstance(value, types.ModuleType):
                        stack.extend(_functions_of(value))
    return sorted({tuple(f) for f in found})


def check(job: dict) -> dict:
    allowed = set(job["allowed"])
    at_import: list = []
    result = {"rule": job["rule"], "script": job["script"], "at_import": at_import, "lazy": [], "error": None}
    _install_guard(allowed, at_import)
    namespace = {"__name__": "__main__", "__file__": job["script"]}
    try:
        exec(_script_imports(job["script"]), namespace)
    except ImportError as error:
        if not at_import:  # not the guard: the script's import itself is broken
            result["error"] = "".join(traceback.format_exception_only(error)).strip()
        return result
    roots = [v for v in namespace.values() if _is_nrf(v)]
    result["lazy"] = [list(f) for f in _lazy_imports(roots, allowed)]
    return result


def main() -> None:
    request = json.load(sys.stdin)
    os.environ.setdefault("MPLBACKEND", "Agg")
    for package in request.get("preload", []):
        try:
            importlib.import_module(package)
        except Exception:  # noqa: BLE001 - a preload is only a speed-up
            pass
    assert not any(_top(m) == "nrf" for m in sys.modules), "nrf must not be preloaded"
    results = []
    for job in request["jobs"]:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            try:
                payload = check(job)
            except BaseException as error:  # noqa: BLE001 - report, never hang the parent
                payload = {"rule": job["rule"], "script": job["script"], "at_import": [], "lazy": [],
                           "error": "".join(traceback.format_exception(error))[-3000:]}
            with os.fdopen(write, "w") as out:
                json.dump(payload, out)
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            text = pipe.read()
        os.waitpid(pid, 0)
        results.append(json.loads(text) if text else {**job, "error": "checker child died"})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
