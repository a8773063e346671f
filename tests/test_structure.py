"""Structural rules for ``src/rl4rec``, checked by parsing the source with :mod:`ast`.

Nothing from the package is imported, so these tests are fast and independent of torch & co.

1. No import cycles among rl4rec modules.  Every ``import`` statement counts, wherever it is
   (module level, inside functions, under ``if TYPE_CHECKING:``).  Cycles that pass through a
   module importing one of its own ancestor packages (``P.x -> P`` while ``P/__init__`` imports
   ``P.x``) are reported by a separate test.
2. No private (``_name``, not dunder) name imported from, or read as an attribute of, another
   rl4rec module.
3. No module reads files of the repository checkout by path: ``__file__`` walked up above
   ``src/rl4rec``, or string literals such as ``"benchmarks/..."`` / ``"configs/..."`` used as paths.

Each failure message lists every violation with ``file:line``.
"""

from __future__ import annotations

import ast
import functools
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PKG_ROOT = REPO / "src" / "rl4rec"
ROOT_PKG = "rl4rec"

# Modules that may be imported lazily on purpose still count as cycle edges; tags in messages.
LAZY = "lazy"
TYPE_CHECKING = "TYPE_CHECKING"


# --------------------------------------------------------------------------------------------
# Module index
# --------------------------------------------------------------------------------------------


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool
    tree: ast.Module
    source: str

    @property
    def rel(self) -> str:
        return self.path.relative_to(REPO).as_posix()

    @property
    def package(self) -> str:
        """The package relative imports are resolved against."""
        return self.name if self.is_package else self.name.rpartition(".")[0]


@dataclass
class Index:
    modules: dict[str, Module]
    parse_errors: list[str]


