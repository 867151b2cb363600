"""File-name patterns: OppNDA's positional semantics, readable templates, numeric coercion."""
from __future__ import annotations

import json
import pickle

import pytest
from shared_data import REFERENCE

from oppnda_nb.errors import OppndaError
from oppnda_nb.naming import (
    DEFAULT_FILENAME_PATTERN, DEFAULT_TEMPLATE, as_pattern, coerce_params, coerce_value, compile_template, pattern_from_oppnda,
)

REF_CONFIG = REFERENCE / "averager_config.json"
NAME = "TEST_EpidemicRouter_10_104_100M_MessageStatsReport.txt"


def test_oppnda_pattern_from_reference_config():
    if not REF_CONFIG.exists():
        pytest.skip("reference config not available")
    p = pattern_from_oppnda(json.loads(REF_CONFIG.read_text())["filename_pattern"])
    assert p.parse(NAME) == {"scenario_name": "TEST", "router": "EpidemicRouter", "seed": "10", "ttl": "104",
                             "buffer": "100", "report_type": "MessageStatsReport"}


def test_oppnda_semantics_extract_no_match_keeps_value_and_index_error():
    p = pattern_from_oppnda({"delimiter": "-", "components": {"a": 0, "b": 2, "last": -1},
                             "extract": {"a": r"x(\d+)", "b": r"(\d+)"}})
    # extract regex does not match 'ab' -> the value stays; rsplit only the last dot
    assert p.parse("ab-q-7kb-z.v1.txt") == {"a": "ab", "b": "7", "last": "z.v1"}
    assert p.parse("x12-q-k-end.txt")["a"] == "12"
    params, reason = p.parse_with_reason("only-two.txt")
    assert params is None and "'b'" in reason and "position 2" in reason
    # a regex without a group takes the whole match
    assert pattern_from_oppnda({"components": {"n": 0}, "extract": {"n": r"\d+"}}).parse("r42_x.txt") == {"n": "42"}


def test_oppnda_pattern_rejects_bad_config():
    with pytest.raises(OppndaError):
        pattern_from_oppnda({"delimiter": "_"})
    with pytest.raises(OppndaError):
        pattern_from_oppnda({"components": {"a": "x"}})
    with pytest.raises(OppndaError):
        pattern_from_oppnda({"components": {"a": 0}, "extract": {"a": "("}})


def test_template_compiles_and_parses():
    p = compile_template("{scenario}_{router}_{seed}_{ttl}_{buffer}M_{report}")
    assert p.fields == ["scenario", "router", "seed", "ttl", "buffer", "report"]
    assert p.parse(NAME) == {"scenario": "TEST", "router": "EpidemicRouter", "seed": "10", "ttl": "104",
                             "buffer": "100", "report": "MessageStatsReport"}
    assert p.report_field == "report"
    params, reason = p.parse_with_reason("TEST_EpidemicRouter_10_104_MessageStatsReport.txt")
    assert params is None and "template" in reason
    assert p.parse("/some/dir/" + NAME)["seed"] == "10"


def test_template_explicit_regex_extension_and_wildcard():
    p = compile_template(r"run-{seed:\d+}-{}-{name}.csv")
    assert p.parse("run-12-junk-alpha.csv") == {"seed": "12", "name": "alpha"}
    assert p.parse("run-x-junk-alpha.csv") is None
    assert p.parse("run-12-junk-alpha.txt") is None          # template's extension must match
    q = compile_template("{a}.{b}")                          # no extension in template: matched on the stem
    assert q.parse("1.5.txt") == {"a": "1", "b": "5"}


@pytest.mark.parametrize("bad", ["", "no fields", "{a}_{a}", "{a b}_x", "{a}_{b", "{seed:(}"])
def test_template_errors(bad):
    with pytest.raises(OppndaError):
        compile_template(bad)


def test_patterns_are_picklable():
    for p in (compile_template("{a}_{b}"), pattern_from_oppnda(DEFAULT_FILENAME_PATTERN)):
        q = pickle.loads(pickle.dumps(p))
        assert q.parse("x_y_1_2_3M_R.txt") == p.parse("x_y_1_2_3M_R.txt")


