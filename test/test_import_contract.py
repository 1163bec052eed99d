"""The import contract of ``imkd_ros`` (ARCHITECTURE.md, issue 13), read from the source with ``ast``: nothing is
imported, so the test runs without ROS and in a fraction of a second.

Checked, for every ``import`` and ``from ... import`` in the package (module level, inside functions, under
``TYPE_CHECKING``) and every ``importlib.import_module("imkd_ros...")`` with a literal name:

(a) rclpy and ROS message packages are imported only under ``imkd_ros/ros/`` and ``imkd_ros/nodes/``; ``rosbags``
    (pure-Python bag I/O) only from the bag layer up;
(b) no import cycle between modules of ``imkd_ros`` (importing ``a.b.c`` runs ``a/b/__init__.py`` too, so a
    package's ``__init__`` counts as imported);
(c) imports point down the layer order ``LAYERS`` (a module may import its own layer and the layers below).
(d) no module imports another module's private (``_name``) functions or constants.

The layer order follows the issue's (core -> data -> model -> distill -> training -> ... -> ros -> nodes) with one
deliberate difference: inference/deploy and evaluation sit below distill and training, because training validates
with the detector and the devkit, and teacher targets run the teacher through the detector's device choice.

Every module sits in the folder of its layer (``imkd_ros/<layer>/``; the layer table is ``LAYERS``); ``PLACED``
would place a module that does not, and ``EXCEPTIONS`` list imports that break the contract, each with its reason:
both are empty, and an entry in either is debt.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "imkd_ros"

ROS_PACKAGES = frozenset(
    {
        "rclpy",
        "rcl_interfaces",
        "std_msgs",
        "sensor_msgs",
        "vision_msgs",
        "autoware_perception_msgs",
        "tf2_msgs",
        "tf2_ros",
        "diagnostic_msgs",
        "lifecycle_msgs",
        "visualization_msgs",
        "geometry_msgs",
        "builtin_interfaces",
        "nav_msgs",
        "rosgraph_msgs",
        "unique_identifier_msgs",
        "imkd_msgs",
        "rosidl_runtime_py",
        "launch",
        "launch_ros",
    }
)
ROS_ALLOWED = ("imkd_ros.ros", "imkd_ros.nodes")

# Lowest first. A module belongs to the layer of the longest prefix that names it (here or in PLACED).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("core", ("imkd_ros", "imkd_ros.core")),  # "imkd_ros": the package's __init__
    ("data", ("imkd_ros.data",)),
    ("model", ("imkd_ros.model",)),
    ("inference", ("imkd_ros.inference",)),
    ("evaluation", ("imkd_ros.evaluation",)),
    ("distill", ("imkd_ros.distill",)),
    ("training", ("imkd_ros.training",)),
    ("pipeline", ("imkd_ros.pipeline",)),
    ("bag", ("imkd_ros.bag",)),
    ("apps", ("imkd_ros.apps",)),
    ("cli", ("imkd_ros.cli",)),
    ("ros", ("imkd_ros.ros",)),
    ("nodes", ("imkd_ros.nodes",)),
)

# Modules whose file is not in the folder of the layer they belong to: module -> (layer, reason). Empty: every
# module sits in its layer's folder; an entry here is debt, to be moved.
PLACED: dict[str, tuple[str, str]] = {}

# Imports that break the contract today: (importer, imported) -> reason. Keep it short; fix, then delete the line.
EXCEPTIONS: dict[tuple[str, str], str] = {}


# Private names imported from another module today: (importer, module) -> reason. Make them public or move them.
PRIVATE_EXCEPTIONS: dict[tuple[str, str], str] = {
    (
        "imkd_ros.evaluation.compare",
        "imkd_ros.evaluation.evaluate",
    ): "devkit loading/scoring helpers (_load_eval, _select, _score)",
    ("imkd_ros.bag.metrics", "imkd_ros.evaluation.evaluate"): "devkit scoring helpers (_in_region, _score)",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _own_module(name: str) -> str:
    """The nearest module of ours that ``name`` (a module or a module.attribute) names."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _imports(module: str, path: Path) -> list[str]:
    """Every name ``module`` imports (absolute module names; ``from m import x`` gives m.x where that is a module)."""
    out: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if path.name != "__init__.py":
                    base.pop()
                base = base[: len(base) - (node.level - 1)]
                src = ".".join(base + ([node.module] if node.module else []))
            else:
                src = node.module or ""
            for alias in node.names:
                out.append(f"{src}.{alias.name}" if f"{src}.{alias.name}" in MODULES else src)
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name == "import_module" and node.args and isinstance(node.args[0], ast.Constant):
                if isinstance(node.args[0].value, str):
                    out.append(node.args[0].value)
    return out


