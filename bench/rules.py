#!/usr/bin/env python3
"""Rules benchmark: alerts per second through rule matching (200 generated rules, half of them with area tests),
against bare CAP parsing (``hub.cap.parse.parse``) of the same alerts in the same run.

The alerts: every CAP file in tests/data/cap and tests/data/dwd plus the NINA samples converted to CAP (German
alerts with hundreds of warncell areas among them). Each round evaluates every alert with empty caches, so every
alert's area is resolved anew (hub.geo.resolve) as it would be on arrival. Prints JSON:
``{"alerts_per_s", "bare_parse_per_s", "ratio", "rules", ...}``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.sources.nina_convert import convert_payload  # noqa: E402
from hub.cap.parse import parse  # noqa: E402
from hub.cap.serialize import to_xml  # noqa: E402
from hub.decide.rules.engine import RuleSet  # noqa: E402
from hub.geo.geography import geography  # noqa: E402
from hub.geo.registry import Level, registry  # noqa: E402

DATA = ROOT / "tests" / "data"


def corpus() -> list[bytes]:
    docs = [p.read_bytes() for folder in ("cap", "dwd") for p in sorted((DATA / folder).glob("*.xml"))]
    for path in sorted((DATA / "nina").glob("*.json")):
        try:
            docs.extend(to_xml(c.alert) for c in convert_payload(path.read_bytes()))
        except Exception:  # noqa: BLE001 - a sample the converter refuses is simply not used
            continue
    return docs


def generate(n: int, seed: int = 4) -> str:
    """``n`` rules of every kind; half of them test the area (district, ARS lists, polygons)."""
    rnd = random.Random(seed)
    reg = registry()
    kreise = sorted(a for a in reg.regions if reg[a].is_(Level.KREIS))
    out = ['[district]\nname = "Landkreis Lüchow-Dannenberg"\nars = "033540000000"\n']
    sev = ["Minor", "Moderate", "Severe", "Extreme"]
    for i in range(n):
        lines = [f'[[rule]]\nname = "rule {i:03d}"']
        kind = i % 6
        if kind == 0:
            lines.append(f'when.provider = {json.dumps(rnd.sample(["dwd", "mowas", "katwarn", "biwapp"], 2))}')
            lines.append(f'when.min_severity = "{rnd.choice(sev)}"')
            lines.append('when.area = "district"')
        elif kind == 1:
            low, high = rnd.randint(40, 60), rnd.randint(61, 99)
            lines.append(f'when.event_code = ["II={rnd.randint(11, 99)}", "II={low}..{high}"]')
            lines.append(f'when.area = {json.dumps(rnd.sample(kreise, 5))}')
        elif kind == 2:
            lat, lon = rnd.uniform(47.5, 54.5), rnd.uniform(6.5, 14.5)
            ring = [[round(lat, 3), round(lon, 3)], [round(lat, 3), round(lon + 0.4, 3)],
                    [round(lat + 0.3, 3), round(lon + 0.4, 3)], [round(lat + 0.3, 3), round(lon, 3)]]
            lines.append(f"when.area = {{ polygon = {json.dumps(ring)} }}")
            lines.append(f'when.category = {json.dumps(rnd.sample(["Met", "Safety", "Health", "Env"], 2))}')
        elif kind == 3:
            lines.append(f'when.event = ["{rnd.choice(["GLÄTTE", "STURM*", "GEWITTER*", "*REGEN*", "FROST"])}"]')
            lines.append(f'when.min_urgency = "{rnd.choice(["Immediate", "Expected", "Future"])}"')
        elif kind == 4:
            lines.append(f'when.source = ["{rnd.choice(["dwd", "nina", "cap-*"])}"]')
            lines.append(f'when.msg_type = {json.dumps(rnd.sample(["Alert", "Update", "Cancel"], 2))}')
            lines.append(f'when.max_severity = "{rnd.choice(sev)}"')
        else:
            lines.append('when.status = ["Test", "Exercise"]')
            lines.append("then.suppress = true")
            out.append("\n".join(lines) + "\n")
            continue
        if kind == 0:
            lines.append('then.publish = ["push", "web", "boards"]')
        else:
            lines.append(f'then.publish = {json.dumps(rnd.sample(["web", "boards", "webhook"], 2))}')
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rules", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    docs = corpus()
    alerts = [parse(d).alert for d in docs]
    geography()  # loaded once at start, as the daemon does
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "bench.toml").write_text(generate(args.rules), encoding="utf-8")
        t = time.perf_counter()
        rules = RuleSet.load(tmp)
        load_s = time.perf_counter() - t
    origins = ["dwd", "nina", "cap-inbox"]
    decisions: dict[str, int] = {}
    t = time.perf_counter()
    for _ in range(args.rounds):
        rules._resolved.clear()
        rules._geoms.clear()
        for n, alert in enumerate(alerts):
            d = rules.evaluate(alert, origin=origins[n % 3])
            decisions[d.decision] = decisions.get(d.decision, 0) + 1
    match_s = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(args.rounds):
        for doc in docs:
            parse(doc)
    parse_s = time.perf_counter() - t
    count = len(alerts) * args.rounds
    result = {"alerts_per_s": round(count / match_s, 1), "bare_parse_per_s": round(count / parse_s, 1),
              "ratio": round(parse_s / match_s, 3), "rules": len(rules.rules),
              "area_rules": sum(1 for r in rules.alert_rules if r.when and r.when.area),
              "alerts": len(alerts), "rounds": args.rounds, "load_s": round(load_s, 3),
              "decisions": {k: v // args.rounds for k, v in sorted(decisions.items())}}
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:18} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
