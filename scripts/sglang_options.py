"""Generate autoquant's SGLang server option list (data/engine_options/sglang-<VERSION>.yaml).

    python scripts/sglang_options.py 0.5.23 autoquant/data/engine_options/sglang-0.5.23.yaml
    python scripts/sglang_options.py 0.5.23 out.yaml --wheel /tmp/sglang-0.5.23-*.whl
    python scripts/sglang_options.py 0.5.23 out.yaml --method import --python /tmp/venv/bin/python

The option list is what `ServerArgs.add_cli_args` (python/sglang/srt/server_args.py) registers, i.e. what
`python -m sglang.launch_server` accepts.

Two methods:

* ``ast`` (default): no SGLang install and no torch. Downloads the wheel with
  ``pip download --no-deps sglang==VERSION`` (or takes ``--wheel``/``--src``) and reads the source with Python's
  ``ast``. It understands both layouts SGLang has used:
    - through 0.5.13: explicit ``parser.add_argument(...)`` calls inside ``ServerArgs.add_cli_args``;
    - 0.5.14-0.5.19: ``ServerArgs`` is a dataclass whose fields are declared ``name: A[T, Arg(...)]`` / ``A[T, "help"]``;
    - 0.5.20+: the same field declarations on the namespace classes of
      ``sglang/srt/arg_groups/fields/*.py`` that ``server_args._INPUT_NAMESPACES`` lists; both registered by
      ``arg_utils.add_cli_args_from_dataclass`` (bool -> store_true, List[..] -> nargs "+", Literal -> choices,
      ``Arg(aliases=, cli_name=, choices=, nargs=, action=, action_kwargs=, no_cli=)``), plus the explicit
      ``parser.add_argument`` calls that remain in ``add_cli_args`` (dynamic choices, deprecated flags).
  Choice lists are evaluated from module-level constants (following imports inside the wheel). Branches under
  ``if`` inside ``add_cli_args`` that only mutate a choice set (env-gated extras) are not applied.
* ``import``: runs ``--python`` (an interpreter where ``sglang.srt.server_args`` imports; needs torch) to build
  the real argparse parser and reads its actions. Used to check the ``ast`` output: identical (order included) for
  0.5.10, 0.5.19 and 0.5.23, one version per layout.

Stdlib + PyYAML only. Output keys per option: aliases, takes_value, nargs (when not a single value),
choices (when argparse declares them), deprecated (when the action or help marks the flag deprecated).
"""

from __future__ import annotations

import argparse
import ast
import glob
import json
import os
import subprocess
import sys
import tempfile
import zipfile

import yaml

# ---------------------------------------------------------------------------
# A tiny, side-effect-free evaluator for the constant expressions SGLang uses as argparse choices.
# ---------------------------------------------------------------------------


class Unresolved(Exception):
    pass


