"""Sweep parameters from report file names.

Two ways to describe a naming scheme, both giving a :class:`NamePattern`:

* OppNDA's ``filename_pattern`` dict (``delimiter``, ``components`` name -> position,
  ``extract`` name -> regex), with OppNDA's exact semantics so configs work unchanged:
  ``name = filename.rsplit('.', 1)[0]``; ``parts = name.split(delimiter)``; each component
  is ``parts[pos]`` (a missing position makes the file unparseable); when an ``extract`` regex
  ``re.search``-es the value, the value becomes ``match.group(1)`` (no match: value kept).
* A readable template such as ``"{scenario}_{router}_{seed}_{ttl}_{buffer}M_{report_type}"``,
  compiled to an anchored regex (see :func:`compile_template`).

Values are kept as text (output file names use the original text); :func:`coerce_value`
turns numeric-looking ones into numbers for DataFrames.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .errors import OppndaError

#: Field names that name the report class in a pattern (the first one present is used).
REPORT_FIELDS: tuple[str, ...] = ("report_type", "report", "report_class")
#: Field names that identify a replication (averaged over, never grouped by default).
SEED_FIELDS: tuple[str, ...] = ("seed", "run", "rep", "replication", "rng_seed", "rngseed")
#: Field names that identify a scenario (constant in a typical sweep).
SCENARIO_FIELDS: tuple[str, ...] = ("scenario", "scenario_name")

#: ONE's standard naming ``TEST_<router>_<seed>_<ttl>_<buffer>_<ReportClass>.txt`` as an
#: OppNDA ``filename_pattern`` (the same as OppNDA's reference config: seed, ttl and buffer
#: keep only their digits, so ``10M`` -> ``10``).
DEFAULT_FILENAME_PATTERN: dict[str, Any] = {
    "delimiter": "_",
    "components": {
        "scenario_name": 0,
        "router": 1,
        "seed": 2,
        "ttl": 3,
        "buffer": 4,
        "report_type": 5,
    },
    "extract": {"ttl": r"(\d+)", "seed": r"(\d+)", "buffer": r"(\d+)"},
}
#: The same scheme as a readable template (buffer keeps its unit text, e.g. ``10M``).
DEFAULT_TEMPLATE = "{scenario_name}_{router}_{seed}_{ttl}_{buffer}_{report_type}"

_FIELD_RE = re.compile(r"\{([^{}:]*)(?::((?:[^{}]|\{\d*,?\d*\})*))?\}")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INT_RE = re.compile(r"^[+-]?\d+$")
#: names a pattern remembers (see NamePattern.parse_with_reason); more start the memory afresh
NAME_MEMO_MAX = 1 << 18
#: naming schemes whose parses this process remembers (patterns with the same definition share one
#: memory, so a notebook's re-run parses no name again); more start the memory afresh
SCHEMES_MEMO_MAX = 8
_MEMOS: dict[tuple, dict[str, tuple[dict[str, str] | None, str | None]]] = {}
#: per naming scheme, per component: a part of a name -> what its ``extract`` regex keeps of it (a
#: sweep's names share a few routers, TTLs and buffers: each part is searched once)
_EXTRACTED: dict[tuple, dict[str, dict[str, str]]] = {}


def memo_for(memos: dict[tuple, dict], key: tuple) -> dict:
    """The memory kept in ``memos`` for one naming scheme (or selection rule set) ``key``: made on
    first use; all of them are dropped past SCHEMES_MEMO_MAX schemes, one past NAME_MEMO_MAX names."""
    memo = memos.get(key)
    if memo is None:
        if len(memos) >= SCHEMES_MEMO_MAX:
            memos.clear()
        memo = memos[key] = {}
    elif len(memo) >= NAME_MEMO_MAX:
        memo.clear()
    return memo


@dataclass
class NamePattern:
    """A compiled file-name scheme: ``parse(filename)`` gives ``{field: text}`` or None.

    ``kind`` is ``"oppnda"`` (delimiter/positions/extract) or ``"template"`` (regex).
    Picklable (it is sent to worker processes).
    """

    fields: list[str]
    kind: str = "template"
    template: str | None = None
    regex: re.Pattern | None = None
    delimiter: str = "_"
    components: dict[str, int] = field(default_factory=dict)
    extract: dict[str, re.Pattern] = field(default_factory=dict)
    #: file name -> parse result, shared by the patterns of one definition in this process: a run
    #: parses each name when it selects the files and again when it summarises them (in this process
    #: for tiny files), and a re-run parses the same names; not pickled, not compared
    _memo: dict[str, tuple[dict[str, str] | None, str | None]] | None = field(
        default=None, init=False, repr=False, compare=False)
    #: component -> {part of a name: what ``extract`` keeps}, shared like ``_memo``
    _extracted: dict[str, dict[str, str]] | None = field(default=None, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_memo"] = state["_extracted"] = None
        return state

    def definition(self) -> tuple:
        """What the parse of a name depends on (the key of the shared memory)."""
        return (tuple(self.fields), self.kind, self.template, self.regex and (self.regex.pattern, self.regex.flags),
                self.delimiter, tuple(self.components.items()),
                tuple((k, rx.pattern, rx.flags) for k, rx in self.extract.items()))

    @property
    def report_field(self) -> str | None:
        """The field holding the report class, if the pattern has one."""
        for name in REPORT_FIELDS:
            if name in self.fields:
                return name
        return None

    def parse(self, filename: str) -> dict[str, str] | None:
        """Parameters from a file name (directories are ignored), or None if it does not match."""
        return self.parse_with_reason(filename)[0]

    def parse_with_reason(self, filename: str) -> tuple[dict[str, str] | None, str | None]:
        """Like :meth:`parse` but also says why a name does not match. (The same dict is returned
        for the same name: callers do not change it.)"""
        memo = self._memo
        if memo is None:
            memo = self._memo = memo_for(_MEMOS, self.definition())
        hit = memo.get(filename)
        if hit is None:
            if len(memo) >= NAME_MEMO_MAX:
                memo.clear()
            hit = memo[filename] = self._parse(filename)
        return hit

    def _parse(self, filename: str) -> tuple[dict[str, str] | None, str | None]:
        filename = filename.replace("\\", "/").rsplit("/", 1)[-1]
        if self.kind == "oppnda":
            name = filename.rsplit(".", 1)[0]
            parts = name.split(self.delimiter)
            out: dict[str, str] = {}
            extracted = self._extracted
            if extracted is None:
                extracted = self._extracted = memo_for(_EXTRACTED, self.definition())
            for comp, pos in self.components.items():
                try:
                    value = parts[pos]
                except IndexError:
                    return None, (
                        f"file name has too few {self.delimiter!r}-separated parts "
                        f"(component {comp!r} is at position {pos})"
                    )
                rx = self.extract.get(comp)
                if rx is not None:
                    seen = extracted.get(comp)
                    if seen is None or len(seen) >= NAME_MEMO_MAX:
                        seen = extracted[comp] = {}
                    kept = seen.get(value)
                    if kept is None:
                        m = rx.search(value)
                        kept = seen[value] = value if m is None else m.group(1) if rx.groups else m.group(0)
                    value = kept
                out[comp] = value
            return out, None
        assert self.regex is not None
        stem = filename.rsplit(".", 1)[0] if "." in filename else filename
        ext = filename[len(stem):]
        target = filename if ext and (self.template or "").lower().endswith(ext.lower()) else stem
        m = self.regex.fullmatch(target)
        if m is None:
            return None, f"file name does not match the template {self.template!r}"
        return {k: m.group(k) for k in self.fields}, None

    def describe(self) -> str:
        """A one-line human description of the scheme."""
        if self.kind == "oppnda":
            comps = ", ".join(f"{k}@{v}" for k, v in self.components.items())
            ext = ", ".join(f"{k}~/{v.pattern}/" for k, v in self.extract.items())
            return f"split on {self.delimiter!r}: {comps}" + (f"; extract {ext}" if ext else "")
        return f"template {self.template!r}"


def plain_name(name: str) -> str:
    """A report's file name without a ``.gz`` suffix (gzip-compressed reports are read directly)."""
    return name[:-3] if name.endswith(".gz") else name


