"""Benchmark: parsing stored item XML into domish elements, beside domish's own parser.

Times, best of ``--runs`` rounds of ``--repeat`` parses of one Atom-like item (the
benchmarks' usual item, ≈0.9 KB, 12 elements), interleaved:

- ``domish ExpatElementStream``: ``xml_tools.parse_xml_stream``, the reference (what
  the storage used before; the baseline);
- ``xml_tools.parse_xml``: what the storage uses (ElementTree's C builder, then
  domish elements made directly; prefixed XML goes to the reference);
- ``ElementTree.fromstring``: the C parse alone, no domish (the floor).

    python bench/xml_parse.py [--json] [--runs 15] [--repeat 500]
"""

from __future__ import annotations

import timeit
from typing import Any
from xml.etree import ElementTree

from _common import atom_item, main, parser

from sat_storage.xml_tools import parse_xml, parse_xml_stream, to_xml


async def run(args: Any, workdir: str) -> dict[str, Any]:
    text = to_xml(atom_item(1)[0])
    parsers = {
        "domish ExpatElementStream": parse_xml_stream,
        "xml_tools.parse_xml": parse_xml,
        "ElementTree.fromstring": ElementTree.fromstring,
    }
    assert parse_xml(text).toXml() == parse_xml_stream(text).toXml() == text
    best = {name: float("inf") for name in parsers}
    for _ in range(args.runs):
        for name, parse in parsers.items():
            seconds = timeit.timeit(lambda p=parse: p(text), number=args.repeat)
            best[name] = min(best[name], seconds / args.repeat)
    us = {name: round(value * 1e6, 2) for name, value in best.items()}
    baseline = "domish ExpatElementStream"
    result = {
        "benchmark": "xml_parse",
        "bytes": len(text.encode()),
        "runs": args.runs,
        "repeat": args.repeat,
        "us_per_item": us,
        "results": [
            {"name": f"{name}, one item", "value": value, "unit": "us"}
            | ({} if name == baseline else {"baseline": f"{baseline}, one item"})
            for name, value in us.items()
        ],
    }
    if not args.json:
        for name, value in us.items():
            print(f"  {name:28} {value:8.2f} us  ({value / us[baseline]:.2f} x {baseline})")
    return result


if __name__ == "__main__":
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=500, help="parses per round")
    p.set_defaults(runs=15)
    main(run, p.parse_args())
