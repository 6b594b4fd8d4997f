"""Fuzz the inventory readers (``auditor.inventory``): YAML and CSV text and raw records.

Inventory files are written by hand by system owners. Property: a parse returns a list of
:class:`SystemRecord` or raises :class:`AuditorError` (``InventoryError`` for validation)
whose message, and every listed error, is one terminal line; ``validate_record`` returns a
record or a list of one-line errors, never both. Nothing else escapes, and nothing hangs.
"""

from __future__ import annotations

import pytest
from fuzz_strategies import assert_one_line, mixed
from hypothesis import example, given
from hypothesis import strategies as st

from auditor.errors import AuditorError
from auditor.inventory import InventoryError, SystemRecord, parse_csv, parse_yaml, validate_record

FIELDS = ("name", "owner", "contact", "declared_level", "allowed_ports", "sites", "category", "info_types",
          "personal_data_subjects", "sensitive_data_subjects", "components", "administrative_procedures")
VALUES = ("sys-1", "Bộ X", "a@b.vn", "3", "0", "6", "-1", "443;80", "99999", "https://example.com/",
          "http://[::1", "internal", "citizen_business", "public;personal", "true", "yes", "1_000", "١٢",
          "9" * 5000, "²", "nan", "1e3", "")

yaml_text = mixed("systems:", "\n", "  ", "- ", ": ", "{", "}", "[", "]", ",", "&a ", "*a", "<<: ", "!!binary ",
                  "!!python/object:os.system ", "? ", "|", ">", "'", "\"", "#", "---", "...", "%YAML 1.1",
                  "\t", *(f"{f}: " for f in FIELDS), *VALUES, max_size=40)
csv_text = mixed(",", "\n", "\r\n", "\"", ";", "\t", "\x00", *FIELDS, *VALUES, max_size=40)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30),
                    st.sampled_from(VALUES))
raw_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(st.text(max_size=10) | st.sampled_from(FIELDS), inner, max_size=4),
                          max_leaves=5)
raw_records = st.one_of(raw_values, st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), raw_values,
                                                    max_size=6))


def _records_or_clean_error(parse, text: str) -> None:  # type: ignore[no-untyped-def]
    try:
        records = parse(text, "inv")
    except InventoryError as exc:
        assert exc.errors
        for line in exc.errors:
            assert_one_line(line)
        assert_one_line(str(exc))
        return
    except AuditorError as exc:
        assert_one_line(str(exc))
        return
    assert isinstance(records, list) and all(isinstance(r, SystemRecord) for r in records)


@given(yaml_text)
@example("systems:\n- name: a\n  owner: b\n  category: other\n  sites: http://[::1\n")
@example("<<: {systems: []}\n")
@example("NULL")  # a null document: no systems, not its scalar node's characters
@example("9" * 5000)  # PyYAML's int() refuses more than 4300 digits with a ValueError
@example("\x1f")  # the reader refuses control characters before parsing
@example("[" * 5000)  # quadratic in PyYAML's scanner: refused before parsing
@example("systems: " + "[" * 100 + "]" * 100)
@example("systems:\n" + "".join("  " * i + "- \n" for i in range(400)))  # block nesting
def test_parse_yaml(text: str) -> None:
    _records_or_clean_error(parse_yaml, text)


@given(csv_text)
@example("name,owner,category\na,b,other,extra\n")
@example("name,owner\n\"unterminated\n")
@example("name\x00,owner\n")
def test_parse_csv(text: str) -> None:
    _records_or_clean_error(parse_csv, text)


@given(raw_records)
@example({"name": "a", "owner": "b", "category": "other", "allowed_ports": "9" * 5000})
@example({"name": "a", "owner": "b", "category": "other", "personal_data_subjects": float("inf")})
def test_validate_record(raw: object) -> None:
    rec, errors = validate_record(raw, "row 1")
    assert (rec is None) == bool(errors)
    for line in errors:
        assert_one_line(line)


def _alias_bomb(field: str, depth: int = 6) -> str:
    """A system whose ``field`` is a YAML "billion laughs": aliases that stand for 9**depth
    strings when expanded (depth 6 keeps a regression to a few MB, not an out-of-memory)."""
    levels = ["&l0 lol"] + [f"&l{i} [{', '.join(['*l' + str(i - 1)] * 9)}]" for i in range(1, depth + 1)]
    return (f"systems:\n- [{', '.join(levels)}]\n"
            f"- {{name: a, owner: b, category: other, {field}: *l{depth}}}\n")


@pytest.mark.parametrize("field", ["sites", "allowed_ports", "declared_level", "personal_data_subjects",
                                   "category", "info_types", "administrative_procedures", "owner", "name",
                                   "contact", "components"])
def test_alias_bomb_is_not_expanded_in_messages(field: str) -> None:
    """A field set to an alias bomb is rejected with short messages (never its full repr)."""
    with pytest.raises(InventoryError) as info:
        parse_yaml(_alias_bomb(field), "inv")
    assert all(len(line) < 2000 for line in info.value.errors), [len(e) for e in info.value.errors]


@pytest.mark.parametrize("text", ["x: " + "9" * 5000, "[" * 3000 + "]" * 3000])
def test_data_file_reader_survives_huge_ints_and_deep_nesting(tmp_path, text: str) -> None:  # type: ignore[no-untyped-def]
    """Policy files are often a user's own copy: the shared YAML reader fails in one line too."""
    from auditor.datafiles import load_yaml

    path = tmp_path / "policy.yaml"
    path.write_text(text)
    try:
        load_yaml(path)
    except AuditorError as exc:
        assert_one_line(str(exc))