class ModuleObj:
    def __init__(self, src: Source, name: str, path: str | None):
        self.src, self.name, self.path = src, name, path
        self.tree = None
        if path is not None:
            with open(path, encoding="utf-8") as f:
                self.tree = ast.parse(f.read(), filename=path)
        self._cache: dict = {}

    def top_statements(self):
        """Top-level statements, descending into `try` bodies (not into `if` blocks)."""
        out = []

        def walk(stmts):
            for s in stmts:
                if isinstance(s, ast.Try):
                    walk(s.body)
                else:
                    out.append(s)

        walk(self.tree.body if self.tree is not None else [])
        return out

    def lookup(self, name: str):
        if name in self._cache:
            return self._cache[name]
        if self.tree is None:
            # A package without an __init__.py on disk; try a submodule.
            sub = self.src.module(f"{self.name}.{name}")
            if sub is not None:
                return sub
            raise Unresolved(f"{self.name}.{name}")
        found = False
        value = None
        for s in self.top_statements():
            if isinstance(s, ast.Assign):
                for t in s.targets:
                    if isinstance(t, ast.Name) and t.id == name:
                        value, found = self.src.ev(s.value, Scope(self)), True
            elif isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name) and s.target.id == name:
                if s.value is not None:
                    value, found = self.src.ev(s.value, Scope(self)), True
            elif isinstance(s, ast.AugAssign) and isinstance(s.target, ast.Name) and s.target.id == name and found:
                value = _binop(s.op, value, self.src.ev(s.value, Scope(self)))
            elif (
                found
                and isinstance(s, ast.Expr)
                and isinstance(s.value, ast.Call)
                and isinstance(s.value.func, ast.Attribute)
                and isinstance(s.value.func.value, ast.Name)
                and s.value.func.value.id == name
                and s.value.func.attr in ("extend", "append", "add", "update")
            ):
                arg = self.src.ev(s.value.args[0], Scope(self))
                getattr(value, s.value.func.attr)(arg)
            elif isinstance(s, (ast.ClassDef, ast.FunctionDef)) and s.name == name:
                value, found = (ClassObj(self, s) if isinstance(s, ast.ClassDef) else FuncObj(self, s)), True
            elif isinstance(s, ast.ImportFrom):
                for alias in s.names:
                    if (alias.asname or alias.name) == name:
                        value, found = self.src.import_from(self, s.module, s.level, alias.name), True
            elif isinstance(s, ast.Import):
                for alias in s.names:
                    if alias.asname == name:
                        value, found = self.src.module_or_stub(alias.name), True
                    elif alias.asname is None and alias.name.split(".")[0] == name:
                        value, found = self.src.module_or_stub(name), True
        if not found:
            sub = self.src.module(f"{self.name}.{name}")
            if sub is not None:
                return sub
            raise Unresolved(f"{self.name}.{name}")
        self._cache[name] = value
        return value


class ClassObj:
    def __init__(self, module: ModuleObj, node: ast.ClassDef):
        self.module, self.node, self.name = module, node, node.name
        self._cache: dict = {}

    def base_names(self):
        return [ast.unparse(b) for b in self.node.bases]

    def is_enum(self):
        return any(b.split(".")[-1] in ("Enum", "IntEnum", "StrEnum", "IntFlag", "Flag") for b in self.base_names())

    def lookup(self, name: str):
        if name in self._cache:
            return self._cache[name]
        for s in self.node.body:
            targets = []
            if isinstance(s, ast.Assign):
                targets = [t.id for t in s.targets if isinstance(t, ast.Name)]
                val = s.value
            elif isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name) and s.value is not None:
                targets, val = [s.target.id], s.value
            if name in targets:
                v = self.src_ev(val)
                if self.is_enum():
                    v = EnumMember(name, v)
                self._cache[name] = v
                return v
        for b in self.node.bases:
            try:
                base = self.module.src.ev(b, Scope(self.module))
            except Unresolved:
                continue
            if isinstance(base, ClassObj):
                try:
                    return base.lookup(name)
                except Unresolved:
                    pass
        raise Unresolved(f"{self.name}.{name}")

    def src_ev(self, node):
        return self.module.src.ev(node, Scope(self.module, cls=self))

    def members(self):
        if not self.is_enum():
            raise Unresolved(f"iterate class {self.name}")
        out = []
        for s in self.node.body:
            if isinstance(s, ast.Assign) and len(s.targets) == 1 and isinstance(s.targets[0], ast.Name):
                n = s.targets[0].id
                if not n.startswith("_"):
                    out.append(self.lookup(n))
        return out

    def init_default(self, param: str):
        """Default of a keyword of this class's __init__ (used for custom argparse actions' nargs)."""
        for s in self.node.body:
            if isinstance(s, ast.FunctionDef) and s.name == "__init__":
                args = s.args.args + s.args.kwonlyargs
                defaults = [None] * (len(s.args.args) - len(s.args.defaults)) + list(s.args.defaults)
                defaults += list(s.args.kw_defaults)
                for a, d in zip(args, defaults, strict=False):
                    if a.arg == param:
                        return True, (self.module.src.ev(d, Scope(self.module)) if d is not None else None)
        for b in self.node.bases:
            try:
                base = self.module.src.ev(b, Scope(self.module))
            except Unresolved:
                continue
            if isinstance(base, ClassObj):
                found, v = base.init_default(param)
                if found:
                    return found, v
        return False, None


class EnumMember:
    def __init__(self, name, value):
        self.name, self.value = name, value