def _private_imports() -> set[tuple[str, str]]:
    """(importer, module) pairs where ``importer`` does ``from module import _name`` (``module`` one of ours)."""
    found: set[tuple[str, str]] = set()
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith("imkd_ros"):
                names = [a.name for a in node.names if f"{node.module}.{a.name}" not in MODULES]
                if any(n.startswith("_") and not n.startswith("__") for n in names):
                    found.add((module, _own_module(node.module or "")))
    return found


def _graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(edges between our modules, external top-level packages per module)."""
    edges: dict[str, set[str]] = defaultdict(set)
    external: dict[str, set[str]] = defaultdict(set)
    for module, path in MODULES.items():
        for name in _imports(module, path):
            if name.split(".")[0] != "imkd_ros":
                external[module].add(name.split(".")[0])
                continue
            target = _own_module(name)
            if target != module:
                edges[module].add(target)
    return edges, external


EDGES, EXTERNAL = _graph()


def layer_of(module: str) -> int:
    if module in PLACED:
        return next(i for i, (name, _) in enumerate(LAYERS) if name == PLACED[module][0])
    best, depth = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and prefix.count(".") > depth:
                best, depth = i, prefix.count(".")
    return best


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(MODULES):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))
    return found


def _runtime_edges() -> dict[str, set[str]]:
    """EDGES plus the packages whose ``__init__`` an import runs, less the listed exceptions."""
    out: dict[str, set[str]] = defaultdict(set)
    for module, targets in EDGES.items():
        for target in targets:
            if (module, target) in EXCEPTIONS:
                continue
            out[module].add(target)
            parts = target.split(".")
            for i in range(2, len(parts)):
                package = ".".join(parts[:i])
                if package in MODULES and not (module == package or module.startswith(package + ".")):
                    out[module].add(package)
    return out


def test_every_module_has_a_layer() -> None:
    assert [m for m in MODULES if layer_of(m) < 0] == []


def test_every_module_sits_in_its_layers_folder() -> None:
    """``imkd_ros/<layer>/...``: the folder names are the layers (only the package's own ``__init__`` is above)."""
    astray = [m for m in MODULES if m != "imkd_ros" and m.split(".")[1] != LAYERS[layer_of(m)][0]]
    assert astray == [] and PLACED == {}


def test_ros_message_packages_only_under_ros_and_nodes() -> None:
    bag = next(i for i, (name, _) in enumerate(LAYERS) if name == "bag")
    bad = []
    for module, packages in sorted(EXTERNAL.items()):
        ros = sorted(packages & ROS_PACKAGES)
        if ros and not module.startswith(ROS_ALLOWED):
            bad.append(f"{module} imports {', '.join(ros)}")
        if "rosbags" in packages and layer_of(module) < bag:
            bad.append(f"{module} imports rosbags below the bag layer")
    assert bad == [], "\n".join(bad)


def test_no_import_cycles() -> None:
    cycles = _cycles(_runtime_edges())
    assert cycles == [], "\n".join(" <-> ".join(c) for c in cycles)


def test_imports_point_down() -> None:
    bad = []
    for module, targets in sorted(EDGES.items()):
        for target in sorted(targets):
            if (module, target) in EXCEPTIONS:
                continue
            if layer_of(target) > layer_of(module):
                bad.append(f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})")
    assert bad == [], "\n".join(bad)


def test_no_private_imports_across_modules() -> None:
    bad = sorted(_private_imports() - set(PRIVATE_EXCEPTIONS))
    assert bad == [], "\n".join(f"{a} imports private names of {b}" for a, b in bad)


