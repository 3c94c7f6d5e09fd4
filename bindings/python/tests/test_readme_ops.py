"""README.md's operator table (between <!-- ops:begin --> and <!-- ops:end -->) lists exactly the
built-in entries of lathe's op table: same domains, op names and opset ranges. Regenerate it with
scripts/update-readme-ops.sh."""
import pathlib
import re

import lathe

README = pathlib.Path(__file__).resolve().parents[3] / "README.md"


def readme_entries():
    """(domain, op, since, until or None) for every row of the README's operator table."""
    section = re.search(r"<!-- ops:begin -->\n(.*?)<!-- ops:end -->", README.read_text(), re.S)
    assert section, "README.md has no <!-- ops:begin --> ... <!-- ops:end --> section"
    entries = set()
    for line in section.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[0] in ("domain", "---"):
            continue
        domain, op, opsets, _ = cells
        since, _, until = opsets.replace("+", "").partition("–")
        entries.add(("" if domain == "ai.onnx" else domain, op, int(since), int(until) if until else None))
    return entries


def registry_entries():
    """The same tuples for every built-in entry of the op table."""
    return {("" if op.domain == "ai.onnx" else op.domain, op.op_type, op.since, op.until)
            for op in lathe.registered_ops() if op.origin == "builtin"}


def test_readme_lists_every_builtin_op():
    """Rows and registry entries agree both ways; the message names what to regenerate."""
    readme, registry = readme_entries(), registry_entries()
    assert readme, "README.md's operator table is empty"
    missing, stale = sorted(registry - readme), sorted(readme - registry)
    assert not missing and not stale, (
        f"README.md operator table is out of date (run scripts/update-readme-ops.sh): "
        f"missing {missing}, stale {stale}")
