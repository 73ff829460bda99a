"""The rule compiler (neuromesh/learning.py): Lava-syntax strings to RULE
microcode and back, with errors that point at the offending token."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuromesh.chip import LEARN_LAYOUTS, MAX_FACTORS, MAX_PRODUCTS, LearnRegion
from neuromesh.learning import DEP_X0, DEP_Y0, VARIABLES, Factor, LearningRule, Product, RuleError

RULE = LEARN_LAYOUTS[LearnRegion.RULE]

EXAMPLES = [
    "dw = 2^-2*x1*y0 - 2^-2*y1*x0",
    "dt = x1*y0 - t*2^-4",
    "dw = u0*t*r",
    "dw = 3*2^-3*(w - 64)*y0 + x0*y0; dt = -x2*(y3 + 5)*u0",
    "dw = -8*x1*x2*y1*y2*y0",
    "dw = 2^8*r - 2^-7*w",
    "dw = 0*x1*y0",
    "dw = y0",
    "dt = (r + 127)*(t - 128)*x0",
]


def test_stdp_rule_structure():
    r = LearningRule.parse("dw = 2^-2*x1*y0 - 2^-2*y1*x0")
    assert r.products == (
        Product("dw", 1, -2, DEP_Y0, (Factor("x1"),)),
        Product("dw", -1, -2, DEP_X0, (Factor("y1"),)))
    assert str(r) == "dw = 2^-2*x1*y0 - 2^-2*y1*x0"


def test_no_dependency_means_u0_and_scale_normalises():
    r = LearningRule.parse("dt = x1*y0 - t*2^-4")
    assert r.products[1] == Product("dt", -1, -4, 0, (Factor("t"),))
    assert str(r) == "dt = x1*y0 - 2^-4*t*u0"
    # 12 = 3 * 2^2; 2^9 = 2 * 2^8 (the exponent tops out at 8); 2*2^-3 = 2^-2
    p = LearningRule.parse("dw = 12*x1 + 2^9*x2 + 2*2^-3*y1 - 4*2^-1*y2").products
    assert [(q.s_mant, q.s_exp) for q in p] == [(3, 2), (2, 8), (1, -2), (-1, 1)]


def test_from_targets_like_lava():
    r = LearningRule.from_targets(dw="2^-2*x1*y0", dt="x1*y0 - t*2^-4")
    assert r == LearningRule.parse("dw = 2^-2*x1*y0; dt = x1*y0 - t*2^-4")
    assert r.uses("dw") and r.uses("dt")
    assert r.target_str("dt") == "x1*y0 - 2^-4*t*u0"


@pytest.mark.parametrize("text", EXAMPLES)
def test_round_trip(text):
    r = LearningRule.parse(text)
    assert LearningRule.parse(str(r)) == r
    words = r.encode()
    assert words.dtype == np.uint64 and words.size == len(r.products)
    assert LearningRule.decode(words) == r


def test_word_layout_by_hand():
    # dw = -3*2^-2*(w - 64)*x1*y0: target 0, dep y0 (2), s_mant -3 (0b1101),
    # s_exp -2 stored as 5, var0 = w (7), c0 = -64 (0xC0), var1 = x1 (1), c1 = 0
    (word,) = LearningRule.parse("dw = -3*2^-2*(w - 64)*x1*y0").encode().tolist()
    expect = (0 | 2 << 1 | 0b1101 << 3 | 5 << 7 | 7 << 11 | 0xC0 << 15 | 1 << 23)
    assert word == expect
    f = RULE.unpack(np.array([word], np.uint64))
    assert (f["s_mant"][0], f["s_exp"][0], f["c0"][0]) == (-3, 5, -64)
    (word,) = LearningRule.parse("dt = u0").encode().tolist()
    assert word == 1 | 1 << 3 | 7 << 7          # target dt, scale 1 = 1*2^0


def test_decode_rejects_words_no_string_makes():
    with pytest.raises(RuleError, match=r"rule word 1: var2 = 9 is not a variable code"):
        LearningRule.decode(RULE.pack(var2=[0, 9], s_exp=7))
    with pytest.raises(RuleError, match=r"rule word 0: empty factor slot 3 has c3 = 5"):
        LearningRule.decode(RULE.pack(c3=[5]))
    with pytest.raises(RuleError, match=r"reserved bits"):
        LearningRule.decode(np.array([1 << 63], np.uint64))


def _error(text):
    with pytest.raises(RuleError) as e:
        LearningRule.parse(text)
    return str(e.value)


def test_error_points_at_the_unknown_name():
    msg = _error("dw = 2^-2*x1*q0")
    assert msg.splitlines() == [
        "learning rule, column 14: unknown name 'q0'; expected a dependency (x0, y0, u0), a "
        "variable (x1, x2, y1, y2, y3, r, w, t) or a number",
        "    dw = 2^-2*x1*q0",
        "                 ^"]


@pytest.mark.parametrize("text, column, fragment", [
    ("dw = x1 +", 10, "expected a number, a variable or '(', found the end of the rule"),
    ("dw = (x1 + 200)*y0", 12, "constant 200 is outside [-128, 127]"),
    ("dw = (x0 + 1)", 7, "expected a variable (x1, x2, y1, y2, y3, r, w, t) after '(', "
                         "found dependency 'x0'"),
    ("dw = (x1 * 2)", 10, "expected '+' or '-' and a constant, found '*'"),
    ("dw = (x1 + 2", 13, "expected ')', found the end of the rule"),
    ("dw = 3^2*x1", 6, "only powers of two may be raised to an exponent"),
    ("dw = 2^x1", 8, "expected the exponent after '^', found 'x1'"),
    ("dw = 2^-9*x1", 6, "the scale 1*2^-9 of this product does not fit"),
    ("dw = 9*x1", 6, "the scale 9*2^0 of this product does not fit"),
    ("dq = x1", 1, "expected a target (dw or dt), found 'dq'"),
    ("dw x1", 4, "expected '=', found 'x1'"),
    ("dw = x1 # 2", 9, "unexpected character '#'"),
    ("dw = x1; dw = x2", 10, "target dw is defined twice (first at column 1)"),
    ("dw = x1*y0*y0", 12, "dependency y0 appears twice in this product"),
    ("dw = u1*x1", 6, "dependency u1 (every 2^1 epochs) is not supported; only u0"),
    ("dw = x1 y1", 9, "expected '+', '-', '*', ';' or the end, found 'y1'"),
    ("", 1, "empty rule"),
    ("dw = x1*x1*x1*x1*x2", 18, f"at most {MAX_FACTORS} factors; this is factor 5"),
])
def test_errors_name_the_column(text, column, fragment):
    msg = _error(text)
    head, line, caret = msg.splitlines()
    assert head.startswith(f"learning rule, column {column}: ")
    assert fragment in head
    assert line == "    " + text
    assert caret == "    " + " " * (column - 1) + "^"


def test_too_many_products_points_at_the_first_extra_one():
    text = "dw = " + " + ".join(["x1*y0"] * MAX_PRODUCTS) + "; dt = t"
    msg = _error(text)
    column = text.index("dt = t") + 6
    assert msg.startswith(f"learning rule, column {column}: the rule has {MAX_PRODUCTS + 1} "
                          f"products; at most {MAX_PRODUCTS}")
    assert len(LearningRule.parse(text[:text.index(";")]).products) == MAX_PRODUCTS


def test_multiline_rules_report_line_and_column():
    r = LearningRule.parse("dw = 2^-2*x1*y0\ndt = x1*y0 - t*2^-4\n")
    assert len(r.products) == 3
    msg = _error("dw = x1*y0\ndt = t + z")
    assert msg.splitlines() == [
        "learning rule, line 2, column 10: unknown name 'z'; expected a dependency (x0, y0, "
        "u0), a variable (x1, x2, y1, y2, y3, r, w, t) or a number",
        "    dt = t + z",
        "             ^"]


def test_not_a_string():
    with pytest.raises(RuleError, match="must be a string, got int"):
        LearningRule.parse(3)


# --- property: every rule the microcode can hold prints and parses back --------------

_scales = st.one_of(
    st.just((0, 0)),
    st.tuples(st.sampled_from([-7, -5, -3, -1, 1, 3, 5, 7]), st.integers(-7, 8)),
    st.tuples(st.sampled_from([-8, -6, -4, -2, 2, 4, 6]), st.just(8)))
_factors = st.lists(st.builds(Factor, st.sampled_from(sorted(VARIABLES)),
                              st.integers(-128, 127)), max_size=MAX_FACTORS)
_products = st.builds(lambda target, scale, dep, factors: Product(
    target, scale[0], scale[1], dep, tuple(factors)),
    st.sampled_from(["dw", "dt"]), _scales, st.integers(0, 3), _factors)


@settings(max_examples=200, deadline=None)
@given(st.lists(_products, min_size=1, max_size=MAX_PRODUCTS))
def test_any_microcode_rule_round_trips(products):
    # canonical order: all dw products, then all dt products (str prints per target)
    products = [p for p in products if p.target == "dw"] + \
        [p for p in products if p.target == "dt"]
    rule = LearningRule(tuple(products))
    assert LearningRule.decode(rule.encode()) == rule
    assert LearningRule.parse(str(rule)) == rule
