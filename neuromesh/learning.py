"""Learning rules: Lava-syntax strings <-> the learning engine's microcode.

A rule is a sum of products per target, ``dw = 2^-2*x1*y0 - 2^-2*y1*x0``,
``dt = x1*y0 - t*2^-4``. Each product becomes one 64-bit RULE word
(docs/architecture.md §11.6): target, dependency, scale ``s_mant * 2^s_exp``
and up to :data:`~neuromesh.chip.MAX_FACTORS` factors ``(var + C)``.
:meth:`LearningRule.parse` compiles a string, :meth:`LearningRule.encode` and
:meth:`LearningRule.decode` convert to and from microcode words, and ``str()``
prints the canonical string back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .chip import (
    CONST_MAX,
    CONST_MIN,
    LEARN_LAYOUTS,
    MAX_FACTORS,
    MAX_PRODUCTS,
    S_EXP_MAX,
    S_EXP_MIN,
    S_MANT_MAX,
    S_MANT_MIN,
    ChipError,
    LearnRegion,
)

__all__ = ["RuleError", "Factor", "Product", "LearningRule", "VARIABLES", "TARGETS",
           "DEP_X0", "DEP_Y0"]

#: Factor variables and their microcode codes (0 marks an empty factor slot).
VARIABLES = {"x1": 1, "x2": 2, "y1": 3, "y2": 4, "y3": 5, "r": 6, "w": 7, "t": 8}
_VAR_NAMES = {code: name for name, code in VARIABLES.items()}
#: Targets and their microcode codes.
TARGETS = {"dw": 0, "dt": 1}
_TARGET_NAMES = {code: name for name, code in TARGETS.items()}
#: Dependency mask bits: the product counts only if these flags are set.
DEP_X0, DEP_Y0 = 1, 2
_DEPS = {"x0": DEP_X0, "y0": DEP_Y0, "u0": 0}
_RULE = LEARN_LAYOUTS[LearnRegion.RULE]


class RuleError(ChipError):
    """A learning rule string or microcode word is malformed or breaks a limit."""


@dataclass(frozen=True)
class Factor:
    """``(var + const)``; ``var`` is one of :data:`VARIABLES`."""

    var: str
    const: int = 0

    def __str__(self):
        if self.const == 0:
            return self.var
        return f"({self.var} {'+' if self.const > 0 else '-'} {abs(self.const)})"


@dataclass(frozen=True)
class Product:
    """One term ``s_mant * 2^s_exp * [dependency] * factors...`` of a target."""

    target: str
    s_mant: int
    s_exp: int
    dep: int = 0
    factors: tuple = ()

    def _body(self) -> str:
        m = abs(self.s_mant)
        parts = []
        if (m, self.s_exp) != (1, 0):
            if m == 1:
                parts.append(f"2^{self.s_exp}")
            elif self.s_exp == 0:
                parts.append(str(m))
            else:
                parts.append(f"{m}*2^{self.s_exp}")
        parts += [str(f) for f in self.factors]
        parts += [name for name, bit in (("x0", DEP_X0), ("y0", DEP_Y0)) if self.dep & bit]
        if not self.dep:
            parts.append("u0")
        return "*".join(parts)


@dataclass(frozen=True)
class LearningRule:
    """A learning rule: products for the targets ``dw`` (weight) and ``dt`` (tag),
    in the order they are evaluated."""

    products: tuple = ()

    # -- strings --------------------------------------------------------------

    @classmethod
    def parse(cls, text: str) -> LearningRule:
        """Compile ``"dw = ...; dt = ..."`` (statements separated by ``;`` or
        newlines). Raises :class:`RuleError` pointing at the offending token."""
        return cls(tuple(_Parser(text).rule()))

    @classmethod
    def from_targets(cls, dw: str | None = None, dt: str | None = None) -> LearningRule:
        """Compile right-hand sides given per target (Lava's ``dw=``, ``dt=``)."""
        text = "; ".join(f"{k} = {v}" for k, v in (("dw", dw), ("dt", dt)) if v)
        return cls.parse(text)

    def target_str(self, target: str) -> str:
        """The canonical right-hand side of ``target`` ('' if it has no products)."""
        out = ""
        for p in self.products:
            if p.target != target:
                continue
            neg = p.s_mant < 0
            body = p._body()
            out += (f"-{body}" if neg else body) if not out else \
                f" {'-' if neg else '+'} {body}"
        return out

    def __str__(self):
        return "; ".join(f"{t} = {self.target_str(t)}" for t in TARGETS
                         if any(p.target == t for p in self.products))

    def uses(self, target: str) -> bool:
        return any(p.target == target for p in self.products)

    # -- microcode ---------------------------------------------------------------

    def encode(self) -> np.ndarray:
        """The rule's RULE words (uint64), one per product, in order."""
        if not self.products:
            return np.zeros(0, np.uint64)
        cols = {name: [] for name in _RULE.fields}
        for p in self.products:
            cols["target"].append(TARGETS[p.target])
            cols["dep"].append(p.dep)
            cols["s_mant"].append(p.s_mant)
            cols["s_exp"].append(p.s_exp - S_EXP_MIN)
            for i in range(MAX_FACTORS):
                f = p.factors[i] if i < len(p.factors) else None
                cols[f"var{i}"].append(VARIABLES[f.var] if f else 0)
                cols[f"c{i}"].append(f.const if f else 0)
        return _RULE.pack(**cols)

    @classmethod
    def decode(cls, words) -> LearningRule:
        """The rule held by RULE words ``words`` (e.g. ``rule_len`` words from
        ``rule_base``). Raises :class:`RuleError` naming the word and field of a
        word no rule string can produce."""
        f = _RULE.unpack(np.asarray(words, dtype=np.uint64).reshape(-1))
        if _RULE.reserved_bits(words).any():
            i = int(np.flatnonzero(_RULE.reserved_bits(words))[0])
            raise RuleError(f"rule word {i}: reserved bits must be zero")
        products = []
        for i in range(f["target"].size):
            factors = []
            for k in range(MAX_FACTORS):
                var, c = int(f[f"var{k}"][i]), int(f[f"c{k}"][i])
                if var == 0:
                    if c:
                        raise RuleError(f"rule word {i}: empty factor slot {k} has c{k} = {c} "
                                        f"(must be 0)")
                    continue
                if var not in _VAR_NAMES:
                    raise RuleError(f"rule word {i}: var{k} = {var} is not a variable code "
                                    f"(1..{max(_VAR_NAMES)})")
                factors.append(Factor(_VAR_NAMES[var], c))
            if int(f["dep"][i]) > DEP_X0 | DEP_Y0:
                raise RuleError(f"rule word {i}: dep = {int(f['dep'][i])} > 3")
            products.append(Product(_TARGET_NAMES[int(f["target"][i])], int(f["s_mant"][i]),
                                    int(f["s_exp"][i]) + S_EXP_MIN, int(f["dep"][i]),
                                    tuple(factors)))
        return cls(tuple(products))


# --- the parser ------------------------------------------------------------------

_TOKEN = re.compile(r"(?P<ws>[ \t\r]+)|(?P<num>\d+)|(?P<name>[A-Za-z_]\w*)"
                    r"|(?P<op>[-+*^()=;\n])")


@dataclass
class _Tok:
    kind: str     # num, name, op, end
    text: str
    col: int      # 0-based position in the whole string


class _Parser:
    def __init__(self, text: str):
        if not isinstance(text, str):
            raise RuleError(f"a learning rule must be a string, got {type(text).__name__}")
        self.text = text
        self.toks = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m:
                self.fail(pos, f"unexpected character {text[pos]!r}")
            if m.lastgroup != "ws":
                kind = "sep" if m.group() in (";", "\n") else m.lastgroup
                self.toks.append(_Tok(kind, m.group(), pos))
            pos = m.end()
        self.toks.append(_Tok("end", "", len(text)))
        self.i = 0

    # -- errors -------------------------------------------------------------

    def fail(self, pos: int, message: str):
        start = self.text.rfind("\n", 0, pos) + 1
        end = self.text.find("\n", pos)
        line = self.text[start:end if end >= 0 else len(self.text)]
        row = self.text.count("\n", 0, pos) + 1
        where = f"line {row}, column {pos - start + 1}" if "\n" in self.text \
            else f"column {pos - start + 1}"
        raise RuleError(f"learning rule, {where}: {message}\n    {line}\n    "
                        f"{' ' * (pos - start)}^")

    # -- tokens -------------------------------------------------------------

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def expect(self, text: str, what: str) -> _Tok:
        if self.tok.text != text:
            self.fail(self.tok.col, f"expected {what}, found {self.describe(self.tok)}")
        return self.take()

    @staticmethod
    def describe(t: _Tok) -> str:
        if t.kind == "end":
            return "the end of the rule"
        if t.text == "\n":
            return "the end of the line"
        return repr(t.text)

    # -- grammar ------------------------------------------------------------

    def rule(self):
        products, seen = [], {}
        while True:
            while self.tok.kind == "sep":
                self.take()
            if self.tok.kind == "end":
                break
            t = self.take()
            if t.text not in TARGETS:
                self.fail(t.col, f"expected a target (dw or dt), found {self.describe(t)}")
            if t.text in seen:
                self.fail(t.col, f"target {t.text} is defined twice (first at column "
                                 f"{seen[t.text] + 1})")
            seen[t.text] = t.col
            self.expect("=", "'='")
            products += self.sum(t.text)
            if self.tok.kind not in ("sep", "end"):
                self.fail(self.tok.col, f"expected '+', '-', '*', ';' or the end, found "
                                        f"{self.describe(self.tok)}")
        if not seen:
            self.fail(0, "empty rule: expected 'dw = ...' and/or 'dt = ...'")
        if len(products) > MAX_PRODUCTS:
            self.fail(products[MAX_PRODUCTS][1],
                      f"the rule has {len(products)} products; at most {MAX_PRODUCTS} "
                      f"(dw and dt together) fit the learning engine")
        return [p for p, _ in products]

    def sum(self, target):
        out = []
        sign = 1
        if self.tok.text in "+-" and self.tok.kind == "op":
            sign = -1 if self.take().text == "-" else 1
        while True:
            out.append(self.product(target, sign))
            if self.tok.kind == "op" and self.tok.text in ("+", "-"):
                sign = -1 if self.take().text == "-" else 1
            else:
                return out

    def product(self, target, sign):
        start = self.tok.col
        mant, exp, dep, factors = sign, 0, 0, []
        deps_seen = {}
        while True:
            t = self.tok
            if t.kind == "num":
                m, e = self.literal()
                mant, exp = mant * m, exp + e
            elif t.kind == "name":
                self.take()
                if t.text in _DEPS:
                    if t.text in deps_seen:
                        self.fail(t.col, f"dependency {t.text} appears twice in this product")
                    deps_seen[t.text] = t.col
                    dep |= _DEPS[t.text]
                elif t.text in VARIABLES:
                    factors.append((Factor(t.text), t.col))
                elif re.fullmatch(r"u\d+", t.text):
                    self.fail(t.col, f"dependency {t.text} (every 2^{t.text[1:]} epochs) is "
                                     f"not supported; only u0 (every epoch)")
                else:
                    self.fail(t.col, f"unknown name {t.text!r}; expected a dependency (x0, y0, "
                                     f"u0), a variable ({', '.join(VARIABLES)}) or a number")
            elif t.text == "(":
                factors.append((self.bracket(), t.col))
            else:
                self.fail(t.col, f"expected a number, a variable or '(', found "
                                 f"{self.describe(t)}")
            if self.tok.text == "*":
                self.take()
            else:
                break
        if len(factors) > MAX_FACTORS:
            self.fail(factors[MAX_FACTORS][1],
                      f"a product may have at most {MAX_FACTORS} factors; this is factor "
                      f"{MAX_FACTORS + 1}")
        s_mant, s_exp = _scale(mant, exp)
        if s_mant is None:
            self.fail(start, f"the scale {mant}*2^{exp} of this product does not fit "
                             f"s_mant*2^s_exp with s_mant in [{S_MANT_MIN}, {S_MANT_MAX}] and "
                             f"s_exp in [{S_EXP_MIN}, {S_EXP_MAX}]")
        return Product(target, s_mant, s_exp, dep, tuple(f for f, _ in factors)), start

    def literal(self):
        """``N`` or ``2^E`` (E may carry a sign)."""
        t = self.take()
        if self.tok.text != "^":
            return int(t.text), 0
        if t.text != "2":
            self.fail(t.col, f"only powers of two may be raised to an exponent, found "
                             f"{t.text}^")
        self.take()
        sign = 1
        if self.tok.text in ("+", "-") and self.tok.kind == "op":
            sign = -1 if self.take().text == "-" else 1
        e = self.tok
        if e.kind != "num":
            self.fail(e.col, f"expected the exponent after '^', found {self.describe(e)}")
        self.take()
        return 1, sign * int(e.text)

    def bracket(self):
        """``(var + C)`` or ``(var - C)``."""
        self.take()
        v = self.tok
        if v.kind != "name" or v.text not in VARIABLES:
            what = "dependency" if v.text in _DEPS else "token"
            self.fail(v.col, f"expected a variable ({', '.join(VARIABLES)}) after '(', found "
                             f"{what} {self.describe(v)}")
        self.take()
        op = self.tok
        if op.text not in ("+", "-"):
            self.fail(op.col, f"expected '+' or '-' and a constant, found {self.describe(op)}")
        self.take()
        c = self.tok
        if c.kind != "num":
            self.fail(c.col, f"expected an integer constant, found {self.describe(c)}")
        self.take()
        const = int(c.text) * (-1 if op.text == "-" else 1)
        if not CONST_MIN <= const <= CONST_MAX:
            self.fail(c.col, f"constant {const} is outside [{CONST_MIN}, {CONST_MAX}] "
                             f"(s8)")
        self.expect(")", "')'")
        return Factor(v.text, const)


def _scale(mant: int, exp: int):
    """Normalise ``mant * 2^exp`` to ``(s_mant, s_exp)`` in range, or ``(None, None)``."""
    if mant == 0:
        return 0, 0
    while mant % 2 == 0:
        mant //= 2
        exp += 1
    if exp > S_EXP_MAX:
        mant <<= exp - S_EXP_MAX
        exp = S_EXP_MAX
    if exp < S_EXP_MIN or not S_MANT_MIN <= mant <= S_MANT_MAX:
        return None, None
    return mant, exp