class FuncObj:
    def __init__(self, module: ModuleObj, node: ast.FunctionDef):
        self.module, self.node = module, node

    def call(self):
        """Evaluate a zero-argument helper: straight-line body, skipping `if` blocks, up to its first return."""
        scope = Scope(self.module, local={})
        for s in self.node.body:
            if isinstance(s, ast.ImportFrom):
                for alias in s.names:
                    scope.local[alias.asname or alias.name] = self.module.src.import_from(
                        self.module, s.module, s.level, alias.name
                    )
            elif isinstance(s, ast.Assign) and len(s.targets) == 1 and isinstance(s.targets[0], ast.Name):
                try:
                    scope.local[s.targets[0].id] = self.module.src.ev(s.value, scope)
                except Unresolved:
                    pass  # e.g. `module = sys.modules.get(...)`, only read by a skipped `if`
            elif isinstance(s, ast.Return):
                return self.module.src.ev(s.value, scope)
        raise Unresolved(f"function {self.node.name} has no straight-line return")


class Stub:
    """A module outside the wheel (argparse, json, typing...): only its name matters."""

    def __init__(self, name):
        self.name = name

    def lookup(self, attr):
        return Stub(f"{self.name}.{attr}")


class Scope:
    def __init__(self, module: ModuleObj, cls: ClassObj | None = None, local: dict | None = None):
        self.module, self.cls, self.local = module, cls, local

    def lookup(self, name):
        if self.local is not None and name in self.local:
            return self.local[name]
        if self.cls is not None:
            try:
                return self.cls.lookup(name)
            except Unresolved:
                pass
        return self.module.lookup(name)


def _binop(op, a, b):
    if isinstance(op, ast.Add):
        if isinstance(a, (set, frozenset)) or isinstance(b, (set, frozenset)):
            raise Unresolved("set + ")
        if isinstance(a, tuple) and isinstance(b, list):
            return list(a) + b
        if isinstance(a, list) and isinstance(b, tuple):
            return a + list(b)
        return a + b
    if isinstance(op, ast.BitOr):
        return a | b
    if isinstance(op, ast.Mod):
        return a % b
    raise Unresolved(f"binop {type(op).__name__}")


_BUILTINS = {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset, "sorted": sorted, "str": str}