def test_exceptions_are_still_needed() -> None:
    """A fixed import leaves its exception behind: delete the line."""
    stale = [pair for pair in sorted(EXCEPTIONS) if pair[1] not in EDGES.get(pair[0], set())]
    stale += sorted(set(PRIVATE_EXCEPTIONS) - _private_imports())
    assert stale == [], f"no longer imported, remove from EXCEPTIONS: {stale}"


def test_the_contract_sees_imports(tmp_path: Path) -> None:
    """The graph is not empty by mistake: known edges of every kind are found."""
    assert "imkd_ros.core.types" in EDGES["imkd_ros.model.decode"]  # module level
    assert "imkd_ros.apps.replay_eval" in EDGES["imkd_ros.cli.bag"]  # inside a function
    assert "rclpy" in EXTERNAL["imkd_ros.nodes.spin"]
    probe = tmp_path / "probe.py"
    probe.write_text("import importlib\n\ndef f():\n    return importlib.import_module('imkd_ros.core.types')\n")
    assert "imkd_ros.core.types" in _imports("imkd_ros.probe", probe)  # importlib.import_module with a literal
    assert _cycles(
        {"imkd_ros.core.types": {"imkd_ros.core.classes"}, "imkd_ros.core.classes": {"imkd_ros.core.types"}}
    ) == [["imkd_ros.core.classes", "imkd_ros.core.types"]]


#: The longest a function may be (issue 13), docstring included; the synthetic world's renderers are exempt.
MAX_FUNCTION_LINES = 80


def _long_functions(root: Path) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        if "synth" in path.relative_to(root).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    out.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name} ({n} lines)")
    return out


def test_no_function_over_80_lines_outside_the_synthetic_renderers(tmp_path: Path) -> None:
    assert _long_functions(PACKAGE) == []
    long = tmp_path / "pkg" / "mod.py"  # the check sees a long function
    long.parent.mkdir()
    long.write_text("def f():\n" + "    x = 1\n" * MAX_FUNCTION_LINES)
    assert _long_functions(long.parent) == [f"pkg/mod.py:1 f ({MAX_FUNCTION_LINES + 1} lines)"]


def _layout_gaps(readme: str, package: Path) -> list[str]:
    """Modules and folders of ``package`` that the README's layout block does not name (each module's name as a word
    in the text of its folder's entry, ``  folder/   text...`` up to the next entry)."""
    block = readme.split("## Layout", 1)[1].split("```")[1]
    entries: dict[str, str] = {}
    folder = None
    for line in block.splitlines():
        head = line[2:].split(" ", 1)[0] if line.startswith("  ") and not line.startswith("   ") else ""
        if head.endswith("/"):
            folder = head[:-1]
            entries[folder] = line[2 + len(head) :]
        elif folder is not None and line.startswith("   "):
            entries[folder] += " " + line
        else:
            folder = None
    gaps = []
    for sub in sorted(p for p in package.iterdir() if (p / "__init__.py").exists()):
        text = entries.get(sub.name)
        if text is None:
            gaps.append(f"{sub.name}/")
            continue
        words = set(text.replace("(", " ").replace(")", " ").replace(",", " ").replace(";", " ").split())
        words |= {"__init__", "__main__"}
        gaps += [f"{sub.name}/{m.stem}" for m in sorted(sub.glob("*.py")) if m.stem not in words]
    return gaps


def test_readme_layout_names_every_folder_and_module(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    assert _layout_gaps(readme, PACKAGE) == []
    extra = tmp_path / "imkd_ros" / "core"  # the check sees a module the README does not name
    extra.mkdir(parents=True)
    for name in ("__init__.py", "types.py", "newthing.py"):
        (extra / name).write_text("")
    (tmp_path / "imkd_ros" / "newlayer").mkdir()
    (tmp_path / "imkd_ros" / "newlayer" / "__init__.py").write_text("")
    assert _layout_gaps(readme, tmp_path / "imkd_ros") == ["core/newthing", "newlayer/"]
