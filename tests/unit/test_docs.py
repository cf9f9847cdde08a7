"""The reference docs stay in step with the code: every table, column and message type."""

from __future__ import annotations

from pathlib import Path

from solstice_inspect.protocol import MESSAGE_TYPES, PAYLOAD_FIELDS
from solstice_inspect.schema import SCHEMAS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_table_and_column_is_in_schema_md():
    text = (DOCS / "schema.md").read_text()
    for name, schema in SCHEMAS.items():
        assert f"## {name}\n" in text
        section = text.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
        for field in schema:
            assert f"| {field.name} | `{field.type}` |" in section, (name, field.name)


def test_every_message_type_has_fields_and_an_example_in_protocol_md():
    text = (DOCS / "protocol.md").read_text()
    for mtype in MESSAGE_TYPES:
        section = text.split(f"### {mtype} (", 1)[1].split("\n### ", 1)[0]
        assert f'"message_type": "{mtype}"' in section
        for field in PAYLOAD_FIELDS[mtype]:
            assert f"| {field} |" in section, (mtype, field)