class Source:
    def __init__(self, root: str):
        self.root = root  # directory that contains the `sglang` package
        self._mods: dict = {}

    def module(self, name: str) -> ModuleObj | None:
        if name in self._mods:
            return self._mods[name]
        base = os.path.join(self.root, *name.split("."))
        path = None
        if os.path.isfile(base + ".py"):
            path = base + ".py"
        elif os.path.isfile(os.path.join(base, "__init__.py")):
            path = os.path.join(base, "__init__.py")
        elif os.path.isdir(base):
            path = None
        else:
            self._mods[name] = None
            return None
        m = ModuleObj(self, name, path)
        self._mods[name] = m
        return m

    def module_or_stub(self, name):
        return self.module(name) or Stub(name)

    def import_from(self, mod: ModuleObj, modname: str | None, level: int, attr: str):
        if level:
            parts = mod.name.split(".")
            is_pkg = mod.path is not None and mod.path.endswith("__init__.py")
            base = parts if is_pkg else parts[:-1]
            base = base[: len(base) - (level - 1)] if level > 1 else base
            modname = ".".join(base + ([modname] if modname else []))
        target = self.module(modname)
        if target is None:
            return Stub(f"{modname}.{attr}")
        try:
            return target.lookup(attr)
        except Unresolved:
            sub = self.module(f"{modname}.{attr}")
            if sub is not None:
                return sub
            raise

    def ev(self, node, scope: Scope):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.JoinedStr):
            parts = []
            for v in node.values:
                if isinstance(v, ast.Constant):
                    parts.append(str(v.value))
                else:
                    try:
                        parts.append(str(self.ev(v.value, scope)))
                    except Unresolved:
                        parts.append("{...}")
            return "".join(parts)
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            items = []
            for e in node.elts:
                if isinstance(e, ast.Starred):
                    inner = self.ev(e.value, scope)
                    items.extend(inner.members() if isinstance(inner, ClassObj) else inner)
                else:
                    items.append(self.ev(e, scope))
            return {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)](items)
        if isinstance(node, ast.Dict):
            return {self.ev(k, scope): self.ev(v, scope) for k, v in zip(node.keys, node.values, strict=True)}
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -self.ev(node.operand, scope)
        if isinstance(node, ast.BinOp):
            return _binop(node.op, self.ev(node.left, scope), self.ev(node.right, scope))
        if isinstance(node, ast.Name):
            if node.id in ("True", "False", "None"):
                return {"True": True, "False": False, "None": None}[node.id]
            try:
                return scope.lookup(node.id)
            except Unresolved:
                if node.id in _BUILTINS:
                    return _BUILTINS[node.id]
                raise
        if isinstance(node, ast.Attribute):
            obj = self.ev(node.value, scope)
            if isinstance(obj, (ModuleObj, ClassObj, Stub)):
                return obj.lookup(node.attr)
            if isinstance(obj, EnumMember) and node.attr in ("name", "value"):
                return getattr(obj, node.attr)
            if isinstance(obj, (str, list, dict, set, tuple, frozenset)) and node.attr in (
                "lower", "upper", "replace", "keys", "values", "items", "copy", "strip",
            ):
                return getattr(obj, node.attr)
            raise Unresolved(ast.unparse(node))
        if isinstance(node, ast.Call):
            func = self.ev(node.func, scope)
            args = [self.ev(a, scope) for a in node.args]
            if isinstance(func, FuncObj) and not args:
                return func.call()
            if func in (list, tuple, set, frozenset, sorted):
                (x,) = args or [()]
                if isinstance(x, ClassObj):
                    x = x.members()
                if isinstance(x, dict):
                    x = list(x)
                return func(x)
            if callable(func) and not isinstance(func, (ClassObj, FuncObj, Stub, ModuleObj)):
                return func(*args)
            raise Unresolved(ast.unparse(node))
        if isinstance(node, (ast.ListComp, ast.SetComp)) and len(node.generators) == 1:
            gen = node.generators[0]
            it = self.ev(gen.iter, scope)
            if isinstance(it, ClassObj):
                it = it.members()
            if not isinstance(gen.target, ast.Name):
                raise Unresolved(ast.unparse(node))
            out = []
            for item in it:
                inner = Scope(scope.module, scope.cls, {**(scope.local or {}), gen.target.id: item})
                if all(self.ev(c, inner) for c in gen.ifs):
                    out.append(self.ev(node.elt, inner))
            return out if isinstance(node, ast.ListComp) else set(out)
        raise Unresolved(ast.unparse(node))


# ---------------------------------------------------------------------------
# Option records
# ---------------------------------------------------------------------------

_NO_VALUE_ACTIONS = {"store_true", "store_false", "store_const", "count", "append_const", "help", "version"}


def _choices_out(choices):
    if choices is None:
        return None
    if isinstance(choices, (set, frozenset)):
        return sorted(choices, key=lambda c: (str(type(c)), c))
    return list(choices)


def _is_deprecated(action_name: str, help_text) -> bool:
    h = (help_text or "").lstrip().lower() if isinstance(help_text, str) else ""
    return action_name.startswith("Deprecated") or h.startswith("deprecated") or h.startswith("(deprecated")


def _record(strings, takes_value, nargs, choices, deprecated, dest=None, negated=()):
    rec = {"strings": list(strings), "takes_value": bool(takes_value)}
    if takes_value and nargs not in (None, 1):
        rec["nargs"] = nargs
    if choices is not None:
        rec["choices"] = _choices_out(choices)
    if negated:
        rec["negated"] = list(negated)
    if deprecated:
        rec["deprecated"] = True
    rec["dest"] = dest or _default_dest(strings)
    return rec


def _default_dest(strings):
    """argparse's dest: the first long option string, dashes to underscores."""
    for s in strings:
        if s.startswith("--"):
            return s[2:].replace("-", "_")
    return strings[0].lstrip("-").replace("-", "_")


def _negated(strings_before, strings_after):
    return [s for s in strings_after if s not in strings_before]


