"""What the YAML loader's checks cost: certlab's data files parsed by lab.yamlfile.parse_yaml and by
the loader it had before issue 15 (libyaml + the duplicate-key check only), side by side.

The new loader also measures the node tree (depth, alias expansion) before constructing and checks
each constructed value (dates, integers, floats); an ICS is parsed on every booking, so this must
stay small. Median CPU time of --repeat parses per file (ms); printed, never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml  # noqa: E402

from lab.errors import CertlabError  # noqa: E402
from lab.yamlfile import _construct_mapping, parse_yaml  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FILES = {
    "catalogue v2": ROOT / "lab" / "catalog" / "data" / "en303645-v2.1.1.yaml",
    "catalogue v3": ROOT / "lab" / "catalog" / "data" / "en303645-v3.1.3.yaml",
    "ICS TH-100": ROOT / "inventory" / "products" / "TH-100" / "ics.yaml",
    "IXIT TH-100": ROOT / "inventory" / "products" / "TH-100" / "ixit.yaml",
    "inventory sim": ROOT / "inventory" / "sim.yaml",
}


class _BaselineLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The loader before issue 15: libyaml, Python constructors, duplicate keys refused."""


_BaselineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def baseline(text: str) -> Any:
    return yaml.load(text, Loader=_BaselineLoader)  # noqa: S506 - SafeLoader subclass


def current(text: str) -> Any:
    return parse_yaml(text, "bench", CertlabError)


def median_ms(parse: Any, text: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.process_time()  # CPU time: the lab host is busy while this runs
        parse(text)
        times.append(time.process_time() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    print(f"{'file':<16}{'KiB':>7}{'before ms':>11}{'now ms':>9}{'ratio':>8}")
    for name, path in FILES.items():
        text = path.read_text(encoding="utf-8")
        assert baseline(text) == current(text), name
        old, new = median_ms(baseline, text, args.repeat), median_ms(current, text, args.repeat)
        print(f"{name:<16}{len(text.encode()) / 1024:>7.1f}{old:>11.2f}{new:>9.2f}{new / old:>8.2f}")


if __name__ == "__main__":
    main()
