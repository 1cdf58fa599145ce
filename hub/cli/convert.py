"""``warnhub convert``: what the hub makes of a saved source payload, as CAP 1.2 or JSON."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hub import registry
from hub.cap import parse as cap_parse
from hub.cap.model import to_json
from hub.cap.repair import repair
from hub.cap.serialize import to_xml
from hub.cap.sign import SignaturePolicy
from hub.cap.validate import Validator, Verdict
from hub.cli.common import load_config, read_input, validator_of
from hub.errors import HubError, ParseError
from hub.ports import Converted


def convert_file(kind: str, path: Path, max_bytes: int, geojson: Path | None = None) -> list[Converted]:
    """What the hub makes of a saved source payload: the alerts (as the core model) and the adapter's notes."""
    data = read_input(path, max_bytes)
    if len(data) > max_bytes:
        raise ParseError(f"larger than {max_bytes} bytes")
    if kind == "cap":
        return [Converted(cap_parse.parse(data, max_bytes=max_bytes).alert)]
    if kind in ("atom", "dwd-zip"):
        return registry.converters()[kind](data)

    if geojson is None and path.suffix == ".json" and path.with_suffix(".geojson").is_file():
        geojson = path.with_suffix(".geojson")  # warnings/{id}.json with its {id}.geojson beside it
    return registry.converters()["nina"](data, geojson=read_input(geojson, max_bytes) if geojson else None)


def cmd_convert(args: argparse.Namespace) -> int:
    """Print the alerts as CAP 1.2 or JSON. Certain repairs are made and said on stderr; every alert is validated
    (XSD and semantic checks, the same Validator as ``validate``) before it is written, and refused when it fails."""
    loaded = load_config(args, required=False)
    max_bytes = loaded.cfg.validation.max_bytes if loaded else cap_parse.DEFAULT_MAX_BYTES
    try:
        results = convert_file(args.source, Path(args.path), max_bytes * 4 if args.source == "dwd-zip" else max_bytes,
                               Path(args.geojson) if args.geojson else None)
    except (HubError, OSError, ValueError) as err:
        print(f"warnhub: {args.path}: {err}", file=sys.stderr)
        return 1
    if not results:
        print(f"warnhub: {args.path}: no alerts in it", file=sys.stderr)
        return 1
    validator = validator_of(loaded)
    out = sys.stdout.buffer
    written = refused = 0
    for conv in results:
        alert, repairs = repair(conv.alert)
        who = f"{alert.sender}/{alert.identifier}"
        for note in conv.notes:
            print(f"note: {who}: {note}", file=sys.stderr)
        for note in repairs:
            print(f"repaired: {who}: {note}", file=sys.stderr)
        xml = to_xml(alert)
        errors = _output_errors(validator, xml)
        if errors:
            refused += 1
            print(f"warnhub: {args.path}: {who}: nicht geschrieben, kein gültiges CAP / refused, not valid CAP: "
                  + "; ".join(errors), file=sys.stderr)
            continue
        if args.to == "cap":
            out.write((b"\n" if written else b"") + xml + (b"" if xml.endswith(b"\n") else b"\n"))
        else:
            out.write(to_json(alert) + b"\n")
        written += 1
    return 1 if refused else 0


def _output_errors(validator: Validator, xml: bytes) -> list[str]:
    """What ``validate`` would flag as an error in the CAP convert is about to write (the input's signature does not
    travel into the output, so signatures are not checked)."""
    report = validator.check(xml, policy=SignaturePolicy.IGNORE)
    return list(report.errors) if report.errors or report.verdict is Verdict.REJECTED else []