def _action_info(src: Source, scope: Scope, action_node, explicit_nargs, has_nargs):
    """(takes_value, nargs, extra_strings_fn, action_name) for an argparse `action=` expression."""
    if action_node is None:
        return True, explicit_nargs, None, "store"
    if isinstance(action_node, ast.Constant):
        name = action_node.value
        if name in _NO_VALUE_ACTIONS:
            return False, 0, None, name
        return True, explicit_nargs, None, name
    text = ast.unparse(action_node)
    if text.endswith("BooleanOptionalAction"):
        return False, 0, "boolean_optional", "BooleanOptionalAction"
    try:
        obj = src.ev(action_node, scope)
    except Unresolved:
        obj = None
    name = text.split(".")[-1]
    if has_nargs:
        return explicit_nargs != 0, explicit_nargs, None, name
    if isinstance(obj, ClassObj):
        found, default = obj.init_default("nargs")
        if found:
            return default != 0, default, None, name
    # argparse.Action subclasses without their own nargs default take one value.
    return True, None, None, name


def _boolean_optional_strings(strings):
    out = list(strings)
    for s in strings:
        if s.startswith("--"):
            out.append("--no-" + s[2:])
    return out


def _kw(call: ast.Call):
    return {k.arg: k.value for k in call.keywords if k.arg is not None}


def _from_add_argument(src: Source, scope: Scope, call: ast.Call, notes: list):
    strings = []
    for a in call.args:
        v = src.ev(a, scope)
        if isinstance(v, str):
            strings.append(v)
    if not strings or not strings[0].startswith("-"):
        return None
    kw = _kw(call)
    nargs = src.ev(kw["nargs"], scope) if "nargs" in kw else None
    dest = src.ev(kw["dest"], scope) if "dest" in kw else None
    takes_value, nargs, extra, action_name = _action_info(src, scope, kw.get("action"), nargs, "nargs" in kw)
    negated = ()
    if extra == "boolean_optional":
        before = strings
        strings = _boolean_optional_strings(strings)
        negated = _negated(before, strings)
    choices = None
    if "choices" in kw:
        try:
            choices = src.ev(kw["choices"], scope)
        except Unresolved as e:
            notes.append(f"{strings[0]}: choices not resolved statically ({e})")
    help_text = None
    if "help" in kw:
        try:
            help_text = src.ev(kw["help"], scope)
        except Unresolved:
            pass
    return _record(strings, takes_value, nargs, choices, _is_deprecated(action_name, help_text), dest, negated)


def _unwrap(node):
    """Strip Optional[...] / Union[X, None] / X | None from a type annotation node."""
    while True:
        if isinstance(node, ast.Subscript) and ast.unparse(node.value).split(".")[-1] == "Optional":
            node = node.slice
            continue
        if isinstance(node, ast.Subscript) and ast.unparse(node.value).split(".")[-1] == "Union":
            elts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            rest = [e for e in elts if ast.unparse(e) != "None"]
            if len(rest) == 1 and len(rest) != len(elts):
                node = rest[0]
                continue
            return node
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            if ast.unparse(node.right) == "None":
                node = node.left
                continue
            if ast.unparse(node.left) == "None":
                node = node.right
                continue
        return node