@functools.lru_cache(maxsize=1)
def _index() -> Index:
    modules: dict[str, Module] = {}
    errors: list[str] = []
    for path in sorted(PKG_ROOT.rglob("*.py")):
        rel = path.relative_to(PKG_ROOT.parent)
        parts = list(rel.with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        name = ".".join(parts)
        try:
            source = path.read_text(encoding="utf-8")
            tree = ast.parse(source, filename=str(path))
        except (SyntaxError, UnicodeDecodeError, OSError) as exc:
            errors.append(f"{path.relative_to(REPO).as_posix()}: cannot parse: {exc}")
            continue
        modules[name] = Module(name, path, is_package, tree, source)
    return Index(modules, errors)


def _modules() -> dict[str, Module]:
    return _index().modules


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


# --------------------------------------------------------------------------------------------
# Import collection
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportEdge:
    importer: str
    target: str
    lineno: int
    tags: tuple[str, ...]


@dataclass(frozen=True)
class ImportedName:
    """``from target import name`` where ``name`` is not a submodule of ``target``."""

    importer: str
    target: str
    name: str
    lineno: int


@dataclass
class ModuleImports:
    edges: list[ImportEdge] = field(default_factory=list)
    names: list[ImportedName] = field(default_factory=list)
    # local name -> rl4rec module it is bound to (for attribute checks)
    module_aliases: dict[str, str] = field(default_factory=dict)


def _resolve_from(mod: Module, node: ast.ImportFrom) -> str | None:
    if node.level == 0:
        return node.module
    base = mod.package.split(".")
    drop = node.level - 1
    if drop > len(base) - 1:
        return None
    base = base[: len(base) - drop]
    if node.module:
        base += node.module.split(".")
    return ".".join(base)


def _is_type_checking_test(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    if isinstance(test, ast.Attribute):
        return test.attr == "TYPE_CHECKING"
    return False


def _walk_with_context(tree: ast.AST):
    """Yield (node, tags) for every node; tags say whether it sits in a function / TYPE_CHECKING."""
    stack: list[tuple[ast.AST, tuple[str, ...]]] = [(tree, ())]
    while stack:
        node, tags = stack.pop()
        yield node, tags
        child_tags = tags
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and LAZY not in tags:
            child_tags = tags + (LAZY,)
        if isinstance(node, ast.If) and _is_type_checking_test(node.test):
            inner = tags if TYPE_CHECKING in tags else tags + (TYPE_CHECKING,)
            for child in node.body:
                stack.append((child, inner))
            for child in node.orelse:
                stack.append((child, tags))
            stack.append((node.test, tags))
            continue
        for child in ast.iter_child_nodes(node):
            stack.append((child, child_tags))


@functools.cache
def _imports(name: str) -> ModuleImports:
    modules = _modules()
    mod = modules[name]
    out = ModuleImports()

    def in_pkg(dotted: str | None) -> bool:
        return bool(dotted) and (dotted == ROOT_PKG or dotted.startswith(ROOT_PKG + "."))

    for node, tags in _walk_with_context(mod.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not in_pkg(alias.name) or alias.name not in modules:
                    continue
                line = getattr(alias, "lineno", node.lineno)
                out.edges.append(ImportEdge(name, alias.name, line, tags))
                if alias.asname:
                    out.module_aliases[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    out.module_aliases.setdefault(top, top)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve_from(mod, node)
            if not in_pkg(target) or target not in modules:
                continue
            for alias in node.names:
                line = getattr(alias, "lineno", node.lineno)
                sub = f"{target}.{alias.name}"
                if alias.name != "*" and sub in modules:
                    out.edges.append(ImportEdge(name, sub, line, tags))
                    out.module_aliases[alias.asname or alias.name] = sub
                else:
                    out.edges.append(ImportEdge(name, target, line, tags))
                    if alias.name != "*":
                        out.names.append(ImportedName(name, target, alias.name, line))
    return out


# --------------------------------------------------------------------------------------------
# 1. Import cycles
# --------------------------------------------------------------------------------------------


def _graph() -> dict[tuple[str, str], list[ImportEdge]]:
    edges: dict[tuple[str, str], list[ImportEdge]] = defaultdict(list)
    for name in _modules():
        for edge in _imports(name).edges:
            if edge.target != edge.importer:
                edges[(edge.importer, edge.target)].append(edge)
    return edges


def _is_parent_edge(src: str, dst: str) -> bool:
    """``src`` imports one of its own ancestor packages."""
    mods = _modules()
    return dst in mods and mods[dst].is_package and src.startswith(dst + ".")


def _sccs(nodes: list[str], succ: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    result: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(succ.get(root, ())))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(succ.get(w, ()))))
                    advanced = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
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
                result.append(sorted(comp))
    return result


def _shortest_path(succ: dict[str, list[str]], start: str, goal: str, allowed: set[str]) -> list[str] | None:
    prev: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        if v == goal:
            path = [v]
            while prev[path[-1]] is not None:
                path.append(prev[path[-1]])  # type: ignore[arg-type]
            return path[::-1]
        for w in succ.get(v, ()):
            if w in allowed and w not in prev:
                prev[w] = v
                queue.append(w)
    return None


def _canonical(cycle: list[str]) -> tuple[str, ...]:
    """Rotate a cycle (without the closing repeat) so its smallest module comes first."""
    i = cycle.index(min(cycle))
    return tuple(cycle[i:] + cycle[:i])


def _fmt_locations(graph: dict[tuple[str, str], list[ImportEdge]], src: str, dst: str) -> str:
    mods = _modules()
    locs: list[str] = []
    for e in sorted(graph[(src, dst)], key=lambda e: e.lineno):
        tag = f" ({', '.join(e.tags)})" if e.tags else ""
        loc = f"{mods[src].rel}:{e.lineno}{tag}"
        if loc not in locs:
            locs.append(loc)
    return ", ".join(locs)


def _fmt_cycle(graph: dict[tuple[str, str], list[ImportEdge]], cycle: tuple[str, ...]) -> str:
    chain = list(cycle) + [cycle[0]]
    lines = ["  " + " -> ".join(chain)]
    for a, b in zip(chain, chain[1:], strict=False):
        mark = "  [child imports its parent package]" if _is_parent_edge(a, b) else ""
        lines.append(f"      {a} -> {b}  at {_fmt_locations(graph, a, b)}{mark}")
    return "\n".join(lines)


def _cycle_report() -> tuple[list[str], list[str]]:
    """(ordinary cycle reports, cycles through a child->parent-package edge)."""
    graph = _graph()
    nodes = sorted(_modules())

    # Ordinary cycles: the graph without child -> ancestor-package edges.
    succ_plain: dict[str, list[str]] = defaultdict(list)
    succ_all: dict[str, list[str]] = defaultdict(list)
    for a, b in sorted(graph):
        succ_all[a].append(b)
        if not _is_parent_edge(a, b):
            succ_plain[a].append(b)

    ordinary: list[str] = []
    for comp in _sccs(nodes, succ_plain):
        if len(comp) < 2:
            continue
        members = set(comp)
        cycles: set[tuple[str, ...]] = set()
        for a in comp:
            for b in succ_plain[a]:
                if b in members:
                    back = _shortest_path(succ_plain, b, a, members)
                    if back:
                        cycles.add(_canonical([a] + back[:-1]))
        header = f"import cycle group of {len(comp)} modules: {', '.join(comp)}"
        body = [_fmt_cycle(graph, c) for c in sorted(cycles, key=lambda c: (len(c), c))]
        ordinary.append(header + "\n" + "\n".join(body))

    # Cycles that need a child -> ancestor-package edge.
    parent_cycles: set[tuple[str, ...]] = set()
    all_members = {n for comp in _sccs(nodes, succ_all) if len(comp) > 1 for n in comp}
    for a, b in sorted(graph):
        if _is_parent_edge(a, b) and a in all_members:
            back = _shortest_path(succ_all, b, a, all_members)
            if back:
                parent_cycles.add(_canonical([a] + back[:-1]))
    parent = [_fmt_cycle(graph, c) for c in sorted(parent_cycles, key=lambda c: (len(c), c))]
    return ordinary, parent


def test_sources_parse():
    errors = _index().parse_errors
    assert not errors, "modules that could not be parsed (skipped by the other checks):\n" + "\n".join(errors)


def test_no_import_cycles():
    ordinary, _ = _cycle_report()
    assert not ordinary, (
        f"{len(ordinary)} import cycle group(s) among rl4rec modules (every import statement counts, "
        "lazy and TYPE_CHECKING ones included; each edge lists its import sites):\n\n" + "\n\n".join(ordinary)
    )


def test_no_cycles_through_parent_package_imports():
    _, parent = _cycle_report()
    assert not parent, (
        f"{len(parent)} import cycle(s) where a module imports its own ancestor package whose "
        "__init__ (transitively) imports it back:\n\n" + "\n\n".join(parent)
    )


# --------------------------------------------------------------------------------------------
# 2. Private names across modules
# --------------------------------------------------------------------------------------------


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _private_violations() -> list[str]:
    mods = _modules()
    out: list[tuple[str, int, str]] = []
    for name, mod in mods.items():
        imports = _imports(name)
        for imp in imports.names:
            if _is_private(imp.name) and imp.target != name:
                out.append((mod.rel, imp.lineno, f"`from {imp.target} import {imp.name}` in {name}"))
        for edge in imports.edges:  # private submodules imported from outside their package
            last = edge.target.rpartition(".")
            if _is_private(last[2]) and not name.startswith(last[0] + "."):
                out.append((mod.rel, edge.lineno, f"private module {edge.target} imported by {name}"))
        aliases = imports.module_aliases
        for node in ast.walk(mod.tree):
            if not (isinstance(node, ast.Attribute) and _is_private(node.attr)):
                continue
            base = _dotted(node.value)
            if not base:
                continue
            head, _, rest = base.partition(".")
            if head not in aliases:
                continue
            target = aliases[head] + (f".{rest}" if rest else "")
            if target in mods and target != name:
                out.append((mod.rel, node.lineno, f"`{base}.{node.attr}` reads private {target}.{node.attr}"))
    return [f"{rel}:{line}: {msg}" for rel, line, msg in sorted(set(out))]


def test_no_private_names_across_modules():
    violations = _private_violations()
    assert not violations, (
        f"{len(violations)} private name(s) used across rl4rec modules (make them public or move them):\n"
        + "\n".join(violations)
    )


# --------------------------------------------------------------------------------------------
# 3. Reading the repository checkout by path
# --------------------------------------------------------------------------------------------

_PATH_CTORS = {"Path", "PurePath", "PosixPath", "PurePosixPath", "WindowsPath", "PureWindowsPath"}
_SAME_PATH_FUNCS = {"abspath", "realpath", "normpath", "expanduser", "fspath", "str"}
_SAME_PATH_METHODS = {"resolve", "absolute", "expanduser"}
_PATH_USING_FUNCS = _PATH_CTORS | {"open", "join", "exists", "isfile", "isdir", "glob", "joinpath", "listdir"}
_CHECKOUT_DIRS = {"benchmarks", "configs"}
_UNBOUNDED = 10**6


def _func_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _apply_components(pos: tuple[int, int], text: str) -> tuple[int, int]:
    cur, top = pos
    for comp in text.replace("\\", "/").split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            cur += 1
            top = max(top, cur)
        else:
            cur -= 1
    return cur, top


def _join_arg(pos: tuple[int, int], arg: ast.expr) -> tuple[int, int]:
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return _apply_components(pos, arg.value)
    return pos[0] - 1, pos[1]  # unknown component: one level down


class _FilePos:
    """Position of ``__file__``-derived path expressions, in directories above the module file.

    ``__file__`` is 0, its folder 1, ...; a value is ``(current, highest reached)``.
    """

    def __init__(self, tree: ast.Module):
        self.env: dict[str, tuple[int, int]] = {}
        assigns = sorted(
            (n for n in ast.walk(tree) if isinstance(n, (ast.Assign, ast.AnnAssign)) and n.value is not None),
            key=lambda n: (n.lineno, n.col_offset),
        )
        for _ in range(2):
            for node in assigns:
                pos = self.pos(node.value)
                if pos is None:
                    continue
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if isinstance(t, ast.Name):
                        self.env[t.id] = pos

    def pos(self, node: ast.expr) -> tuple[int, int] | None:
        if isinstance(node, ast.Name):
            if node.id == "__file__":
                return (0, 0)
            return self.env.get(node.id)
        if isinstance(node, ast.Attribute):
            if node.attr == "parent":
                base = self.pos(node.value)
                return None if base is None else (base[0] + 1, max(base[1], base[0] + 1))
            return None
        if isinstance(node, ast.Subscript):
            if isinstance(node.value, ast.Attribute) and node.value.attr == "parents":
                base = self.pos(node.value.value)
                if base is None:
                    return None
                idx = node.slice
                if isinstance(idx, ast.Constant) and isinstance(idx.value, int) and idx.value >= 0:
                    cur = base[0] + idx.value + 1
                else:
                    cur = _UNBOUNDED
                return cur, max(base[1], cur)
            return None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            base = self.pos(node.left)
            return None if base is None else _join_arg(base, node.right)
        if isinstance(node, ast.Call):
            fname = _func_name(node.func)
            if isinstance(node.func, ast.Attribute) and fname in _SAME_PATH_METHODS:
                return self.pos(node.func.value)
            if isinstance(node.func, ast.Attribute) and fname == "joinpath":
                base = self.pos(node.func.value)
                if base is None:
                    return None
                for arg in node.args:
                    base = _join_arg(base, arg)
                return base
            if not node.args:
                return None
            if fname in _PATH_CTORS or fname == "join":
                base = self.pos(node.args[0])
                if base is None:
                    return None
                for arg in node.args[1:]:
                    base = _join_arg(base, arg)
                return base
            if fname in _SAME_PATH_FUNCS:
                return self.pos(node.args[0])
            if fname == "dirname":
                base = self.pos(node.args[0])
                return None if base is None else (base[0] + 1, max(base[1], base[0] + 1))
        return None


def _docstring_nodes(tree: ast.Module) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _help_text_nodes(tree: ast.Module) -> set[int]:
    """Nodes inside ``help=`` / ``metadata=`` keywords or anywhere in a ``field(...)`` help text."""
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg in ("help", "metadata", "description", "epilog", "usage"):
            ids.update(id(n) for n in ast.walk(node.value))
    return ids


def _leading_text(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return first.value
    return None


def _names_checkout_dir(node: ast.expr) -> bool:
    text = _leading_text(node)
    if text is None:
        return False
    text = text.replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    head = text.split("/", 1)[0]
    return head in _CHECKOUT_DIRS and (head == text or text.startswith(head + "/") or isinstance(node, ast.JoinedStr))


def _checkout_path_violations() -> list[str]:
    out: list[tuple[str, int, str]] = []
    for mod in _modules().values():
        rel_parts = mod.path.relative_to(PKG_ROOT).parts
        limit = len(rel_parts)  # position of src/rl4rec itself
        fp = _FilePos(mod.tree)
        skip = _docstring_nodes(mod.tree) | _help_text_nodes(mod.tree)

        def segment(node: ast.AST, source: str = mod.source) -> str:
            seg = ast.get_source_segment(source, node) or ast.dump(node)
            seg = " ".join(seg.split())
            return seg if len(seg) <= 120 else seg[:117] + "..."

        # (a) __file__ walked up out of the package; report outermost expressions only.
        stack: list[ast.AST] = [mod.tree]
        while stack:
            node = stack.pop()
            if isinstance(node, ast.expr) and not (isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load)):
                pos = fp.pos(node)
                if pos is not None and pos[1] > limit:
                    above = "an unknown number of" if pos[1] >= _UNBOUNDED else str(pos[1] - limit)
                    out.append(
                        (
                            mod.rel,
                            node.lineno,
                            f"`{segment(node)}` derives from __file__ and reaches {above} level(s) above "
                            "src/rl4rec (the repository checkout)",
                        )
                    )
                    continue
            stack.extend(ast.iter_child_nodes(node))

        # (b) "benchmarks/..." or "configs/..." literals used as paths.
        def flag(lit: ast.expr, how: str, skip: set[int] = skip, rel: str = mod.rel) -> None:
            if id(lit) in skip or not _names_checkout_dir(lit):
                return
            out.append((rel, lit.lineno, f"path literal {segment(lit)} {how} (a repository-checkout folder)"))

        for node in ast.walk(mod.tree):
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
                left = fp.pos(node.left)
                if left is not None and left[1] <= limit:
                    continue  # a package-internal resource next to the module
                flag(node.left, "joined with /")
                flag(node.right, "joined with /")
            elif isinstance(node, ast.Call) and _func_name(node.func) in _PATH_USING_FUNCS:
                base = fp.pos(node.func.value) if isinstance(node.func, ast.Attribute) else None
                if base is not None and base[1] <= limit:
                    continue
                for arg in node.args:
                    flag(arg, f"passed to {_func_name(node.func)}()")
    return [f"{rel}:{line}: {msg}" for rel, line, msg in sorted(set(out))]


def test_no_reads_of_the_repository_checkout():
    violations = _checkout_path_violations()
    assert not violations, (
        f"{len(violations)} place(s) where rl4rec reaches into the repository checkout by path "
        "(an installed package has no benchmarks/, configs/ or repo root next to it; take the path "
        "as an argument or ship the file as package data):\n" + "\n".join(violations)
    )
