"""The vector selectors of a PromQL expression, for scripts/check-deploy.sh.

Not a PromQL parser: a tokenizer that knows enough of the grammar to find
every `metric{matchers}` (and `{__name__=...}`) and to skip what looks like a
name but is not one: function and aggregation names, label lists after
by/without/on/ignoring/group_left/group_right, keywords, durations in [...]
and after offset. Prometheus itself evaluates every expression; this only
tells the checks which series an expression reads.
"""

import re

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<str>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<num>0x[0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?:ms|s|m|h|d|w|y)?(?:\d+(?:ms|s|m|h|d|w|y))*)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=(){}\[\],@:])
    """,
    re.VERBOSE,
)

KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "start", "end"}
LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
AGGREGATIONS = {
    "sum", "avg", "count", "min", "max", "group", "stddev", "stdvar",
    "topk", "bottomk", "quantile", "count_values", "limitk", "limit_ratio",
}


class Selector:
    """One vector selector: a metric name and its label matchers."""

    def __init__(self, name, matchers):
        self.name = name
        self.matchers = matchers  # [(label, op, value)]

    def promql(self, matchers=None):
        ms = self.matchers if matchers is None else matchers
        inner = ",".join(f'{label}{op}"{_escape(value)}"' for label, op, value in ms)
        return f"{self.name}{{{inner}}}" if self.name else f"{{{inner}}}"

    def __repr__(self):
        return self.promql()


def _escape(value):
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _unquote(tok):
    if tok[0] == "`":
        return tok[1:-1]
    body = tok[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


def tokens(expr):
    out, pos = [], 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            raise ValueError(f"cannot tokenize PromQL at {expr[pos:pos + 20]!r}")
        pos = m.end()
        if m.lastgroup != "ws":
            out.append((m.lastgroup, m.group()))
    return out


def selectors(expr):
    """Every vector selector in `expr`, in order."""
    toks = tokens(expr)
    found, i = [], 0

    def matchers_at(j):
        # toks[j] is "{": read label op "value" [, ...] "}".
        ms, j = [], j + 1
        while toks[j][1] != "}":
            if toks[j][1] == ",":
                j += 1
                continue
            label, op, value = toks[j][1], toks[j + 1][1], toks[j + 2]
            if value[0] != "str" or op not in ("=", "!=", "=~", "!~"):
                raise ValueError(f"unexpected matcher near {label!r} in {expr!r}")
            ms.append((label, op, _unquote(value[1])))
            j += 3
        return ms, j + 1

    while i < len(toks):
        kind, text = toks[i]
        nxt = toks[i + 1][1] if i + 1 < len(toks) else None
        if text == "[":
            # A range or subquery: durations only.
            depth = 1
            i += 1
            while depth:
                depth += {"[": 1, "]": -1}.get(toks[i][1], 0)
                i += 1
            continue
        if kind == "ident":
            low = text.lower()
            if low in LABEL_LISTS and nxt == "(":
                i += 2
                while toks[i][1] != ")":
                    i += 1
                i += 1
                continue
            if low == "offset":
                i += 2  # the duration
                continue
            if low in KEYWORDS or nxt == "(" or (low in AGGREGATIONS and nxt in LABEL_LISTS):
                i += 1
                continue
            if nxt == "{":
                ms, i = matchers_at(i + 1)
                found.append(Selector(text, ms))
            else:
                found.append(Selector(text, []))
                i += 1
            continue
        if text == "{":
            ms, i = matchers_at(i)
            names = [v for label, op, v in ms if label == "__name__" and op == "="]
            rest = [m for m in ms if not (m[0] == "__name__" and m[1] == "=")]
            found.append(Selector(names[0] if names else None, rest))
            continue
        i += 1
    return found


GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "${__rate_interval}": "1m",
    "$__interval": "15s",
    "${__interval}": "15s",
    "$__range": "5m",
    "${__range}": "5m",
}


def grafana_to_promql(expr):
    """A Grafana query with its built-in interval variables replaced."""
    for var, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(var, value)
    if "$" in expr:
        raise ValueError(f"unknown Grafana variable in {expr!r}")
    return expr


if __name__ == "__main__":
    import sys

    for s in selectors(sys.stdin.read()):
        print(s)