def _from_field(src: Source, cls: ClassObj, name: str, ann: ast.expr, notes: list):
    """Mirror arg_utils.add_cli_args_from_dataclass for one `name: A[T, meta]` field."""
    if not (isinstance(ann, ast.Subscript) and ast.unparse(ann.value).split(".")[-1] in ("A", "Annotated")):
        return None
    elts = ann.slice.elts if isinstance(ann.slice, ast.Tuple) else [ann.slice]
    raw_type, metas = elts[0], elts[1:]
    scope = Scope(cls.module, cls=None)
    meta = None
    for m in metas:
        if isinstance(m, ast.Call) and ast.unparse(m.func).split(".")[-1] == "Arg":
            meta = _kw(m)
            break
        if isinstance(m, (ast.Constant, ast.JoinedStr, ast.BinOp)):
            try:
                v = src.ev(m, scope)
            except Unresolved:
                v = ""
            if isinstance(v, str):
                meta = {"help": m}
                break
    if meta is None:
        return None
    ev = lambda key, default=None: src.ev(meta[key], scope) if key in meta else default  # noqa: E731
    if ev("no_cli", False):
        return None
    cli_name = ev("cli_name") or "--" + name.replace("_", "-")
    strings = [cli_name] + list(ev("aliases") or [])
    help_text = None
    try:
        help_text = ev("help")
    except Unresolved:
        pass
    choices = None
    if "choices" in meta:
        try:
            choices = ev("choices")
        except Unresolved as e:
            notes.append(f"{cli_name}: choices not resolved statically ({e})")

    if "action" in meta:
        akw = {}
        if "action_kwargs" in meta:
            try:
                akw = src.ev(meta["action_kwargs"], scope)
            except Unresolved:
                # e.g. {"type": str, "nargs": "*"} -- `str` resolves via builtins, so this is rare.
                akw = {}
        takes_value, nargs, extra, action_name = _action_info(
            src, scope, meta["action"], akw.get("nargs"), "nargs" in akw
        )
        negated = ()
        if extra == "boolean_optional":
            before = strings
            strings = _boolean_optional_strings(strings)
            negated = _negated(before, strings)
        choices = akw.get("choices", choices) if "choices" in akw else None
        return _record(strings, takes_value, nargs, choices, _is_deprecated(action_name, help_text), name, negated)

    inner = _unwrap(raw_type)
    head = ast.unparse(inner.value).split(".")[-1] if isinstance(inner, ast.Subscript) else ast.unparse(inner)
    if head == "Literal":
        lits = inner.slice.elts if isinstance(inner.slice, ast.Tuple) else [inner.slice]
        literal_vals = [src.ev(e, scope) for e in lits]
        return _record(strings, True, None, choices or literal_vals, _is_deprecated("", help_text), name)
    if head in ("List", "list") and "type_parser" not in meta:
        return _record(strings, True, ev("nargs") or "+", choices, _is_deprecated("", help_text), name)
    if head == "bool":
        return _record(strings, False, 0, None, _is_deprecated("", help_text), name)
    return _record(strings, True, ev("nargs"), choices, _is_deprecated("", help_text), name)


def _func(module: ModuleObj, cls_name: str, func_name: str) -> ast.FunctionDef | None:
    for s in module.top_statements():
        if isinstance(s, ast.ClassDef) and s.name == cls_name:
            for b in s.body:
                if isinstance(b, ast.FunctionDef) and b.name == func_name:
                    return b
    return None


def _class_fields(src: Source, cls: ClassObj, seen=None):
    """(name, annotation) pairs of a Struct namespace, base classes first (msgspec field order)."""
    out = []
    for b in cls.node.bases:
        try:
            base = src.ev(b, Scope(cls.module))
        except Unresolved:
            continue
        if isinstance(base, ClassObj):
            out.extend(_class_fields(src, base))
    for s in cls.node.body:
        if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name):
            if ast.unparse(s.annotation).startswith("ClassVar") or s.target.id.startswith("__"):
                continue
            out.append((s.target.id, s.annotation))
    return out


