"""The router's interfaces, held to what implements and what uses them: both engines implement
RouterEngine and the Python Router what its data path asks (proxy.Routing), member for member,
of the same kind (attribute, property, method, coroutine) and with the same signatures; and
RouterEngine is what the rest of dynosim, and the tests run against both engines, use."""

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_type_hints

import pytest

import dynosim
from dynosim.router import Router, RouterEngine, proxy
from dynosim.router.haproxy import HAProxyRouter

ROOT = Path(dynosim.__file__).parent
ENGINES = {"python": Router, "haproxy": HAProxyRouter}
# public members an engine has beyond its interfaces: its app's name, and the ports a Router
# behind HAProxy is told (HAProxyRouter calls it on the Router it holds)
EXTRA = {Router: {"app", "set_ports"}, HAProxyRouter: {"app"}}


def members(protocol: type) -> set[str]:
    """A protocol's own members: its annotated attributes, methods and properties."""
    defined = {
        name
        for name, value in vars(protocol).items()
        if not name.startswith("_") and (inspect.isfunction(value) or isinstance(value, property))
    }
    return defined | set(get_type_hints(protocol))


def instance(cls: type) -> Any:
    return cls("app", lambda message: None)


def mismatches(cls: type, protocol: type) -> list[str]:
    """How `cls` falls short of `protocol`: one line per member that is missing or differs."""
    problems = []
    hints = get_type_hints(protocol)
    made = instance(cls)
    for name in sorted(members(protocol)):
        wanted = inspect.getattr_static(protocol, name, None)
        found = inspect.getattr_static(cls, name, None)
        if name in hints:  # an attribute: readable and settable on an instance, of its type
            if not hasattr(made, name):
                problems.append(f"{name}: missing")
                continue
            value = getattr(made, name)
            kind = getattr(hints[name], "__origin__", hints[name])
            if kind is Callable:
                value = lambda: None  # noqa: E731 (a new callable to set)
                if not callable(getattr(made, name)):
                    problems.append(f"{name}: not callable")
            elif not isinstance(value, kind):
                problems.append(f"{name}: {type(value).__name__}, not {kind.__name__}")
            try:
                setattr(made, name, value)
            except AttributeError:
                problems.append(f"{name}: cannot be set")
                continue
            if getattr(made, name) is not value:
                problems.append(f"{name}: setting it does not stick")
        elif isinstance(wanted, property):
            if not isinstance(found, property):
                problems.append(f"{name}: not a property")
                continue
            expected = inspect.signature(wanted.fget, eval_str=True).return_annotation
            actual = inspect.signature(found.fget, eval_str=True).return_annotation
            if actual != expected:
                problems.append(f"{name}: returns {actual}, not {expected}")
        else:
            if not inspect.isfunction(found):
                problems.append(f"{name}: not a method")
                continue
            if inspect.iscoroutinefunction(found) != inspect.iscoroutinefunction(wanted):
                problems.append(f"{name}: async where the protocol is not, or the reverse")
            expected = inspect.signature(wanted, eval_str=True)
            actual = inspect.signature(found, eval_str=True)
            if actual != expected:
                problems.append(f"{name}{actual}, not {name}{expected}")
    return problems


def public(cls: type) -> set[str]:
    return {name for name in dir(instance(cls)) if not name.startswith("_")}


@pytest.mark.parametrize("engine", ENGINES)
def test_engine_implements_router_engine(engine):
    assert mismatches(ENGINES[engine], RouterEngine) == []


def test_python_router_implements_what_its_data_path_asks():
    assert mismatches(Router, proxy.Routing) == []


def test_engines_have_no_public_member_outside_their_interfaces():
    assert public(HAProxyRouter) == members(RouterEngine) | EXTRA[HAProxyRouter]
    assert public(Router) == members(RouterEngine) | members(proxy.Routing) | EXTRA[Router]


def test_interfaces_do_not_overlap():
    assert members(RouterEngine) & members(proxy.Routing) == set()


def test_router_engine_is_what_dynosim_and_the_router_tests_use():
    """Every `router.x` outside the router package (and in the tests run against both
    engines) is a RouterEngine member, and every member has such a use. (Lines that import
    name the router's modules, not its members.)"""
    sources = [path for path in ROOT.rglob("*.py") if "router" not in path.relative_to(ROOT).parts]
    sources += [Path(__file__).parent / name for name in ("test_router.py", "test_certs.py")]
    used = {
        name
        for path in sources
        for line in path.read_text().splitlines()
        if "import" not in line
        for name in re.findall(r"\brouter\.([A-Za-z_]\w*)", line)
    }
    assert used == members(RouterEngine)