def compile_template(template: str) -> NamePattern:
    """Compile ``"{scenario}_{router}_{seed}_{ttl}_{buffer}M_{report_type}"`` to a NamePattern.

    ``{name}`` matches a non-empty value: when the text right after it starts with a
    non-alphanumeric character ``c`` (e.g. ``_``) the value cannot contain ``c``; otherwise
    the shortest value that lets the whole name match. ``{name:REGEX}`` gives the value's
    regex explicitly (e.g. ``{seed:\\d+}``). ``{}`` or ``{_}`` matches anything and is not kept.
    The template matches the file name without its extension, or the whole name when the
    template itself ends with that extension (``"..._{report_type}.txt"``).
    """
    if not isinstance(template, str) or not template.strip():
        raise OppndaError("The name template is empty: give e.g. '{scenario}_{router}_{seed}_{ttl}_{buffer}M_{report_type}'.")
    pieces: list[str] = []
    fields: list[str] = []
    pos = 0
    matches = list(_FIELD_RE.finditer(template))
    if not matches:
        raise OppndaError(f"The name template {template!r} has no {{field}}: write e.g. '{{router}}_{{seed}}_{{report_type}}'.")
    anon = 0
    for i, m in enumerate(matches):
        literal = template[pos:m.start()]
        if "{" in literal or "}" in literal:
            raise OppndaError(f"Unbalanced braces in name template {template!r}.")
        pieces.append(re.escape(literal))
        name, rx = m.group(1).strip(), m.group(2)
        nxt_end = matches[i + 1].start() if i + 1 < len(matches) else len(template)
        following = template[m.end():nxt_end]
        if rx:
            try:
                re.compile(rx)
            except re.error as exc:
                raise OppndaError(f"Bad regex {rx!r} for field {name!r} in template {template!r}: {exc}.") from None
            body = f"(?:{rx})"
        elif following and not following[0].isalnum():
            body = f"[^{re.escape(following[0])}]+"
        else:
            body = ".+?"
        if name in ("", "_"):
            anon += 1
            pieces.append(body)
        else:
            if not _NAME_RE.match(name):
                raise OppndaError(f"Field name {name!r} in template {template!r} must be an identifier (letters, digits, _).")
            if name in fields:
                raise OppndaError(f"Field {name!r} appears twice in template {template!r}; use {{}} for parts to ignore.")
            fields.append(name)
            pieces.append(f"(?P<{name}>{body})")
        pos = m.end()
    tail = template[pos:]
    if "{" in tail or "}" in tail:
        raise OppndaError(f"Unbalanced braces in name template {template!r}.")
    pieces.append(re.escape(tail))
    if not fields:
        raise OppndaError(f"The name template {template!r} has no named field.")
    return NamePattern(fields=fields, kind="template", template=template, regex=re.compile("".join(pieces), re.DOTALL))