def extract_ast(root: str):
    src = Source(root)
    sa = src.module("sglang.srt.server_args")
    if sa is None or sa.tree is None:
        raise SystemExit(f"sglang/srt/server_args.py not found under {root}")
    fn = _func(sa, "ServerArgs", "add_cli_args")
    if fn is None:
        raise SystemExit("ServerArgs.add_cli_args not found")
    notes: list = []
    records: list = []

    # 1. Dataclass/Struct-declared fields (newer layout).
    uses_dataclass = any(
        isinstance(n, ast.Call) and ast.unparse(n.func).endswith("add_cli_args_from_dataclass") for n in ast.walk(fn)
    )
    if uses_dataclass:
        try:
            namespaces = sa.lookup("_INPUT_NAMESPACES")
        except Unresolved:
            namespaces = None
        fields = []
        if namespaces:
            for cls in namespaces:
                fields.extend((cls, n, a) for n, a in _class_fields(src, cls))
        else:
            # Older dataclass-style ServerArgs: fields on the class itself.
            cls = sa.lookup("ServerArgs")
            fields.extend((cls, n, a) for n, a in _class_fields(src, cls))
        try:
            order = list(src.module("sglang.srt.arg_groups.field_order").lookup("POSITIONAL_FIELD_ORDER"))
        except Exception:
            order = []
        pos = {n: i for i, n in enumerate(order)}
        fields.sort(key=lambda f: pos.get(f[1], len(pos)))  # stable: unlisted fields keep declaration order
        for cls, name, ann in fields:
            rec = _from_field(src, cls, name, ann, notes)
            if rec is not None:
                records.append(rec)

    # 2. Explicit parser.add_argument(...) calls, in order, tracking simple local assignments.
    local: dict = {}
    scope = Scope(sa, local=local)

    def visit(stmts, top):
        for s in stmts:
            if top and isinstance(s, ast.Assign) and len(s.targets) == 1 and isinstance(s.targets[0], ast.Name):
                try:
                    local[s.targets[0].id] = src.ev(s.value, scope)
                except Unresolved:
                    pass
            if top and isinstance(s, ast.ImportFrom):
                for alias in s.names:
                    try:
                        local[alias.asname or alias.name] = src.import_from(sa, s.module, s.level, alias.name)
                    except Unresolved:
                        pass
            for node in _calls_in_stmt(s):
                if isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument":
                    rec = _from_add_argument(src, scope, node, notes)
                    if rec is not None:
                        records.append(rec)
            for sub in ("body", "orelse", "finalbody"):
                if isinstance(s, (ast.If, ast.For, ast.With, ast.Try, ast.While)) and hasattr(s, sub):
                    visit(getattr(s, sub), False)
            if isinstance(s, ast.Try):
                for h in s.handlers:
                    visit(h.body, False)

    visit(fn.body, True)
    return records, notes


def _calls_in_stmt(s):
    """Calls in a statement, not descending into nested compound statements (visited separately)."""
    if isinstance(s, (ast.If, ast.For, ast.While)):
        roots = [s.test] if hasattr(s, "test") else [s.iter]
    elif isinstance(s, (ast.With, ast.Try)):
        roots = []
    else:
        roots = [s]
    out = []
    for r in roots:
        out.extend(n for n in ast.walk(r) if isinstance(n, ast.Call))
    return out


# ---------------------------------------------------------------------------
# Import method: the real parser, in an interpreter that has sglang installed.
# ---------------------------------------------------------------------------

_IMPORT_PROBE = r"""
import argparse, json, sys, warnings, importlib.metadata
warnings.simplefilter("ignore")
from sglang.srt.server_args import ServerArgs
p = argparse.ArgumentParser(add_help=False)
ServerArgs.add_cli_args(p)
out = []
for a in p._actions:
    if not a.option_strings:
        continue
    ch = a.choices
    if isinstance(ch, (set, frozenset)):
        ch = sorted(ch, key=lambda c: (str(type(c)), c))
    elif ch is not None:
        ch = list(ch)
    out.append({"strings": list(a.option_strings), "nargs": a.nargs, "choices": ch, "dest": a.dest,
                "action": type(a).__name__, "help": a.help if isinstance(a.help, str) else None})
print(json.dumps({"version": importlib.metadata.version("sglang"), "actions": out}))
"""


def extract_import(python: str):
    res = subprocess.run([python, "-c", _IMPORT_PROBE], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"import probe failed:\n{res.stderr[-4000:]}")
    data = json.loads(res.stdout.strip().splitlines()[-1])
    records = []
    for a in data["actions"]:
        takes_value = a["nargs"] != 0
        negated = ()
        if a["action"] == "BooleanOptionalAction":
            negated = [s for s in a["strings"] if s.startswith("--no-")]
        records.append(
            _record(a["strings"], takes_value, a["nargs"], a["choices"], _is_deprecated(a["action"], a["help"]),
                    a["dest"], negated)
        )
    return records, [], data["version"]


# ---------------------------------------------------------------------------
# Wheel handling and output
# ---------------------------------------------------------------------------


def unpack_wheel(version: str, wheel: str | None, workdir: str) -> tuple[str, str]:
    if wheel is None:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-q", "-d", workdir,
               f"sglang=={version}"]
        subprocess.run(cmd, check=True)
        found = sorted(glob.glob(os.path.join(workdir, f"sglang-{version}-*.whl")))
        if not found:
            raise SystemExit(f"no wheel for sglang=={version} in {workdir}")
        wheel = found[0]
    root = os.path.join(workdir, "src")
    with zipfile.ZipFile(wheel) as z:
        z.extractall(root, [n for n in z.namelist() if n.startswith("sglang/") and n.endswith(".py")])
    return root, os.path.basename(wheel)


