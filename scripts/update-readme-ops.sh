#!/usr/bin/env bash
# Regenerates README.md's operator table (between <!-- ops:begin --> and <!-- ops:end -->) from the op
# registry, as printed by `lathe-cli ops --markdown`. bindings/python/tests/test_readme_ops.py fails when
# the table and the registry disagree, so run this after adding or changing an op.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --product lathe-cli >&2
.build/debug/lathe-cli ops --markdown > /tmp/lathe-readme-ops.$$
python3 - /tmp/lathe-readme-ops.$$ <<'PY'
import pathlib, re, sys
table = pathlib.Path(sys.argv[1]).read_text().strip()
readme = pathlib.Path("README.md")
text = readme.read_text()
pattern = re.compile(r"(<!-- ops:begin -->\n).*?(<!-- ops:end -->)", re.S)
if not pattern.search(text):
    sys.exit("README.md has no <!-- ops:begin --> ... <!-- ops:end --> section")
readme.write_text(pattern.sub(lambda m: m.group(1) + table + "\n" + m.group(2), text))
print(f"README.md: {table.count(chr(10)) - 1} op entries")
PY
rm -f /tmp/lathe-readme-ops.$$