def pattern_from_oppnda(filename_pattern: dict) -> NamePattern:
    """Build a NamePattern from an OppNDA config's ``filename_pattern`` dict (semantics unchanged)."""
    if not isinstance(filename_pattern, dict):
        raise OppndaError("'filename_pattern' must be an object with 'delimiter', 'components' and optional 'extract'.")
    delimiter = filename_pattern.get("delimiter", "_")
    if not isinstance(delimiter, str) or delimiter == "":
        raise OppndaError("'filename_pattern.delimiter' must be a non-empty string, e.g. \"_\".")
    comps = filename_pattern.get("components")
    if not isinstance(comps, dict) or not comps:
        raise OppndaError("'filename_pattern.components' must map field names to positions, e.g. {\"router\": 1}.")
    components: dict[str, int] = {}
    for k, v in comps.items():
        try:
            components[str(k)] = int(v)
        except (TypeError, ValueError):
            raise OppndaError(f"Position of component {k!r} must be an integer, got {v!r}.") from None
    extract: dict[str, re.Pattern] = {}
    for k, v in (filename_pattern.get("extract") or {}).items():
        try:
            extract[str(k)] = re.compile(v)
        except (re.error, TypeError) as exc:
            raise OppndaError(f"Bad 'extract' regex for {k!r}: {v!r} ({exc}).") from None
    return NamePattern(fields=list(components), kind="oppnda", delimiter=delimiter,
                       components=components, extract=extract)


def as_pattern(pattern: "NamePattern | str | dict | None") -> NamePattern:
    """A NamePattern from a NamePattern, a template string or an OppNDA dict (None: default)."""
    if pattern is None:
        return pattern_from_oppnda(DEFAULT_FILENAME_PATTERN)
    if isinstance(pattern, NamePattern):
        return pattern
    if isinstance(pattern, str):
        return compile_template(pattern)
    if isinstance(pattern, dict):
        return pattern_from_oppnda(pattern)
    raise OppndaError(f"A name pattern must be a template string or an OppNDA filename_pattern dict, not {type(pattern).__name__}.")


def coerce_value(text: str) -> int | float | str:
    """``"10"`` -> 10, ``"2.5"`` -> 2.5, anything else (``"10M"``, ``"nan"``, ``""``) stays text."""
    if not isinstance(text, str):
        return text
    s = text.strip()
    if _INT_RE.match(s):
        try:
            return int(s)
        except ValueError:  # pragma: no cover - digits always parse
            return text
    if s and any(c.isdigit() for c in s) and s.lower() not in ("nan", "inf", "-inf", "+inf", "infinity"):
        try:
            return float(s)
        except ValueError:
            return text
    return text


def coerce_params(params: dict[str, str]) -> dict[str, int | float | str]:
    """:func:`coerce_value` applied to every value."""
    return {k: coerce_value(v) for k, v in params.items()}