def test_parsed_names_are_remembered_but_never_pickled_or_compared():
    from oppnda_nb.averaging import SummarizeSettings
    from oppnda_nb.cache import version_key

    template = "{scenario_name}_{router}_{seed}_{ttl}_{buffer}_{report_type}_memo"  # a scheme no other test uses
    fresh = compile_template(template)
    used = compile_template(template)
    key = version_key(SummarizeSettings(pattern=used))
    name = "TEST_Epidemic_7_60_5M_MessageStatsReport_memo.txt"
    first = used.parse_with_reason(name)
    assert first == fresh._parse(name) and first[0]["seed"] == "7"
    assert used.parse_with_reason(name) is first                # remembered
    assert used.parse_with_reason("TEST_x.txt") == (None, fresh._parse("TEST_x.txt")[1])  # a miss is remembered too
    assert len(used._memo) == 2 and used == fresh
    # a pattern of the same definition (a re-run's config loaded again) shares the memory ...
    assert fresh.parse_with_reason(name) is first and fresh._memo is used._memo
    # ... one of another definition does not
    other = compile_template(template.replace("{ttl}", "{ttl:[0-9]+}"))
    assert other.parse_with_reason(name) is not first
    assert other.parse_with_reason(name.replace("_60_", "_6x_"))[0] is None
    assert fresh.parse_with_reason(name.replace("_60_", "_6x_"))[0]["ttl"] == "6x"
    assert pickle.loads(pickle.dumps(used))._memo is None       # a worker gets no memory
    assert version_key(SummarizeSettings(pattern=used)) == key  # the cache key does not see the memory


def test_extracted_parts_are_remembered_per_scheme_but_never_pickled():
    from oppnda_nb import naming

    spec = {"delimiter": "_", "components": {"router": 1, "seed": 2, "buffer": 4, "note": 5},
            "extract": {"seed": r"(\d+)", "buffer": r"\d+[kM]", "note": r"(\d+)"}}
    a, b = naming.as_pattern(spec), naming.as_pattern(spec)
    names = ["S_Epidemic_7_60_5M_x.txt", "S_Epidemic_8_60_5M_x.txt", "S_Spray_7_60_12k_x.txt", "S_Spray_7_60_k_x.txt"]
    want = [{"router": "Epidemic", "seed": "7", "buffer": "5M", "note": "x"},
            {"router": "Epidemic", "seed": "8", "buffer": "5M", "note": "x"},
            {"router": "Spray", "seed": "7", "buffer": "12k", "note": "x"},
            {"router": "Spray", "seed": "7", "buffer": "k", "note": "x"}]   # no match: the part as it is
    assert [a._parse(n)[0] for n in names] == want
    assert a._extracted is naming._EXTRACTED[a.definition()] and a._extracted["buffer"]["12k"] == "12k"
    assert [b._parse(n)[0] for n in names] == want and b._extracted is a._extracted   # shared by the scheme
    assert pickle.loads(pickle.dumps(a))._extracted is None


def test_coerce_value():
    assert coerce_value("10") == 10 and isinstance(coerce_value("10"), int)
    assert coerce_value("-3") == -3
    assert coerce_value("2.5") == 2.5 and isinstance(coerce_value("2.5"), float)
    assert coerce_value("1e3") == 1000.0
    for keep in ("10M", "EpidemicRouter", "nan", "", "inf", "1.2.3"):
        assert coerce_value(keep) == keep
    assert coerce_params({"ttl": "60", "buffer": "5M"}) == {"ttl": 60, "buffer": "5M"}


def test_as_pattern_dispatch():
    assert as_pattern(None).kind == "oppnda"
    assert as_pattern("{a}_{b}").kind == "template"
    assert as_pattern({"components": {"a": 0}}).fields == ["a"]
    with pytest.raises(OppndaError):
        as_pattern(3)