# Facts about how SGLang parses these options (sglang/srt/server_args.py prepare_server_args, launch_server.py,
# cli/serve.py), checked for 0.5.10-0.5.23.
PARSER_NOTES = [
    "plain argparse.ArgumentParser (allow_abbrev on): an unambiguous prefix is accepted (--tp 2 == --tp-size 2, "
    "--mem-frac 0.8); spell options in full, a prefix can become ambiguous in a later version",
    "no underscore spellings: --tp_size is an error (unlike vLLM's FlexibleArgumentParser); --name=value works",
    "entry points: python -m sglang.launch_server [options] (warns, still supported) and sglang serve [MODEL] "
    "[options] (a leading positional becomes --model-path)",
    "--config FILE reads options from a YAML file and merges them with the command line",
    "BooleanOptionalAction flags also take --no-<flag> (listed under negated)",
]


def to_yaml(version: str, source: str, how: str, records: list, notes: list) -> str:
    def flow(v):
        if isinstance(v, str):
            return json.dumps(v)  # a JSON string is a valid, always-quoted YAML scalar
        return yaml.safe_dump(v, default_flow_style=True, width=10**9, sort_keys=False).strip()

    lines = [
        f"# SGLang {version} server options, generated from sglang/srt/server_args.py ServerArgs.add_cli_args "
        f"by {how}.",
        "# Regenerate: python scripts/sglang_options.py " + version + " <out.yaml>. Keys: aliases (other spellings "
        "of the same option), takes_value, nargs (when not exactly one value), choices (as argparse declares them), "
        "negated (spellings that turn the flag off), deprecated, dest.",
    ]
    for n in notes:
        lines.append(f"# note: {n}")
    lines += ["engine: sglang", f"version: {flow(version)}", f"source: {flow(source)}", "notes:"]
    lines += [f"- {flow(n)}" for n in PARSER_NOTES]
    lines += ["options:"]
    seen = set()
    for r in records:
        canonical, aliases = r["strings"][0], r["strings"][1:]
        if canonical in seen:
            continue
        seen.add(canonical)
        body = {}
        if aliases:
            body["aliases"] = aliases
        body["takes_value"] = r["takes_value"]
        for k in ("nargs", "choices", "negated", "deprecated", "dest"):
            if k in r:
                body[k] = r[k]
        lines.append(f"  {canonical}: {flow(body)}")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("version", help="SGLang version, e.g. 0.5.23")
    ap.add_argument("output", help="output YAML path")
    ap.add_argument("--method", choices=["ast", "import"], default="ast")
    ap.add_argument("--wheel", help="use this sglang wheel instead of `pip download` (ast method)")
    ap.add_argument("--src", help="directory containing the `sglang` package source (ast method)")
    ap.add_argument("--python", default=sys.executable, help="interpreter with sglang installed (import method)")
    args = ap.parse_args(argv)

    if args.method == "import":
        records, notes, installed = extract_import(args.python)
        if installed != args.version:
            raise SystemExit(f"{args.python} has sglang {installed}, not {args.version}")
        how = "building the real argparse parser (scripts/sglang_options.py --method import)"
        source = f"sglang {installed} (installed package), ServerArgs.add_cli_args via argparse introspection"
    else:
        with tempfile.TemporaryDirectory() as tmp:
            if args.src:
                root, wheel_name = args.src, os.path.abspath(args.src)
            else:
                root, wheel_name = unpack_wheel(args.version, args.wheel, tmp)
            records, notes = extract_ast(root)
        how = "static ast parsing of the wheel (scripts/sglang_options.py)"
        source = (
            f"{wheel_name}: sglang/srt/server_args.py ServerArgs.add_cli_args (+ sglang/srt/arg_groups/fields/*.py "
            "when present), parsed with ast"
        )
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(to_yaml(args.version, source, how, records, notes))
    print(f"wrote {len(records)} options to {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
